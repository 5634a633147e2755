package node

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Annotations the kubelet puts on mirror pods.
const (
	MirrorAnnotation = "kubernetes.io/config.mirror"
	hashAnnotation   = "kubernetes.io/config.hash"
	sourceAnnotation = "kubernetes.io/config.source"
	seenAnnotation   = "kubernetes.io/config.seen"
)

// StaticPod is what the agent needs to know of one running static pod.
type StaticPod struct {
	Pod        *corev1.Pod // as in the manifest
	Hash       string
	Containers []ContainerState
}

// ContainerState is one container's run state.
type ContainerState struct {
	Name         string
	Running      bool
	StartedAt    time.Time
	RestartCount int32
}

// MirrorName is the mirror pod's name: the static pod's name and the node's.
func MirrorName(pod, node string) string { return pod + "-" + node }

// SyncMirrors makes the API's mirror pods match the static pods: creates
// missing ones, replaces those whose manifest changed, deletes those whose
// static pod is gone, and reports container status.
//
// The Node authorizer lets a kubelet see only pods bound to it, and only by
// listing or watching them (a GET of a pod that does not exist yet is
// refused), so this works from the node's pods as one list or the watch's
// cache has them. A cache a moment behind is caught up at the next sync: a
// mirror pod created since is found there then. The status is written
// only when it changed, as the kubelet's status manager does.
func (a *Agent) SyncMirrors(ctx context.Context, pods []StaticPod) error {
	pc := a.Client.CoreV1().Pods
	onNode, err := a.nodePods(ctx)
	if err != nil {
		return err
	}
	existing := map[string]*corev1.Pod{}
	for _, p := range onNode {
		if _, mirror := p.Annotations[MirrorAnnotation]; mirror {
			existing[p.Namespace+"/"+p.Name] = p
		}
	}
	for _, sp := range pods {
		name := MirrorName(sp.Pod.Name, a.Name)
		key := sp.Pod.Namespace + "/" + name
		cur := existing[key]
		delete(existing, key)
		if cur != nil && (cur.DeletionTimestamp != nil || cur.Annotations[MirrorAnnotation] != sp.Hash) {
			if err := a.deleteMirror(ctx, cur); err != nil {
				return fmt.Errorf("replace mirror pod %s: %w", key, err)
			}
			continue // created again at the next sync, once the cache has seen it go
		}
		if cur == nil {
			cur, err = pc(sp.Pod.Namespace).Create(ctx, a.mirror(sp, name), metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				continue // the cache has not seen it yet: the next sync does
			}
			if err != nil {
				return fmt.Errorf("mirror pod %s: %w", key, err)
			}
		}
		status := a.status(sp)
		if statusKey(cur.Status) == statusKey(status) {
			continue
		}
		update := cur.DeepCopy() // the cache's copy is not ours to change
		update.Status = status
		if _, err := pc(sp.Pod.Namespace).UpdateStatus(ctx, update, metav1.UpdateOptions{}); err != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("mirror pod %s status: %w", key, err)
		}
	}
	for _, p := range existing { // their static pods are gone
		if err := a.deleteMirror(ctx, p); err != nil {
			return fmt.Errorf("delete mirror pod %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	return nil
}

// deleteMirror deletes a mirror pod at once, that very one (its UID), as
// the kubelet does: no container of it runs to wait for.
func (a *Agent) deleteMirror(ctx context.Context, p *corev1.Pod) error {
	err := a.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &p.UID}})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// statusKey is what of a mirror pod's status a kubelet would report a
// change of: readiness and each container's state (start times to the
// second, as the API keeps them).
func statusKey(st corev1.PodStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", st.Phase, st.PodIP)
	for _, c := range st.Conditions {
		fmt.Fprintf(&b, " %s=%s", c.Type, c.Status)
	}
	for _, c := range st.ContainerStatuses {
		fmt.Fprintf(&b, " %s:%v:%d", c.Name, c.Ready, c.RestartCount)
		if c.State.Running != nil {
			fmt.Fprintf(&b, ":running@%d", c.State.Running.StartedAt.Unix())
		}
		if c.State.Waiting != nil {
			fmt.Fprintf(&b, ":waiting:%s", c.State.Waiting.Reason)
		}
	}
	return b.String()
}

func (a *Agent) mirror(sp StaticPod, name string) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: sp.Pod.Namespace,
		Labels:          sp.Pod.Labels,
		Annotations:     map[string]string{},
		OwnerReferences: []metav1.OwnerReference{a.ownerRef()},
	}}
	for k, v := range sp.Pod.Annotations {
		p.Annotations[k] = v
	}
	p.Annotations[MirrorAnnotation] = sp.Hash
	p.Annotations[hashAnnotation] = sp.Hash
	p.Annotations[sourceAnnotation] = "file"
	p.Annotations[seenAnnotation] = time.Now().UTC().Format(time.RFC3339Nano)
	p.Spec = *sp.Pod.Spec.DeepCopy()
	p.Spec.NodeName = a.Name
	return p
}

func (a *Agent) status(sp StaticPod) corev1.PodStatus {
	ready := corev1.ConditionTrue
	var cs []corev1.ContainerStatus
	for _, c := range sp.Containers {
		st := corev1.ContainerStatus{Name: c.Name, Ready: c.Running, RestartCount: c.RestartCount, Started: &c.Running}
		for _, spec := range sp.Pod.Spec.Containers {
			if spec.Name == c.Name {
				st.Image, st.ImageID = spec.Image, spec.Image
			}
		}
		if c.Running {
			st.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(c.StartedAt)}
		} else {
			ready = corev1.ConditionFalse
			st.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}
		}
		cs = append(cs, st)
	}
	now := metav1.Now()
	return corev1.PodStatus{
		Phase:             corev1.PodRunning,
		HostIP:            a.IP,
		HostIPs:           []corev1.HostIP{{IP: a.IP}},
		PodIP:             a.IP,
		PodIPs:            []corev1.PodIP{{IP: a.IP}},
		StartTime:         &now,
		ContainerStatuses: cs,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: ready, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: ready, LastTransitionTime: now},
		},
	}
}
