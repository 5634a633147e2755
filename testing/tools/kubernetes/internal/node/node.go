// Package node is the kubelet's side of the API: it registers the Node,
// keeps it Ready with status patches and a Lease, and publishes a mirror pod
// for every static pod, owned by the Node as NodeRestriction demands.
package node

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
)

// Agent speaks for one node.
type Agent struct {
	Client  kubernetes.Interface
	Name    string
	IP      string
	Version string // kubelet version, e.g. v1.34.4
	Runtime string // container runtime version string
	// LeaseSeconds is the lease duration; heartbeats come every quarter.
	LeaseSeconds int32
	// Labels and Taints the Node registers with (--node-labels,
	// --register-with-taints); later changes are the API's, not the kubelet's.
	Labels map[string]string
	Taints []corev1.Taint

	uid          types.UID
	statusPosted time.Time             // the last Node status patch
	pods         corelisters.PodLister // the node's pods, from a watch (WatchPods); nil: listed each time
}

// WatchPods keeps the node's pods in a cache fed by a watch, as a kubelet
// does (one watch on spec.nodeName), instead of a list per sync: a hundred
// nodes listing their pods every two seconds was most of an idle test
// bed's load. It returns once the cache has synced, or after wait with an
// error (the agent then lists, as before).
func (a *Agent) WatchPods(ctx context.Context, wait time.Duration) error {
	factory := informers.NewSharedInformerFactoryWithOptions(a.Client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", a.Name).String()
	}))
	pods := factory.Core().V1().Pods()
	lister := pods.Lister()
	factory.Start(ctx.Done())
	waitCtx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if !cache.WaitForCacheSync(waitCtx.Done(), pods.Informer().HasSynced) {
		return fmt.Errorf("watch pods of %s: not synced after %s", a.Name, wait)
	}
	a.pods = lister
	return nil
}

// nodePods are the pods bound to the node: from the watch's cache, else
// listed.
func (a *Agent) nodePods(ctx context.Context) ([]*corev1.Pod, error) {
	if a.pods != nil {
		return a.pods.List(labels.Everything())
	}
	list, err := a.Client.CoreV1().Pods(corev1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + a.Name})
	if err != nil {
		return nil, fmt.Errorf("list pods of %s: %w", a.Name, err)
	}
	out := make([]*corev1.Pod, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// Register creates the Node if it does not exist and remembers its UID.
func (a *Agent) Register(ctx context.Context) error {
	n, err := a.Client.CoreV1().Nodes().Get(ctx, a.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		labels := map[string]string{}
		for k, v := range a.Labels {
			labels[k] = v
		}
		for k, v := range map[string]string{
			"kubernetes.io/hostname":  a.Name,
			"kubernetes.io/os":        runtime.GOOS,
			"kubernetes.io/arch":      runtime.GOARCH,
			"beta.kubernetes.io/os":   runtime.GOOS,
			"beta.kubernetes.io/arch": runtime.GOARCH,
		} {
			labels[k] = v
		}
		n, err = a.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: a.Name, Labels: labels},
			Spec:       corev1.NodeSpec{Taints: a.Taints},
		}, metav1.CreateOptions{})
	}
	if err != nil {
		return fmt.Errorf("register node %s: %w", a.Name, err)
	}
	a.uid = n.UID
	return a.Heartbeat(ctx)
}

// UID is the registered Node's UID.
func (a *Agent) UID() types.UID { return a.uid }

// statusReportEvery is how often an unchanged Node status is posted
// again. The Lease is the heartbeat (renewed at every call); the kubelet
// posts an unchanged status only every nodeStatusReportFrequency (5m),
// and a hundred nodes posting theirs every ten seconds loaded the test
// bed's API servers for nothing. Shorter than the kubelet's, to be safe.
const statusReportEvery = time.Minute

// Heartbeat renews the Lease and, at first and then every
// statusReportEvery, patches the Node's status Ready. The Node authorizer
// lets a node patch its own status but not read nodes/status, so this
// patches blind.
func (a *Agent) Heartbeat(ctx context.Context) error {
	if err := a.renewLease(ctx); err != nil {
		return err
	}
	if !a.statusPosted.IsZero() && time.Since(a.statusPosted) < statusReportEvery {
		return nil
	}
	now := metav1.Now()
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("2"),
		corev1.ResourceMemory: resource.MustParse("4Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	status := corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "sim kubelet is posting ready status"),
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", ""),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", ""),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", ""),
		},
		Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: a.IP}, {Type: corev1.NodeHostName, Address: a.Name}},
		NodeInfo: corev1.NodeSystemInfo{
			KubeletVersion: a.Version, KubeProxyVersion: a.Version,
			OperatingSystem: runtime.GOOS, Architecture: runtime.GOARCH,
			OSImage: "fleet simulated host", ContainerRuntimeVersion: a.Runtime,
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
	}
	patch, err := json.Marshal(map[string]any{"status": status})
	if err != nil {
		return err
	}
	_, err = a.Client.CoreV1().Nodes().PatchStatus(ctx, a.Name, patch)
	if err != nil {
		return fmt.Errorf("node %s status: %w", a.Name, err)
	}
	a.statusPosted = time.Now()
	return nil
}

func (a *Agent) renewLease(ctx context.Context) error {
	leases := a.Client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(ctx, a.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: a.Name, Namespace: corev1.NamespaceNodeLease,
				OwnerReferences: []metav1.OwnerReference{a.ownerRef()}},
			Spec: coordv1.LeaseSpec{HolderIdentity: ptr.To(a.Name), LeaseDurationSeconds: ptr.To(a.LeaseSeconds), RenewTime: &now},
		}, metav1.CreateOptions{})
		return wrap("create lease", err)
	}
	if err != nil {
		return wrap("get lease", err)
	}
	l.Spec.RenewTime = &now
	l.Spec.HolderIdentity = ptr.To(a.Name)
	l.Spec.LeaseDurationSeconds = ptr.To(a.LeaseSeconds)
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return wrap("renew lease", err)
}

func (a *Agent) ownerRef() metav1.OwnerReference {
	return metav1.OwnerReference{APIVersion: "v1", Kind: "Node", Name: a.Name, UID: a.uid, Controller: ptr.To(true)}
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}
