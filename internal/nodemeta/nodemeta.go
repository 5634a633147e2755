// Package nodemeta reconciles the labels and taints the inventory gives a
// node with the Node the cluster holds. fleet owns only what it set: the
// keys are remembered in annotations on the Node, so that a label or
// taint the inventory drops is removed, and one someone else set is never
// touched. Pure functions; the playbooks read and write the Node.
package nodemeta

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// The annotations that remember what fleet set on a Node.
const (
	LabelsAnnotation = "fleet.fleetops.dev/labels" // label keys, comma-separated
	TaintsAnnotation = "fleet.fleetops.dev/taints" // key:effect of each taint, comma-separated
)

// Want is what the inventory gives one node.
type Want struct {
	Labels map[string]string
	Taints []corev1.Taint
}

// Change is what Reconcile did to the Node, for the plan and the output.
type Change struct {
	SetLabels    []string // "key=value", added or changed
	RemoveLabels []string // keys
	AddTaints    []string // "key=value:Effect", added or changed
	RemoveTaints []string // "key:Effect"
	// Adopted: only the annotations change (the Node already had the
	// labels and taints, set by hand or by the kubelet at join).
	Adopted bool
}

// Empty: the Node is as the inventory wants it.
func (c Change) Empty() bool {
	return len(c.SetLabels)+len(c.RemoveLabels)+len(c.AddTaints)+len(c.RemoveTaints) == 0 && !c.Adopted
}

func (c Change) String() string {
	var parts []string
	add := func(what, sign string, items []string) {
		if len(items) > 0 {
			parts = append(parts, what+" "+sign+strings.Join(items, " "+sign))
		}
	}
	add("label", "+", c.SetLabels)
	add("label", "-", c.RemoveLabels)
	add("taint", "+", c.AddTaints)
	add("taint", "-", c.RemoveTaints)
	if len(parts) == 0 && c.Adopted {
		return "record the labels and taints fleet manages"
	}
	return strings.Join(parts, "; ")
}

// Reconcile returns a copy of node with want's labels and taints, the
// ones fleet set earlier and want no longer has removed, and the
// annotations updated; and what changed.
func Reconcile(node *corev1.Node, want Want) (*corev1.Node, Change) {
	out := node.DeepCopy()
	var c Change
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	for _, k := range slices.Sorted(maps.Keys(want.Labels)) {
		if v, ok := out.Labels[k]; !ok || v != want.Labels[k] {
			out.Labels[k] = want.Labels[k]
			c.SetLabels = append(c.SetLabels, k+"="+want.Labels[k])
		}
	}
	for _, k := range managed(node, LabelsAnnotation) {
		if _, wanted := want.Labels[k]; wanted {
			continue
		}
		if _, ok := out.Labels[k]; ok {
			delete(out.Labels, k)
			c.RemoveLabels = append(c.RemoveLabels, k)
		}
	}

	wanted := map[string]corev1.Taint{}
	for _, t := range want.Taints {
		wanted[taintID(t)] = t
	}
	var kept []corev1.Taint
	seen := map[string]bool{}
	owned := managed(node, TaintsAnnotation)
	for _, t := range out.Spec.Taints {
		id := taintID(t)
		w, isWanted := wanted[id]
		switch {
		case isWanted:
			seen[id] = true
			if t.Value != w.Value {
				t.Value = w.Value
				c.AddTaints = append(c.AddTaints, taintString(w))
			}
		case slices.Contains(owned, id):
			c.RemoveTaints = append(c.RemoveTaints, id)
			continue
		}
		kept = append(kept, t)
	}
	for _, t := range want.Taints {
		if !seen[taintID(t)] {
			kept = append(kept, corev1.Taint{Key: t.Key, Value: t.Value, Effect: t.Effect})
			c.AddTaints = append(c.AddTaints, taintString(t))
		}
	}
	out.Spec.Taints = kept

	labelKeys := slices.Sorted(maps.Keys(want.Labels))
	taintIDs := slices.Sorted(maps.Keys(wanted))
	before := [2]string{node.Annotations[LabelsAnnotation], node.Annotations[TaintsAnnotation]}
	setAnnotation(out, LabelsAnnotation, labelKeys)
	setAnnotation(out, TaintsAnnotation, taintIDs)
	after := [2]string{out.Annotations[LabelsAnnotation], out.Annotations[TaintsAnnotation]}
	visible := len(c.SetLabels)+len(c.RemoveLabels)+len(c.AddTaints)+len(c.RemoveTaints) > 0
	c.Adopted = before != after && !visible
	sort.Strings(c.RemoveLabels)
	sort.Strings(c.RemoveTaints)
	return out, c
}

// managed lists what fleet recorded in an annotation.
func managed(node *corev1.Node, annotation string) []string {
	v := node.Annotations[annotation]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

func setAnnotation(node *corev1.Node, annotation string, items []string) {
	if len(items) == 0 {
		delete(node.Annotations, annotation)
		return
	}
	if node.Annotations == nil {
		node.Annotations = map[string]string{}
	}
	node.Annotations[annotation] = strings.Join(items, ",")
}

// taintID is a taint's identity on a Node: one per key and effect.
func taintID(t corev1.Taint) string { return t.Key + ":" + string(t.Effect) }

func taintString(t corev1.Taint) string {
	if t.Value == "" {
		return taintID(t)
	}
	return fmt.Sprintf("%s=%s:%s", t.Key, t.Value, t.Effect)
}

// KubeletLabels are the labels a kubelet may set on its own Node at
// registration (--node-labels): the NodeRestriction admission plugin
// refuses kubernetes.io and k8s.io keys but for the kubelet's and node's
// own namespaces. The rest wait for the reconcile through the API.
func KubeletLabels(labels map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range labels {
		if kubeletMaySet(k) {
			out[k] = v
		}
	}
	return out
}

func kubeletMaySet(key string) bool {
	prefix, _, found := strings.Cut(key, "/")
	if !found {
		return true
	}
	restricted := func(domain string) bool { return prefix == domain || strings.HasSuffix(prefix, "."+domain) }
	if !restricted("kubernetes.io") && !restricted("k8s.io") {
		return true
	}
	for _, allowed := range []string{"kubelet.kubernetes.io", "node.kubernetes.io"} {
		if prefix == allowed || strings.HasSuffix(prefix, "."+allowed) {
			return true
		}
	}
	return false
}
