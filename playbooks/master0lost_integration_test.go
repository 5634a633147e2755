package playbooks_test

import (
	"context"
	"errors"
	"os"
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

// TestMaster0LostAfterInit: master0's link goes down the moment kubeadm
// init has finished there, before any other master joins. The run fails
// naming master0 and the step that needed it, with nothing joined
// half-way; once the link is back the next apply converges without a
// second init.
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
	opts := playbooks.DefaultApplyOptions()
	opts.Kubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	start := time.Now()
	failedRun, s, shown, err := faultyApply(t, inv, opts, func(e steps.Event) {
		if e.Step == "init" && e.Host == "master0" && e.Kind == steps.Succeeded {
			if err := c.LinkDown("master0"); err != nil {
				t.Error(err)
			}
		}
	})
	took := time.Since(start)
	var se *steps.StepError
	if !errors.As(err, &se) {
		t.Fatalf("apply with master0 lost after init: %v, want a step error\n%s", err, shown)
	}
	failed := map[string]bool{}
	if failedRun != nil {
		for _, e := range failedRun.Events {
			if e.Kind == steps.Failed {
				failed[e.Step+"/"+e.Host] = true
			}
		}
	}
	if !failed["credentials/"] && !failed["cni/master0"] {
		t.Errorf("failed steps %v: want the step that needed master0 after init", failed)
	}
	for _, h := range []string{"master1", "worker0"} {
		if _, err := os.Stat(filepath.Join(c.Host(h).Dir, "etc/kubernetes/kubelet.conf")); err == nil {
			t.Errorf("%s joined although master0 was gone", h)
		}
	}
	lost := s.Redactor.String(err.Error())
	// The run could not release its lock on the unreachable master0, and
	// says how to break it.
	if !strings.Contains(lost, "release the cluster lock") || !strings.Contains(lost, "fleet unlock") {
		t.Errorf("the error does not say the lock was left: %s", lost)
	}

	if err := c.LinkUp("master0"); err != nil {
		t.Fatal(err)
	}
	// What the user does next, as the error says: fleet unlock, then apply.
	us, err := playbooks.NewSession(inv, playbooks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer us.Close()
	held, err := playbooks.LockHolder(context.Background(), us)
	if err != nil || held == nil {
		t.Fatalf("lock holder after the lost run: %+v %v", held, err)
	}
	if _, err := playbooks.Unlock(context.Background(), us, held); err != nil {
		t.Fatal(err)
	}
	report, _, shown, err := faultyApply(t, inv, opts, nil)
	if err != nil {
		t.Fatalf("apply with master0 back: %v\n%s", err, shown)
	}
	if ran(report, "init") || !ran(report, "join-masters") || !ran(report, "join-workers") {
		t.Errorf("changes %+v: want no second init, master1 and worker0 joined", report.Changes())
	}
	reliability.Record(t, reliability.Row{N: 4, Did: lost + " (after " + took.Round(time.Second).String() + "; nothing joined)",
		Rerun: "the run could not release its lock on master0 and said so; with the link back, fleet unlock (showing that run) then apply skipped init (kubeadm's state is there), made fresh credentials and joined master1 and worker0"})
}
