package playbooks

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

func TestApplyGraphOrderAndShape(t *testing.T) {
	inv, err := inventory.Load("../inventory/examples/ha.yaml")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]steps.Step{}
	var order []string
	for _, s := range ApplyGraph(inv).Steps() {
		byName[s.Name] = s
		order = append(order, s.Name)
	}
	want := "preflight loadbalancer init credentials cni join-masters distribute-ca join-workers kubeconfig cleanup-tokens"
	if got := strings.Join(order, " "); got != want {
		t.Fatalf("order %s\nwant  %s", got, want)
	}
	if h := byName["init"].Hosts; len(h) != 1 || h[0] != "master0" {
		t.Errorf("init on %v, want master0", h)
	}
	if s := byName["join-masters"]; !s.Serial || strings.Join(s.Hosts, ",") != "master1,master2" {
		t.Errorf("join-masters %+v: want master1,master2 one at a time", s)
	}
	if s := byName["join-workers"]; s.MaxParallel == 0 || strings.Join(s.Hosts, ",") != "worker0,worker1" {
		t.Errorf("join-workers %+v: want bounded parallel over the workers", s)
	}
	if len(byName["preflight"].Hosts) != 7 {
		t.Errorf("preflight on %v, want all 7 hosts", byName["preflight"].Hosts)
	}
}

func TestApplyGraphWithOneMasterAndNoWorkers(t *testing.T) {
	inv, err := inventory.Parse("one.yaml", []byte(`cluster: {name: one, kubernetesVersion: v1.34.4}
loadbalancer: {name: lb, address: 192.0.2.1}
masters: [{name: m0, address: 192.0.2.2}]
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range ApplyGraph(inv).Steps() {
		if s.Name == "join-masters" || s.Name == "join-workers" || s.Name == "distribute-ca" {
			t.Errorf("step %s in a graph with nothing to join", s.Name)
		}
	}
}

func TestApplyStepsSayTheyAreNotBuilt(t *testing.T) {
	inv, err := inventory.Load("../inventory/examples/ha.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = (&steps.Engine{}).Run(context.Background(), ApplyGraph(inv))
	if !errors.Is(err, ErrApplyNotBuilt) {
		t.Fatalf("got %v", err)
	}
}
