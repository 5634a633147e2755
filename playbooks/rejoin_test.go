package playbooks

import (
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestJoinLeftoversScriptScansOnlyWithAConfig runs the script with this
// machine's sh and procps: a process that matches the pattern stands in for
// a kubeadm join a lost run left. It is stopped while the join's config
// file is there, and left alone (no process scan) once the file is gone.
func TestJoinLeftoversScriptScansOnlyWithAConfig(t *testing.T) {
	if _, err := osexec.LookPath("pkill"); err != nil {
		t.Skip("no pkill here")
	}
	for _, tc := range []struct {
		name       string
		config     bool
		wantKilled bool
	}{
		{"the join's config is there: the join is stopped", true, true},
		{"no config: no join of fleet's can run, nothing scanned", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			config := filepath.Join(dir, joinConfigName)
			if tc.config {
				if err := os.WriteFile(config, []byte("kind: JoinConfiguration\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			// A sleep with a duration no other process has: the pattern
			// matches it alone.
			arg := fmt.Sprintf("%d.%d", 3000+os.Getpid()%1000, time.Now().UnixNano()%1000)
			join := osexec.Command("sleep", arg)
			if err := join.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- join.Wait() }()
			defer join.Process.Kill()

			out, err := osexec.Command("sh", "-c", joinLeftoversScript, "fleet-rejoin", "^sleep "+strings.ReplaceAll(arg, ".", `\.`)+"$", config).CombinedOutput()
			if err != nil {
				t.Fatalf("script: %v: %s", err, out)
			}
			select {
			case err := <-done:
				if !tc.wantKilled {
					t.Fatalf("the process ended (%v) though no config file was there", err)
				}
				if ws, ok := join.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
					t.Errorf("the process ended with %v, want SIGTERM", join.ProcessState)
				}
			case <-time.After(500 * time.Millisecond):
				if tc.wantKilled {
					t.Fatal("the process still runs though the join's config file was there")
				}
			}
			if got := strings.TrimSpace(string(out)); got != "left" && got != "clean" {
				t.Errorf("script said %q, want left or clean", got)
			}
		})
	}
}

// TestStartedJoinTest runs the condition with this machine's sh against a
// folder of its own in place of /etc/kubernetes: a manifests folder with
// anything in it (a dotfile, a dangling link) means a join began.
func TestStartedJoinTest(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(dir string) error
		want  bool
	}{
		{"nothing there", func(string) error { return nil }, false},
		{"an empty manifests folder", func(dir string) error { return os.Mkdir(filepath.Join(dir, "manifests"), 0o755) }, false},
		{"a static pod's manifest", func(dir string) error { return writeIn(dir, "manifests/etcd.yaml") }, true},
		{"a dotfile only", func(dir string) error { return writeIn(dir, "manifests/.etcd.yaml.swp") }, true},
		{"a dangling link only", func(dir string) error {
			if err := os.Mkdir(filepath.Join(dir, "manifests"), 0o755); err != nil {
				return err
			}
			return os.Symlink("/nonexistent", filepath.Join(dir, "manifests", "kube-apiserver.yaml"))
		}, true},
		{"kubeadm's kubelet flags", func(dir string) error { return writeIn(dir, "kubeadm-flags.env") }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := tc.setup(dir); err != nil {
				t.Fatal(err)
			}
			cond := strings.NewReplacer("/etc/kubernetes", dir, "/var/lib/kubelet", dir).Replace(startedJoinTest)
			if strings.Contains(cond, "/etc/") || strings.Contains(cond, "/var/lib/") {
				t.Fatalf("the condition names a path the test did not move: %s", cond)
			}
			err := osexec.Command("sh", "-c", "if "+cond+"; then exit 0; else exit 1; fi").Run()
			if got := err == nil; got != tc.want {
				t.Errorf("started = %v (%v), want %v", got, err, tc.want)
			}
		})
	}
}

func writeIn(dir, name string) error {
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte("x"), 0o600)
}
