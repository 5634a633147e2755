package playbooks

import (
	"context"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

func pod(name, node string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: corev1.PodSpec{NodeName: node}}
	for _, m := range mutate {
		m(p)
	}
	return p
}

func mirror(p *corev1.Pod) { p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "x"} }

func daemonSet(p *corev1.Pod) { controlledBy("DaemonSet", "apps/v1")(p) }

func replicaSet(p *corev1.Pod) { controlledBy("ReplicaSet", "apps/v1")(p) }

func controlledBy(kind, apiVersion string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		yes := true
		p.OwnerReferences = []metav1.OwnerReference{{Kind: kind, APIVersion: apiVersion, Name: "owner", Controller: &yes}}
	}
}

func emptyDir(p *corev1.Pod) {
	p.Spec.Volumes = []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
}

// fakeCluster is a fake clientset that answers as an API server does for
// what a drain uses: discovery names the Eviction subresource, evictions
// delete pods (or are refused for the protected ones), and pod lists are
// filtered by spec.nodeName.
func fakeCluster(protected map[string]bool, objects ...runtime.Object) *fake.Clientset {
	client := fake.NewSimpleClientset(objects...)
	client.Fake.Resources = []*metav1.APIResourceList{{GroupVersion: "v1", APIResources: []metav1.APIResource{
		{Name: "pods", Namespaced: true, Kind: "Pod", Version: "v1"},
		{Name: "pods/eviction", Namespaced: true, Kind: "Eviction", Group: "policy", Version: "v1"},
	}}}
	evictionReactor(client, protected)
	nodeNameSelector(client)
	return client
}

// The fake clientset does not implement the Eviction subresource: the
// reactor does what the API server does, deleting the pod, or refuses with
// 429 as for a PodDisruptionBudget that allows no disruption.
func evictionReactor(client *fake.Clientset, protected map[string]bool) {
	client.PrependReactor("create", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		if a.GetSubresource() != "eviction" {
			return false, nil, nil
		}
		name := a.(clienttesting.CreateAction).GetObject().(metav1.Object).GetName()
		if protected[name] {
			return true, nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 0)
		}
		err := client.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, a.GetNamespace(), name)
		return true, nil, err
	})
}

// The fake clientset ignores field selectors; the API server filters pods
// by spec.nodeName, and so does this reactor.
func nodeNameSelector(client *fake.Clientset) {
	client.PrependReactor("list", "pods", func(a clienttesting.Action) (bool, runtime.Object, error) {
		obj, err := client.Tracker().List(schema.GroupVersionResource{Version: "v1", Resource: "pods"},
			schema.GroupVersionKind{Version: "v1", Kind: "Pod"}, a.GetNamespace())
		if err != nil {
			return true, nil, err
		}
		list := obj.(*corev1.PodList)
		selector := a.(clienttesting.ListAction).GetListRestrictions().Fields
		var kept []corev1.Pod
		for _, p := range list.Items {
			if selector.Matches(fields.Set{"spec.nodeName": p.Spec.NodeName}) {
				kept = append(kept, p)
			}
		}
		list.Items = kept
		return true, list, nil
	})
}

func TestDrainNode(t *testing.T) {
	cases := []struct {
		name        string
		pods        []runtime.Object
		protected   map[string]bool
		opts        drainOptions
		noNode      bool
		wantErr     string // "" for success
		notCordoned bool   // refused before anything changed
		wantLeft    []string
	}{
		{name: "evicts the node's pods and leaves other nodes alone",
			pods:     []runtime.Object{pod("web", "w1", replicaSet), pod("db", "w1", replicaSet), pod("elsewhere", "w2")},
			wantLeft: []string{"elsewhere"}},
		{name: "static and DaemonSet pods stay",
			pods: []runtime.Object{pod("kube-proxy", "w1", daemonSet), pod("etcd-w1", "w1", mirror), pod("web", "w1", replicaSet),
				&appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "owner", Namespace: "default"}}},
			wantLeft: []string{"etcd-w1", "kube-proxy"}},
		{name: "a pod no controller manages is refused, naming fleet's flag, before the cordon",
			pods:    []runtime.Object{pod("web", "w1", replicaSet), pod("bare", "w1")},
			wantErr: "--force-drain", notCordoned: true, wantLeft: []string{"bare", "web"}},
		{name: "with force-drain it goes",
			pods: []runtime.Object{pod("web", "w1", replicaSet), pod("bare", "w1")}, opts: drainOptions{force: true}},
		{name: "a pod with emptyDir data is refused, naming fleet's flag",
			pods:    []runtime.Object{pod("cache", "w1", replicaSet, emptyDir)},
			wantErr: "--delete-emptydir-data", notCordoned: true, wantLeft: []string{"cache"}},
		{name: "with delete-emptydir-data it goes",
			pods: []runtime.Object{pod("cache", "w1", replicaSet, emptyDir)}, opts: drainOptions{deleteEmptyDirData: true}},
		{name: "a disruption budget that never allows it times out with the API's reason",
			pods:      []runtime.Object{pod("web", "w1", replicaSet), pod("quorum", "w1", replicaSet)},
			protected: map[string]bool{"quorum": true}, opts: drainOptions{timeout: 1500 * time.Millisecond},
			wantErr: "disruption budget", wantLeft: []string{"quorum"}},
		{name: "a node not in the cluster has nothing to drain", noNode: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			objects := c.pods
			if !c.noNode {
				objects = append(objects, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w1"}})
			}
			client := fakeCluster(c.protected, objects...)
			opts := c.opts
			if opts.timeout == 0 {
				opts.timeout = 10 * time.Second
			}

			err := drainNode(context.Background(), client, "w1", opts)
			if c.wantErr == "" && err != nil {
				t.Fatalf("drain: %v", err)
			}
			if c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Fatalf("drain error = %v, want one naming %q", err, c.wantErr)
			}
			if c.noNode {
				return
			}
			node, err := client.CoreV1().Nodes().Get(context.Background(), "w1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if node.Spec.Unschedulable == c.notCordoned {
				t.Fatalf("cordoned = %v, want %v", node.Spec.Unschedulable, !c.notCordoned)
			}
			list, err := client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			for _, p := range list.Items {
				left = append(left, p.Name)
			}
			if strings.Join(left, ",") != strings.Join(c.wantLeft, ",") {
				t.Fatalf("pods left = %v, want %v", left, c.wantLeft)
			}
		})
	}
}
