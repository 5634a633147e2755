package node

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
// listing them (a GET of a pod that does not exist yet is refused), so this
// lists the node's pods once and works from that.
func (a *Agent) SyncMirrors(ctx context.Context, pods []StaticPod) error {
	pc := a.Client.CoreV1().Pods
	list, err := pc(corev1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + a.Name})
	if err != nil {
		return fmt.Errorf("list pods of %s: %w", a.Name, err)
	}
	existing := map[string]*corev1.Pod{}
	for i := range list.Items {
		p := &list.Items[i]
		if _, mirror := p.Annotations[MirrorAnnotation]; mirror {
			existing[p.Namespace+"/"+p.Name] = p
		}
	}
	for _, sp := range pods {
		name := MirrorName(sp.Pod.Name, a.Name)
		key := sp.Pod.Namespace + "/" + name
		cur := existing[key]
		delete(existing, key)
		if cur != nil && cur.Annotations[MirrorAnnotation] != sp.Hash {
			if err := pc(sp.Pod.Namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("replace mirror pod %s: %w", key, err)
			}
			cur = nil
		}
		if cur == nil {
			if cur, err = pc(sp.Pod.Namespace).Create(ctx, a.mirror(sp, name), metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("mirror pod %s: %w", key, err)
			}
		}
		cur.Status = a.status(sp)
		if _, err := pc(sp.Pod.Namespace).UpdateStatus(ctx, cur, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("mirror pod %s status: %w", key, err)
		}
	}
	for _, p := range existing { // their static pods are gone
		if err := pc(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete mirror pod %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	return nil
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
