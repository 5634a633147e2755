package nodemeta

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(labels, annotations map[string]string, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "w0", Labels: labels, Annotations: annotations}, Spec: corev1.NodeSpec{Taints: taints}}
}

func taint(key, value string, effect corev1.TaintEffect) corev1.Taint {
	return corev1.Taint{Key: key, Value: value, Effect: effect}
}

func TestReconcile(t *testing.T) {
	kubelets := map[string]string{"kubernetes.io/hostname": "w0"}
	cases := []struct {
		name       string
		node       *corev1.Node
		want       Want
		change     string
		empty      bool
		wantLabels map[string]string
		wantTaints []corev1.Taint
		wantAnnot  map[string]string
	}{
		{name: "nothing wanted, nothing set: no change", node: node(kubelets, nil), empty: true,
			wantLabels: kubelets},
		{name: "adds labels and taints, remembers them",
			node:       node(map[string]string{"kubernetes.io/hostname": "w0"}, nil),
			want:       Want{Labels: map[string]string{"pool": "general", "node-role.kubernetes.io/worker": ""}, Taints: []corev1.Taint{taint("dedicated", "db", corev1.TaintEffectNoSchedule)}},
			change:     "label +node-role.kubernetes.io/worker= +pool=general; taint +dedicated=db:NoSchedule",
			wantLabels: map[string]string{"kubernetes.io/hostname": "w0", "pool": "general", "node-role.kubernetes.io/worker": ""},
			wantTaints: []corev1.Taint{taint("dedicated", "db", corev1.TaintEffectNoSchedule)},
			wantAnnot:  map[string]string{LabelsAnnotation: "node-role.kubernetes.io/worker,pool", TaintsAnnotation: "dedicated:NoSchedule"}},
		{name: "changes a value, removes what fleet set and the inventory dropped, leaves the rest",
			node: node(map[string]string{"pool": "old", "gone": "x", "by-hand": "y"},
				map[string]string{LabelsAnnotation: "gone,pool", TaintsAnnotation: "dedicated:NoSchedule,spot:NoExecute"},
				taint("dedicated", "db", corev1.TaintEffectNoSchedule), taint("spot", "", corev1.TaintEffectNoExecute), taint("by-hand", "", corev1.TaintEffectNoSchedule)),
			want:       Want{Labels: map[string]string{"pool": "general"}, Taints: []corev1.Taint{taint("dedicated", "web", corev1.TaintEffectNoSchedule)}},
			change:     "label +pool=general; label -gone; taint +dedicated=web:NoSchedule; taint -spot:NoExecute",
			wantLabels: map[string]string{"pool": "general", "by-hand": "y"},
			wantTaints: []corev1.Taint{taint("dedicated", "web", corev1.TaintEffectNoSchedule), taint("by-hand", "", corev1.TaintEffectNoSchedule)},
			wantAnnot:  map[string]string{LabelsAnnotation: "pool", TaintsAnnotation: "dedicated:NoSchedule"}},
		{name: "a label the kubelet set at join is adopted: only the annotation changes",
			node:       node(map[string]string{"pool": "general"}, nil),
			want:       Want{Labels: map[string]string{"pool": "general"}},
			change:     "record the labels and taints fleet manages",
			wantLabels: map[string]string{"pool": "general"},
			wantAnnot:  map[string]string{LabelsAnnotation: "pool"}},
		{name: "as wanted and recorded: no change",
			node:       node(map[string]string{"pool": "general"}, map[string]string{LabelsAnnotation: "pool"}),
			want:       Want{Labels: map[string]string{"pool": "general"}},
			empty:      true,
			wantLabels: map[string]string{"pool": "general"},
			wantAnnot:  map[string]string{LabelsAnnotation: "pool"}},
		{name: "the last managed label dropped: removed, annotation gone",
			node:       node(map[string]string{"pool": "general"}, map[string]string{LabelsAnnotation: "pool"}),
			change:     "label -pool",
			wantLabels: map[string]string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := c.node.DeepCopy()
			got, change := Reconcile(c.node, c.want)
			if !reflect.DeepEqual(c.node, before) {
				t.Error("Reconcile changed its input")
			}
			if change.Empty() != c.empty || (!c.empty && change.String() != c.change) {
				t.Errorf("change %q (empty %v), want %q (empty %v)", change, change.Empty(), c.change, c.empty)
			}
			if !reflect.DeepEqual(got.Labels, c.wantLabels) {
				t.Errorf("labels %v, want %v", got.Labels, c.wantLabels)
			}
			if !reflect.DeepEqual(got.Spec.Taints, c.wantTaints) {
				t.Errorf("taints %v, want %v", got.Spec.Taints, c.wantTaints)
			}
			annot := map[string]string{}
			for _, k := range []string{LabelsAnnotation, TaintsAnnotation} {
				if v, ok := got.Annotations[k]; ok {
					annot[k] = v
				}
			}
			if len(annot) == 0 {
				annot = nil
			}
			if !reflect.DeepEqual(annot, c.wantAnnot) {
				t.Errorf("annotations %v, want %v", annot, c.wantAnnot)
			}
			if again, change := Reconcile(got, c.want); !change.Empty() || !reflect.DeepEqual(again, got) {
				t.Errorf("a second reconcile changes %q", change)
			}
		})
	}
}

func TestKubeletLabels(t *testing.T) {
	got := KubeletLabels(map[string]string{
		"pool": "a", "example.com/tier": "b", "node.kubernetes.io/instance": "c", "kubelet.kubernetes.io/x": "d",
		"node-role.kubernetes.io/worker": "", "kubernetes.io/role": "e", "sub.k8s.io/f": "g",
	})
	want := map[string]string{"pool": "a", "example.com/tier": "b", "node.kubernetes.io/instance": "c", "kubelet.kubernetes.io/x": "d"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("kubelet may set %v, want %v", got, want)
	}
}
