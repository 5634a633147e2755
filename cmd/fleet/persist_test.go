package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/sim"
)

// TestPersistKeepsConnections: with --persist the first run starts a
// connection holder and the second logs in to no host (sshd accepts no
// new connection) yet reaches them all; the holder ends when idle, and
// its folder and log hold nothing anyone else may read.
func TestPersistKeepsConnections(t *testing.T) {
	sim.Need(t, cluster)
	dir := filepath.Join(t.TempDir(), "mux")
	t.Setenv(playbooks.MuxDirEnv, dir)
	t.Setenv(cliChildEnv, "1") // the holder is this test binary run as fleet
	accepted := func() int {
		n := 0
		for _, h := range cluster.Hosts {
			data, _ := os.ReadFile(filepath.Join(h.Dir, "sshd.log"))
			n += strings.Count(string(data), "Accepted publickey")
		}
		return n
	}
	before := accepted()
	code, first, errs := fleet("--persist", "3s", "check", "-i", cluster.Inventory)
	if code != 0 || !strings.Contains(first, "6 of 6 hosts reachable") {
		t.Fatalf("first run: exit %d\n%s\n%s", code, first, errs)
	}
	if got := accepted() - before; got != len(cluster.Hosts) {
		t.Errorf("the first run logged in %d times, want once per host (%d)", got, len(cluster.Hosts))
	}
	before = accepted()
	code, second, errs := fleet("--persist", "3s", "check", "-i", cluster.Inventory)
	if code != 0 || !strings.Contains(second, "6 of 6 hosts reachable") {
		t.Fatalf("second run: exit %d\n%s\n%s", code, second, errs)
	}
	if got := accepted() - before; got != 0 {
		t.Errorf("the second run logged in %d times, want 0: the holder's connections", got)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the holder's folder: %v, mode %v", err, fi.Mode().Perm())
	}
	if log, _ := os.ReadFile(filepath.Join(dir, "mux.log")); len(log) != 0 {
		t.Errorf("the holder logged: %q", log)
	}
	// Asking would keep it: its socket goes when it ends.
	sock := filepath.Join(dir, "mux-v1.sock")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(sock); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the holder still listens long after its idle time")
		}
	}
	// Without --persist nothing is held: each run logs in.
	before = accepted()
	if code, _, errs := fleet("check", "-i", cluster.Inventory); code != 0 || accepted()-before != len(cluster.Hosts) {
		t.Errorf("a run without --persist: exit %d, %d logins\n%s", code, accepted()-before, errs)
	}
}
