package playbooks

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/fleetops/fleet/inventory"
)

func TestPodProblem(t *testing.T) {
	pod := func(ready bool, waiting string, restarts int32) *corev1.Pod {
		st := corev1.ContainerStatus{Name: "kube-scheduler", Ready: ready, RestartCount: restarts}
		if waiting != "" {
			st.State.Waiting = &corev1.ContainerStateWaiting{Reason: waiting}
		}
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"component": "kube-scheduler"}},
			Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{st}}}
	}
	for _, tc := range []struct {
		pod  *corev1.Pod
		want string
	}{
		{pod(true, "", 0), ""},
		{pod(true, "", 3), ""}, // restarted, running again: fine now
		{pod(false, "CrashLoopBackOff", 5), "kube-scheduler: CrashLoopBackOff, 5 restarts"},
		{pod(false, "", 1), "kube-scheduler: not ready, 1 restarts"},
	} {
		if got := podProblem(tc.pod); got != tc.want {
			t.Errorf("podProblem = %q, want %q", got, tc.want)
		}
	}
}

func TestFillFromClient(t *testing.T) {
	now := time.Now()
	lease := func(node string, age time.Duration) runtime.Object {
		renewed := metav1.NewMicroTime(now.Add(-age))
		return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: node, Namespace: corev1.NamespaceNodeLease},
			Spec: coordinationv1.LeaseSpec{RenewTime: &renewed}}
	}
	node := func(name string, ready bool) runtime.Object {
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{controlPlaneLabel: ""}},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}}}
	}
	etcd := func(node string) runtime.Object {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "etcd-" + node, Namespace: "kube-system",
			Labels: map[string]string{"tier": "control-plane", "component": "etcd"}},
			Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{Name: "etcd", Ready: true}}}}
	}
	cases := []struct {
		name             string
		reachable        bool
		objects          []runtime.Object
		wantReady        Answer
		wantEtcd         Answer
		wantStale        bool
		wantControlPlane string
	}{
		{name: "a live master", reachable: true, objects: []runtime.Object{node("m", true), lease("m", 5*time.Second), etcd("m")},
			wantReady: Yes, wantEtcd: Yes, wantControlPlane: "ok"},
		{name: "joined but not in the API: no, not ?, and the cut join named", reachable: true, wantReady: No, wantEtcd: No,
			wantControlPlane: "join cut short (Node not marked control-plane): fleet apply redoes it"},
		{name: "unreachable, and the API has not heard from it: its view is marked old", objects: []runtime.Object{node("m", true), lease("m", 3*time.Minute), etcd("m")},
			wantReady: Yes, wantEtcd: Yes, wantStale: true, wantControlPlane: "? (host unreachable; the API's view, 3m0s old: ok)"},
		{name: "unreachable but heard from lately (a cut SSH link): the API's view stands", objects: []runtime.Object{node("m", true), lease("m", 5*time.Second), etcd("m")},
			wantReady: Yes, wantEtcd: Yes, wantControlPlane: "ok"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := &NodeStatus{Host: "m", Role: inventory.RoleMaster, Reachable: c.reachable}
			if c.reachable {
				r.Joined = Yes
			}
			err := fillFromClient(context.Background(), fake.NewSimpleClientset(c.objects...), map[string]*NodeStatus{"m": r}, now)
			if err != nil {
				t.Fatal(err)
			}
			if r.Ready != c.wantReady || r.EtcdMember != c.wantEtcd || r.Stale != c.wantStale || r.ControlPlane != c.wantControlPlane {
				t.Errorf("row %+v; want ready %v etcd %v stale %v control plane %q", r, c.wantReady, c.wantEtcd, c.wantStale, c.wantControlPlane)
			}
		})
	}
}

func TestAnswerNeverSaysNoForUnknown(t *testing.T) {
	var zero NodeStatus
	if zero.Joined.String() != "?" || zero.Ready.String() != "?" || answer(false).String() != "no" || answer(true).String() != "yes" {
		t.Errorf("unknown %q/%q, no %q, yes %q", zero.Joined, zero.Ready, answer(false), answer(true))
	}
}
