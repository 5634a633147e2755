package playbooks_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/sim"
)

var cluster *sim.Cluster

func TestMain(m *testing.M) {
	if dir := os.Getenv(lostRunEnv); dir != "" {
		os.Exit(lostRun(dir))
	}
	os.Exit(sim.RunTests(m, sim.HA("pb", 20), &cluster))
}

func session(t *testing.T, opts playbooks.Options) *playbooks.Session {
	t.Helper()
	inv, err := inventory.Load(cluster.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	s, err := playbooks.NewSession(inv, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestCheckProbesEveryHost(t *testing.T) {
	sim.Need(t, cluster)
	results, report, err := playbooks.Check(context.Background(), session(t, playbooks.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != len(cluster.Hosts) {
		t.Fatalf("%d results for %d hosts", len(results), len(cluster.Hosts))
	}
	for i, r := range results {
		if r.Host != cluster.Hosts[i].Name || r.Address != cluster.Hosts[i].Address {
			t.Errorf("result %d is %s at %s, want %s in inventory order", i, r.Host, r.Address, cluster.Hosts[i].Name)
		}
		if !r.Reachable() || r.Facts.OS != "Linux" || r.Facts.Arch == "" {
			t.Errorf("%s: %+v", r.Host, r)
		}
		// nginx is installed on the machine, so every simulated host has it.
		if !r.Facts.Has("nginx") {
			t.Errorf("%s: nginx not found", r.Host)
		}
	}
	if report.Count(steps.Succeeded) != len(cluster.Hosts) {
		t.Errorf("report %+v", report.Events)
	}
}

func TestCheckReportsAnUnreachableHostAndTheRest(t *testing.T) {
	sim.Need(t, cluster)
	if err := cluster.LinkDown("worker1"); err != nil {
		t.Fatal(err)
	}
	defer cluster.LinkUp("worker1")
	inv, err := inventory.Load(cluster.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	inv.SSH.ConnectTimeout = inventory.Duration(1e9) // 1s: the host is gone, not slow
	s, err := playbooks.NewSession(inv, playbooks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	results, _, err := playbooks.Check(context.Background(), s)
	var se *steps.StepError
	if !errors.As(err, &se) || se.Host != "worker1" || se.Step != "probe" {
		t.Fatalf("error %v, want probe failure on worker1", err)
	}
	for _, r := range results {
		if (r.Host == "worker1") == r.Reachable() {
			t.Errorf("%s reachable=%v", r.Host, r.Reachable())
		}
	}
}

func TestCheckTrustsNewHostsOnlyWhenAsked(t *testing.T) {
	sim.Need(t, cluster)
	empty := filepath.Join(t.TempDir(), "known_hosts")
	_, _, err := playbooks.Check(context.Background(), session(t, playbooks.Options{KnownHosts: empty}))
	var unknown *exec.UnknownHostError
	if !errors.As(err, &unknown) {
		t.Fatalf("got %v, want unknown host errors", err)
	}
	results, _, err := playbooks.Check(context.Background(), session(t, playbooks.Options{KnownHosts: empty, AcceptNewHostKeys: true}))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(empty)
	if got := strings.Count(string(b), "\n"); got != len(results) {
		t.Errorf("known_hosts has %d lines after accepting %d hosts", got, len(results))
	}
}

// TestReadFilesInOneCommand: the files the checks read together come back
// byte for byte, whatever they hold and however they are named; a missing
// one is absent.
func TestReadFilesInOneCommand(t *testing.T) {
	sim.Need(t, cluster)
	h := cluster.Hosts[0]
	dir := filepath.Join(h.Dir, "tmp", "read files")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{
		"/tmp/read files/binary":          {0, 0xff, '\n', '-', '1', '\n'},
		"/tmp/read files/empty":           {},
		"/tmp/read files/it's \"quoted\"": []byte("no newline at the end"),
	}
	for p, b := range want {
		if err := os.WriteFile(filepath.Join(h.Dir, p), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	paths := []string{"/tmp/read files/missing"}
	for p := range want {
		paths = append(paths, p)
	}
	got, err := playbooks.ReadFiles(session(t, playbooks.Options{}), context.Background(), h.Name, paths...)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got["/tmp/read files/missing"]; ok || len(got) != len(want) {
		t.Errorf("got %d files (%q): want %d, the missing one absent", len(got), got, len(want))
	}
	for p, b := range want {
		if !bytes.Equal(got[p], b) {
			t.Errorf("%s: got %q, want %q", p, got[p], b)
		}
	}
}
