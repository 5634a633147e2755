package staticpod

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func manifest(name, hash string) Manifest {
	m, err := Parse(name+".yaml", []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: "+name+"\n  namespace: kube-system\nspec:\n  containers:\n  - name: c\n    command: [sleep, \"100\"]\n"))
	if err != nil {
		panic(err)
	}
	m.Hash = hash
	return m
}

func TestDiff(t *testing.T) {
	tests := []struct {
		name      string
		running   map[string]string
		wanted    []Manifest
		stop      string
		startKeys string
	}{
		{"nothing", nil, nil, "", ""},
		{"new pod", nil, []Manifest{manifest("etcd", "a")}, "", "kube-system/etcd"},
		{"unchanged", map[string]string{"kube-system/etcd": "a"}, []Manifest{manifest("etcd", "a")}, "", ""},
		{"changed", map[string]string{"kube-system/etcd": "a"}, []Manifest{manifest("etcd", "b")}, "kube-system/etcd", "kube-system/etcd"},
		{"removed (kubeadm reset)", map[string]string{"kube-system/etcd": "a", "kube-system/kube-apiserver": "x"}, nil,
			"kube-system/etcd,kube-system/kube-apiserver", ""},
		{"mixed", map[string]string{"kube-system/etcd": "a", "kube-system/old": "o"},
			[]Manifest{manifest("etcd", "a"), manifest("kube-scheduler", "s")}, "kube-system/old", "kube-system/kube-scheduler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stop, start := Diff(tt.running, tt.wanted)
			var keys []string
			for _, m := range start {
				keys = append(keys, m.Key())
			}
			if got := strings.Join(stop, ","); got != tt.stop {
				t.Errorf("stop %q, want %q", got, tt.stop)
			}
			if got := strings.Join(keys, ","); got != tt.startKeys {
				t.Errorf("start %q, want %q", got, tt.startKeys)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := map[string]string{
		"not yaml":      "{{{",
		"no containers": "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n",
		"image only":    "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers: [{name: c, image: nginx}]\n",
		"unknown field": "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  bogus: 1\n  containers: [{name: c, command: [true]}]\n",
	}
	for name, src := range tests {
		if _, err := Parse("m.yaml", []byte(src)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Initial: time.Second, Max: 8 * time.Second, ResetAfter: time.Minute}
	tests := []struct{ prev, ran, want time.Duration }{
		{0, 0, time.Second},
		{time.Second, 0, 2 * time.Second},
		{4 * time.Second, time.Second, 8 * time.Second},
		{8 * time.Second, time.Second, 8 * time.Second},
		{8 * time.Second, 2 * time.Minute, time.Second},
	}
	for _, tt := range tests {
		if got := b.Next(tt.prev, tt.ran); got != tt.want {
			t.Errorf("Next(%s, %s) = %s, want %s", tt.prev, tt.ran, got, tt.want)
		}
	}
}

func writeManifest(t *testing.T, dir, name, cmd string) {
	t.Helper()
	src := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\n  namespace: kube-system\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    command: [sh, -c, " + `"` + cmd + `"` + "]\n"
	tmp := filepath.Join(dir, "."+name)
	if err := os.WriteFile(tmp, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name+".yaml")); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunnerRunsRestartsAndStopsRealProcesses drives real processes: each
// writes its pid to a file, so the test can see them start, restart and end.
func TestRunnerRunsRestartsAndStopsRealProcesses(t *testing.T) {
	dir, logs, state := t.TempDir(), t.TempDir(), t.TempDir()
	r := &Runner{Dir: dir, LogDir: logs, Backoff: Backoff{Initial: 50 * time.Millisecond, Max: 200 * time.Millisecond, ResetAfter: time.Minute}, MaxGrace: 2 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer r.StopAll()
	pidFile := filepath.Join(state, "pid")
	pid := func() string { b, _ := os.ReadFile(pidFile); return strings.TrimSpace(string(b)) }
	alive := func(p string) bool { _, err := os.Stat("/proc/" + p); return p != "" && err == nil && !zombie(p) }

	writeManifest(t, dir, "web", "echo $$ > "+pidFile+"; exec sleep 1000")
	r.Sync(ctx)
	waitFor(t, "first start", func() bool { return alive(pid()) })
	first := pid()

	// A change restarts the pod: the old process ends, a new one runs.
	writeManifest(t, dir, "web", "echo $$ > "+pidFile+"; exec sleep 1001")
	r.Sync(ctx)
	waitFor(t, "restart after change", func() bool { return pid() != first && alive(pid()) })
	if alive(first) {
		t.Errorf("old process %s survived the manifest change", first)
	}

	// A crash is restarted with back-off and counted.
	second := pid()
	if err := killPid(second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "restart after crash", func() bool { return pid() != second && alive(pid()) })
	if st := r.Pods()[0].Statuses()[0]; st.RestartCount != 1 || !st.Running {
		t.Errorf("status after one crash: %+v", st)
	}

	// Removing the manifest stops it, as kubeadm reset does.
	third := pid()
	os.Remove(filepath.Join(dir, "web.yaml"))
	r.Sync(ctx)
	waitFor(t, "stop after removal", func() bool { return !alive(third) })
	if len(r.Pods()) != 0 {
		t.Errorf("pods after removal: %d", len(r.Pods()))
	}
	if b, _ := os.ReadFile(filepath.Join(logs, "kube-system_web", "main.log")); !strings.Contains(string(b), "exited") {
		t.Errorf("log lacks the crash: %q", b)
	}
}

func TestCrashLoopBacksOff(t *testing.T) {
	dir, logs := t.TempDir(), t.TempDir()
	r := &Runner{Dir: dir, LogDir: logs, Backoff: Backoff{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond, ResetAfter: time.Minute}, MaxGrace: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer r.StopAll()
	writeManifest(t, dir, "crash", "exit 3")
	r.Sync(ctx)
	time.Sleep(1500 * time.Millisecond)
	// Delays 100, 200, 400, 400, ...: about 5 restarts in 1.5s, not hundreds.
	n := r.Pods()[0].Statuses()[0].RestartCount
	if n < 3 || n > 6 {
		t.Errorf("%d restarts in 1.5s, want 3..6 with back-off", n)
	}
}

func TestImageBinary(t *testing.T) {
	images := t.TempDir()
	next := filepath.Join(images, "v1.35.4", "kube-apiserver")
	if err := os.MkdirAll(filepath.Dir(next), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(next, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ images, image, command, want string }{
		{images, "registry.k8s.io/kube-apiserver:v1.35.4", "kube-apiserver", next},
		{images, "registry.k8s.io/kube-apiserver:v1.34.4", "kube-apiserver", "kube-apiserver"}, // not unpacked: PATH's
		{images, "registry.k8s.io/etcd:3.6.5-0", "etcd", "etcd"},
		{images, "registry.k8s.io/kube-apiserver:v1.35.4", "/usr/local/bin/kube-apiserver", "/usr/local/bin/kube-apiserver"}, // a path stays
		{images, "registry.k8s.io/kube-apiserver", "kube-apiserver", "kube-apiserver"},                                       // no tag
		{images, "localhost:5000/kube-apiserver:..", "kube-apiserver", "kube-apiserver"},
		{"", "registry.k8s.io/kube-apiserver:v1.35.4", "kube-apiserver", "kube-apiserver"}, // no images folder
	} {
		if got := ImageBinary(tc.images, tc.image, tc.command); got != tc.want {
			t.Errorf("ImageBinary(%q, %q) = %q, want %q", tc.image, tc.command, got, tc.want)
		}
	}
}
