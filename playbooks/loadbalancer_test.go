package playbooks

import (
	"strings"
	"testing"

	"github.com/fleetops/fleet/inventory"
)

// TestUpstreamKeepsJoiningMastersOut: a master that has not joined stays
// out of the balancers' upstream until it serves; nil lets every master in.
func TestUpstreamKeepsJoiningMastersOut(t *testing.T) {
	inv := &inventory.Inventory{Cluster: inventory.Cluster{ControlPlaneEndpoint: "198.18.0.10:6443"},
		LoadBalancer: &inventory.Host{Name: "lb", Address: "198.18.0.10"},
		Masters:      []inventory.Host{{Name: "master0", Address: "198.18.0.11"}, {Name: "master1", Address: "198.18.0.12"}, {Name: "master2", Address: "198.18.0.13"}}}
	servers := func(u *upstream) string {
		cfg, err := lbConfig(inv, u)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, line := range strings.Split(string(cfg), "\n") {
			if m := upstreamLine.FindStringSubmatch(line); m != nil {
				names = append(names, m[1])
			}
		}
		return strings.Join(names, ",")
	}
	if got := servers(nil); got != "master0,master1,master2" {
		t.Errorf("no run state: %s", got)
	}
	var u upstream
	u.wait("master1")
	u.wait("master2")
	if got := servers(&u); got != "master0" {
		t.Errorf("two masters joining: %s", got)
	}
	if !u.serve("master2") || u.serve("master2") {
		t.Error("serve does not report the master that was waiting, once")
	}
	if got := servers(&u); got != "master0,master2" {
		t.Errorf("master2 serves: %s", got)
	}
}
