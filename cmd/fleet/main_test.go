package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/go-multierror"

	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/sim"
)

var cluster *sim.Cluster

// simLayer is the folder of the node binaries the test hosts run.
func simLayer() string {
	if l := os.Getenv("FLEET_SIM_LAYER"); l != "" {
		return l
	}
	return "/var/cache/fleet-sim/layer"
}

func TestMain(m *testing.M) {
	if os.Getenv(cliChildEnv) != "" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	// With the node binaries: the CLI tests build a real cluster.
	topo := sim.Sized("cl", 30, 6, 3)
	topo.Tools = simLayer()
	os.Exit(sim.RunTests(m, topo, &cluster))
}

func fleet(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVersionAndHelp(t *testing.T) {
	if code, out, _ := fleet("version"); code != 0 || !strings.HasPrefix(out, "fleet ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, out, _ := fleet("--help"); code != 0 || !strings.Contains(out, "check") || !strings.Contains(out, "--accept-new-host-keys") {
		t.Errorf("help: %d %q", code, out)
	}
	if code, _, errs := fleet("frobnicate"); code != 2 || !strings.Contains(errs, "unexpected argument frobnicate") {
		t.Errorf("unknown command: %d %q", code, errs)
	}
}

func TestBadInventoryIsLocated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inv.yaml")
	os.WriteFile(path, []byte("cluster:\n  name: x\n  kubernetesVersion: v1.34.4\n  colour: blue\n"), 0o600)
	code, _, errs := fleet("plan", "-i", path)
	if code != exitBadInput || !strings.Contains(errs, path+":4:3: cluster.colour: unknown field") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

func TestCheckAgainstSimulatedHosts(t *testing.T) {
	sim.Need(t, cluster)
	code, out, errs := fleet("check", "-i", cluster.Inventory)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, h := range cluster.Hosts {
		if !strings.Contains(out, h.Name+" ") || !strings.Contains(out, h.Address+"  yes") {
			t.Errorf("no reachable row for %s in:\n%s", h.Name, out)
		}
	}
	if !strings.Contains(out, "6 of 6 hosts reachable") {
		t.Errorf("summary missing:\n%s", out)
	}
}

func TestCheckFailsNamingTheUnreachableHost(t *testing.T) {
	sim.Need(t, cluster)
	if err := cluster.StopSSHD("worker1"); err != nil {
		t.Fatal(err)
	}
	defer cluster.StartSSHD(t.Context(), "worker1")
	code, out, errs := fleet("check", "-i", cluster.Inventory)
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if !strings.Contains(out, "5 of 6 hosts reachable") || !strings.Contains(errs, "step probe on worker1") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", out, errs)
	}
}

func TestPlanPrintsTheApplyGraph(t *testing.T) {
	sim.Need(t, cluster)
	code, out, errs := fleet("plan", "-i", cluster.Inventory)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"preflight", "init: kubeadm init --upload-certs", "hosts: master1, master2 [one at a time]", "join-workers", "changes to make"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q:\n%s", want, out)
		}
	}
	// From the state checks: nothing is initialised on fresh hosts.
	if !regexp.MustCompile(`(?m)^  init +master0 +would run$`).MatchString(out) {
		t.Errorf("plan does not say init would run on master0:\n%s", out)
	}
}

// TestInitThenCheck: fleet init writes an inventory of the test bed's
// addresses; fleet check with --accept-new-host-keys reaches every host and
// records its key, after which a plain check trusts them; a second init
// does not overwrite the file.
func TestInitThenCheck(t *testing.T) {
	sim.Need(t, cluster)
	dir := t.TempDir()
	inv, known := filepath.Join(dir, "inventory.yaml"), filepath.Join(dir, "known_hosts")
	var masters, workers []string
	for _, h := range cluster.Hosts {
		switch h.Role {
		case "master":
			masters = append(masters, h.Address)
		case "worker":
			workers = append(workers, h.Address)
		}
	}
	args := []string{"init", "-o", inv, "--name", "started", "--lb", cluster.Host("lb").Address, "--masters", strings.Join(masters, ","),
		"--workers", strings.Join(workers, ","), "--identity-file", cluster.KeyFile}
	if code, out, errs := fleet(args...); code != 0 || !strings.Contains(out, "next: fleet check --accept-new-host-keys") {
		t.Fatalf("init: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := fleet("check", "-i", inv, "--known-hosts", known); code != 1 || !strings.Contains(out, "0 of 6 hosts reachable") {
		t.Errorf("check with no known host keys: exit %d, want 1 and none reached\n%s%s", code, out, errs)
	}
	if code, out, errs := fleet("check", "-i", inv, "--known-hosts", known, "--accept-new-host-keys"); code != 0 || !strings.Contains(out, "6 of 6 hosts reachable") {
		t.Errorf("check --accept-new-host-keys: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := fleet("check", "-i", inv, "--known-hosts", known); code != 0 || !strings.Contains(out, "6 of 6 hosts reachable") {
		t.Errorf("check with the recorded keys: exit %d\n%s%s", code, out, errs)
	}
	before, _ := os.ReadFile(inv)
	if code, _, errs := fleet(args...); code != exitRefused || !strings.Contains(errs, "exists: nothing written") {
		t.Errorf("second init: exit %d, %s", code, errs)
	}
	if after, _ := os.ReadFile(inv); !bytes.Equal(before, after) {
		t.Error("a second init changed the inventory")
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"done", nil, exitOK},
		{"a failure", errors.New("step init on master0: kubeadm init: exit 1"), exitFailed},
		{"an inventory that does not load", fmt.Errorf("load: %w", inventory.Errors{{File: "inv.yaml", Line: 3, Msg: "x"}}), exitBadInput},
		{"a bad flag combination", badInput{errors.New("--control-plane goes with --print-join-command")}, exitBadInput},
		{"preflight said no", multierror.Append(nil, &playbooks.PreflightError{Host: "worker1"}), exitRefused},
		{"the lock is held", fmt.Errorf("apply: %w", &playbooks.LockHeldError{}), exitRefused},
		{"quorum", &playbooks.RefusedError{Reason: "refusing to remove"}, exitRefused},
		{"--fail-under", refusedByCheck{errors.New("2 certificates")}, exitRefused},
	}
	for _, tt := range tests {
		if got := exitCodeOf(tt.err); got != tt.want {
			t.Errorf("%s: exit %d, want %d", tt.name, got, tt.want)
		}
	}
}
