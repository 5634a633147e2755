package inventory

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStarterLoadsAsItSays(t *testing.T) {
	tests := []struct {
		name    string
		s       Starter
		check   func(t *testing.T, inv *Inventory)
		wantErr string
	}{
		{
			name: "three masters, two workers, a key",
			s: Starter{Name: "lab", KubernetesVersion: "v1.34.4", LoadBalancer: "192.0.2.10", Masters: []string{"192.0.2.11", "192.0.2.12", "192.0.2.13"},
				Workers: []string{"192.0.2.21", "node-b.example.com"}, IdentityFile: "/keys/my key#1"},
			check: func(t *testing.T, inv *Inventory) {
				if len(inv.Masters) != 3 || inv.Masters[2].Name != "master2" || inv.Masters[2].Address != "192.0.2.13" ||
					len(inv.Workers) != 2 || inv.Workers[1].Address != "node-b.example.com" || inv.LoadBalancer.Address != "192.0.2.10" {
					t.Errorf("hosts: %+v %+v %+v", inv.LoadBalancer, inv.Masters, inv.Workers)
				}
				if ssh := inv.SSHFor(&inv.Masters[0]); ssh.User != "root" || ssh.IdentityFile != "/keys/my key#1" || On(ssh.Sudo) {
					t.Errorf("ssh %+v", ssh)
				}
			},
		},
		{
			name: "a non-root user gets sudo; no workers",
			s:    Starter{Name: "one", KubernetesVersion: "v1.34.4", LoadBalancer: "lb.example.com", Masters: []string{"192.0.2.11"}, User: "admin"},
			check: func(t *testing.T, inv *Inventory) {
				if ssh := inv.SSHFor(&inv.Masters[0]); ssh.User != "admin" || !On(ssh.Sudo) || len(inv.Workers) != 0 {
					t.Errorf("ssh %+v, %d workers", ssh, len(inv.Workers))
				}
			},
		},
		{name: "no master", s: Starter{LoadBalancer: "192.0.2.10"}, wantErr: "at least one master"},
		{name: "a bad address", s: Starter{LoadBalancer: "192.0.2.10", Masters: []string{"192.0.2.300"}}, wantErr: `"192.0.2.300" is not a valid IP address`},
		{name: "a name that is no DNS label", s: Starter{Name: "Lab Cluster", KubernetesVersion: "v1.34.4", LoadBalancer: "192.0.2.10", Masters: []string{"192.0.2.11"}}, wantErr: "cluster.name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "inventory.yaml")
			doc, err := tt.s.Render(path)
			if err == nil {
				if err = os.WriteFile(path, doc, 0o644); err != nil {
					t.Fatal(err)
				}
				var inv *Inventory
				inv, err = Load(path)
				if err == nil && tt.check != nil {
					tt.check(t, inv)
				}
			}
			if tt.wantErr == "" && err != nil {
				t.Fatalf("%v\n%s", err, doc)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("error %v, want one with %q", err, tt.wantErr)
			}
		})
	}
}
