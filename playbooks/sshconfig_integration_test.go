package playbooks_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/sim"
)

// TestSSHConfigReachesHostsTheInventoryCannot: the inventory names hosts
// at addresses nothing answers on (TEST-NET-2) and says nothing of keys or
// known_hosts; the user's ssh config knows them by name, with a HostName,
// the key, the known_hosts file, and masters reached through the load
// balancer (ProxyJump to an alias of the config). Every host answers, the
// masters see the load balancer as their SSH client, and worker0's port
// in the inventory wins over the config's.
func TestSSHConfigReachesHostsTheInventoryCannot(t *testing.T) {
	sim.Need(t, cluster)
	dir := t.TempDir()
	var cfg, inv strings.Builder
	fmt.Fprintf(&cfg, "Host worker0\n  Port 2222\n\nHost worker*\n  StrictHostKeyChecking no\n\n")
	fmt.Fprintf(&cfg, "Host master*\n  ProxyJump balancer\n\n")
	fmt.Fprintf(&cfg, "Host balancer\n  HostName %s\n\n", cluster.Host("lb").Address)
	for _, h := range cluster.Hosts {
		fmt.Fprintf(&cfg, "Host %s\n  HostName %s\n\n", h.Name, h.Address)
	}
	fmt.Fprintf(&cfg, "Host *\n  User root\n  IdentityFile %s\n  UserKnownHostsFile %s\n", cluster.KeyFile, cluster.KnownHosts)
	configPath := filepath.Join(dir, "ssh_config")
	if err := os.WriteFile(configPath, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&inv, "cluster:\n  name: sshcfg\n  kubernetesVersion: %s\nssh:\n  config: ssh_config\n  connectTimeout: 5s\n", sim.KubernetesVersion)
	fmt.Fprintf(&inv, "loadbalancer:\n  name: lb\n  address: 198.51.100.10\nmasters:\n")
	for i := range 3 {
		fmt.Fprintf(&inv, "  - name: master%d\n    address: 198.51.100.%d\n", i, 11+i)
	}
	fmt.Fprintf(&inv, "workers:\n  - name: worker0\n    address: 198.51.100.21\n    ssh: {port: 22}\n  - name: worker1\n    address: 198.51.100.22\n")
	invPath := filepath.Join(dir, "inventory.yaml")
	if err := os.WriteFile(invPath, []byte(inv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	loaded, err := inventory.Load(invPath)
	if err != nil {
		t.Fatal(err)
	}
	s, err := playbooks.NewSession(loaded, playbooks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	results, _, err := playbooks.Check(context.Background(), s)
	if err != nil {
		t.Fatalf("check through the ssh config: %v", err)
	}
	if len(results) != 6 {
		t.Fatalf("%d hosts checked, want 6", len(results))
	}
	lb := cluster.Host("lb").Address
	for _, h := range loaded.Hosts() {
		conn, err := s.Conn(context.Background(), h.Name)
		if err != nil {
			t.Fatal(err)
		}
		res, err := conn.Run(context.Background(), `echo "$SSH_CLIENT"`)
		if err != nil {
			t.Fatal(err)
		}
		from := strings.Fields(res.Stdout)
		viaLB := len(from) > 0 && from[0] == lb
		if master := strings.HasPrefix(h.Name, "master"); viaLB != master {
			t.Errorf("%s: SSH client %q; a master must be reached through the load balancer (%s), the others directly", h.Name, res.Stdout, lb)
		}
	}
	login := s.Logins["worker0"]
	if login.Port != 22 || login.Sources["port"] != "inventory" {
		t.Errorf("worker0's port: %d from %s, want the inventory's 22", login.Port, login.Sources["port"])
	}
	if m := s.Logins["master1"]; m.Jump == nil || m.Jump.Address != lb || !strings.HasPrefix(m.Sources["jumpHost"], configPath+":") {
		t.Errorf("master1's jump host: %+v from %s", m.Jump, m.Sources["jumpHost"])
	}
	if len(s.Warnings) != 1 || !strings.HasPrefix(s.Warnings[0], "worker0, worker1: StrictHostKeyChecking no ("+configPath+":") {
		t.Errorf("warnings %q, want one on the workers' StrictHostKeyChecking", s.Warnings)
	}
}
