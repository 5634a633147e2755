package playbooks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/reliability"
	"github.com/fleetops/fleet/testing/sim"
)

// lostRunEnv makes the test binary run lostRun instead of the tests: the
// first apply of TestMaster0LostAfterInit runs in a process of its own,
// which ends, as a fleet that lost its master does.
const lostRunEnv = "FLEET_TEST_LOST_RUN"

// lostRunResult is what the lost run tells the test.
type lostRunResult struct {
	Error  string          // redacted
	IsStep bool            // a *steps.StepError
	Failed map[string]bool // step/host that failed
	Took   time.Duration
	Shown  string
	Leaked bool // a secret of the run was in its events or error
}

// lostRun applies the cluster in dir, takes master0's link down the moment
// kubeadm init has finished there, and prints a lostRunResult.
func lostRun(dir string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 2 }
	c, err := sim.Load(dir)
	if err != nil {
		return fail(err)
	}
	inv, err := inventory.Load(c.Inventory)
	if err != nil {
		return fail(err)
	}
	var out output
	s, err := playbooks.NewSession(inv, playbooks.Options{OnEvent: func(e steps.Event) {
		out.event(e)
		if e.Step == "init" && e.Host == "master0" && e.Kind == steps.Succeeded {
			if err := c.LinkDown("master0"); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}
	}})
	if err != nil {
		return fail(err)
	}
	defer s.Close()
	opts := playbooks.DefaultApplyOptions()
	opts.Kubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	start := time.Now()
	report, err := playbooks.Apply(context.Background(), s, opts)
	res := lostRunResult{Took: time.Since(start), Failed: map[string]bool{}, Shown: out.buf.String()}
	if err != nil {
		var se *steps.StepError
		res.Error, res.IsStep = s.Redactor.String(err.Error()), errors.As(err, &se)
		res.Leaked = res.Error != err.Error()
	}
	res.Leaked = res.Leaked || s.Redactor.String(res.Shown) != res.Shown
	if report != nil {
		for _, e := range report.Events {
			if e.Kind == steps.Failed {
				res.Failed[e.Step+"/"+e.Host] = true
			}
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(res); err != nil {
		return fail(err)
	}
	return 0
}

// TestMaster0LostAfterInit: master0's link goes down the moment kubeadm
// init has finished there, before any other master joins. The run (a
// process of its own) fails naming master0 and the step that needed it,
// with nothing joined half-way, and ends without releasing its lock on the
// unreachable master0. Once the link is back, the next apply breaks that
// lock (its holder, on this machine, has ended), skips init and converges.
func TestMaster0LostAfterInit(t *testing.T) {
	sim.Need(t, cluster)
	topo := sim.Topology{ID: "ml", Subnet: 27, Hosts: []sim.HostSpec{
		{Name: "lb", Role: "loadbalancer"}, {Name: "master0", Role: "master"}, {Name: "master1", Role: "master"}, {Name: "worker0", Role: "worker"}}}
	c := upWithNodeBinaries(t, topo)
	defer c.LinkUp("master0")
	inv, err := inventory.Load(c.Inventory)
	if err != nil {
		t.Fatal(err)
	}

	child := osexec.Command(os.Args[0])
	child.Env = append(os.Environ(), lostRunEnv+"="+c.Dir)
	child.Stderr = os.Stderr
	raw, err := child.Output()
	var lost lostRunResult
	if err != nil || json.Unmarshal(raw, &lost) != nil {
		t.Fatalf("the lost run: %v\n%s", err, raw)
	}
	if lost.Leaked {
		t.Error("a secret of the lost run was in its events or error (before redaction)")
	}
	if !lost.IsStep {
		t.Fatalf("apply with master0 lost after init: %q, want a step error\n%s", lost.Error, lost.Shown)
	}
	if !lost.Failed["credentials/"] && !lost.Failed["network/master0"] {
		t.Errorf("failed steps %v: want the step that needed master0 after init", lost.Failed)
	}
	for _, h := range []string{"master1", "worker0"} {
		if _, err := os.Stat(filepath.Join(c.Host(h).Dir, "etc/kubernetes/kubelet.conf")); err == nil {
			t.Errorf("%s joined although master0 was gone", h)
		}
	}
	// The run could not release its lock on the unreachable master0, and
	// says so.
	if !strings.Contains(lost.Error, "release the cluster lock") || !strings.Contains(lost.Error, "fleet unlock") {
		t.Errorf("the error does not say the lock was left: %s", lost.Error)
	}

	if err := c.LinkUp("master0"); err != nil {
		t.Fatal(err)
	}
	opts := playbooks.DefaultApplyOptions()
	opts.Kubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	report, _, shown, err := runApply(t, inv, opts, nil)
	if err != nil {
		t.Fatalf("apply with master0 back: %v\n%s", err, shown)
	}
	if !strings.Contains(shown, "note lock master0 broke the lock of a run that has ended: root@") {
		t.Errorf("the re-run did not say it broke the lost run's lock:\n%s", shown)
	}
	if ran(report, "init") || !ran(report, "join-masters") || !ran(report, "join-workers") {
		t.Errorf("changes %+v: want no second init, master1 and worker0 joined", report.Changes())
	}
	reliability.Record(t, reliability.Row{N: 4, Did: lost.Error + " (after " + lost.Took.Round(time.Second).String() + "; nothing joined)",
		Rerun: "with the link back, the next apply broke the lock the lost run had left (taken on this machine by a process that had ended, and said so), skipped init (kubeadm's state is there), made fresh credentials and joined master1 and worker0"})
}
