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
