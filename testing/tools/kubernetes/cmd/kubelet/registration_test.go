package main

import (
	"os"
	"path/filepath"
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

func TestStaleFlags(t *testing.T) {
	started := flags{"config": "/var/lib/kubelet/config.yaml", "node-ip": "10.0.0.5", "node-labels": "pool=general"}
	tests := []struct {
		name, env string
		stale     bool
	}{
		{"the same flags", `KUBELET_KUBEADM_ARGS="--node-ip=10.0.0.5 --node-labels=pool=general"`, false},
		{"labels changed", `KUBELET_KUBEADM_ARGS="--node-ip=10.0.0.5 --node-labels=pool=web"`, true},
		{"a flag the kubelet did not start with", "KUBELET_KUBEADM_ARGS=\"--node-ip=10.0.0.5 --node-labels=pool=general --register-with-taints=a=b:NoSchedule\"\n", true},
		{"no such line", "# nothing\n", false},
	}
	for _, tt := range tests {
		path := filepath.Join(t.TempDir(), "kubeadm-flags.env")
		os.WriteFile(path, []byte(tt.env), 0o644)
		if got := staleFlags(started, path); got != tt.stale {
			t.Errorf("%s: stale %v, want %v", tt.name, got, tt.stale)
		}
	}
	// /etc/default/kubelet's extra args win over kubeadm's, as in the wrapper.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "env"), []byte(`KUBELET_KUBEADM_ARGS="--node-ip=10.0.0.5 --node-labels=pool=web"`), 0o644)
	os.WriteFile(filepath.Join(dir, "default"), []byte(`KUBELET_EXTRA_ARGS="--node-labels=pool=general"`), 0o644)
	if staleFlags(started, filepath.Join(dir, "env"), filepath.Join(dir, "default")) {
		t.Error("the extra args' value, which the kubelet started with, counted as stale")
	}
	if staleFlags(started, filepath.Join(t.TempDir(), "absent")) {
		t.Error("no flags file: stale")
	}
}
