package main

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestRegistrationFlags(t *testing.T) {
	labels, taints, err := registration(flags{"node-labels": "pool=general,example.com/tier=web",
		"register-with-taints": "dedicated=web:NoSchedule,spot:NoExecute"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"pool": "general", "example.com/tier": "web"}; !reflect.DeepEqual(labels, want) {
		t.Errorf("labels %v, want %v", labels, want)
	}
	want := []corev1.Taint{{Key: "dedicated", Value: "web", Effect: corev1.TaintEffectNoSchedule}, {Key: "spot", Effect: corev1.TaintEffectNoExecute}}
	if !reflect.DeepEqual(taints, want) {
		t.Errorf("taints %v, want %v", taints, want)
	}
	if _, _, err := registration(flags{"register-with-taints": "dedicated=web"}); err == nil {
		t.Error("a taint without an effect was accepted")
	}
}
