package playbooks

import (
	"slices"
	"strings"
	"testing"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

func graphOf(t *testing.T, inv *inventory.Inventory) *steps.Graph {
	t.Helper()
	s, err := NewSession(inv, Options{KnownHosts: t.TempDir() + "/known_hosts"})
	if err != nil {
		t.Fatal(err)
	}
	return ApplyGraph(s, DefaultApplyOptions())
}

func TestApplyGraphOrderAndShape(t *testing.T) {
	inv, err := inventory.Load("../inventory/examples/ha.yaml")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]steps.Step{}
	var order []string
	for _, s := range graphOf(t, inv).Steps() {
		byName[s.Name] = s
		order = append(order, s.Name)
	}
	// worker1 joins by TLS bootstrapping: the RBAC bindings come before the joins.
	// The CA host's cluster CA is in place before kubeadm init makes the cluster with it.
	want := "preflight gate loadbalancer ca-host cluster-ca init credentials network join-masters distribute-ca bootstrap-rbac join-workers kubeconfig node-meta addons cleanup-tokens"
	if got := strings.Join(order, " "); got != want {
		t.Fatalf("order %s\nwant  %s", got, want)
	}
	if h := byName["init"].Hosts; len(h) != 1 || h[0] != "master0" {
		t.Errorf("init on %v, want master0", h)
	}
	if after := byName["init"].After; !slices.Contains(after, "cluster-ca") {
		t.Errorf("init after %v: want the CA host's cluster CA installed first", after)
	}
	if h := byName["ca-host"].Hosts; len(h) != 1 || h[0] != "ca" {
		t.Errorf("ca-host on %v, want ca", h)
	}
	if s := byName["join-masters"]; !s.Serial || strings.Join(s.Hosts, ",") != "master1,master2" {
		t.Errorf("join-masters %+v: want master1,master2 one at a time", s)
	}
	if s := byName["join-workers"]; s.MaxParallel == 0 || strings.Join(s.Hosts, ",") != "worker0,worker1" {
		t.Errorf("join-workers %+v: want bounded parallel over the workers", s)
	}
	if after := byName["join-workers"].After; !slices.Contains(after, "bootstrap-rbac") || !slices.Contains(after, "distribute-ca") {
		t.Errorf("join-workers after %v: want the CA copied and the bootstrap bindings made first", after)
	}
	if s := byName["node-meta"]; strings.Join(s.Hosts, ",") != "master0,master1,master2,worker0,worker1" {
		t.Errorf("node-meta on %v, want every node", s.Hosts)
	}
	if len(byName["preflight"].Hosts) != 7 || !byName["preflight"].ReadOnly {
		t.Errorf("preflight on %v, want the 7 hosts (the CA host too), read-only", byName["preflight"].Hosts)
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
	for _, s := range graphOf(t, inv).Steps() {
		if s.Name == "join-masters" || s.Name == "join-workers" || s.Name == "distribute-ca" {
			t.Errorf("step %s in a graph with nothing to join", s.Name)
		}
	}
}

func TestExcludeOnlyWorkers(t *testing.T) {
	inv, err := inventory.Load("../inventory/examples/ha.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		exclude []string
		want    string
	}{
		{nil, ""},
		{[]string{"worker1"}, ""},
		{[]string{"worker9"}, "no such host in ../inventory/examples/ha.yaml"},
		{[]string{"master1"}, "only workers can be left out, master1 is the master"},
		{[]string{"lb"}, "only workers can be left out, lb is the loadbalancer"},
	}
	for _, tt := range tests {
		err := checkExclude(inv, tt.exclude)
		if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("exclude %v: %v, want %q", tt.exclude, err, tt.want)
		}
	}
	s, _ := NewSession(inv, Options{KnownHosts: t.TempDir() + "/kh"})
	opts := DefaultApplyOptions()
	opts.Exclude = []string{"worker1"}
	for _, st := range ApplyGraph(s, opts).Steps() {
		for _, h := range st.Hosts {
			if h == "worker1" {
				t.Errorf("step %s still targets the excluded worker1", st.Name)
			}
		}
	}
}
