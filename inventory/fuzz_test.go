package inventory

import (
	"os"
	"testing"
)

// FuzzParse feeds the loader arbitrary bytes: it must return an inventory or
// an error, never panic, and a returned inventory must have what validation
// promises.
func FuzzParse(f *testing.F) {
	example, err := os.ReadFile("examples/ha.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Add([]byte(base))
	f.Add([]byte("cluster: {name: x}\nmasters: [{name: a, address: 1.2.3.4}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		if inv.LoadBalancer == nil || len(inv.Masters) == 0 || inv.Cluster.ControlPlaneEndpoint == "" {
			t.Fatalf("accepted an inventory without lb, masters or endpoint: %q", data)
		}
		for _, h := range inv.Hosts() {
			if !dnsLabel.MatchString(h.Name) || checkAddress(h.Address) != nil {
				t.Fatalf("accepted host %q at %q", h.Name, h.Address)
			}
		}
	})
}
