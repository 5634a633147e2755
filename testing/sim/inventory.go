package sim

import (
	"fmt"
	"os"
	"strings"
)

// KubernetesVersion is the version the simulated hosts are prepared for.
const KubernetesVersion = "v1.34.4"

// inventoryYAML is a fleet inventory for the cluster: root logins with the
// cluster's client key, verified against its known_hosts.
func (c *Cluster) inventoryYAML() string {
	var b strings.Builder
	fmt.Fprintf(&b, `# written by fleet's test harness (testing/sim) for topology %q
cluster:
  name: sim-%s
  kubernetesVersion: %s
ssh:
  user: root
  identityFile: %s
  knownHosts: %s
  connectTimeout: 10s
`, c.ID, c.ID, KubernetesVersion, c.KeyFile, c.KnownHosts)
	sections := []struct{ role, key string }{{"loadbalancer", "loadbalancer"}, {"master", "masters"}, {"worker", "workers"}, {"ca", "ca"}}
	for _, s := range sections {
		var hosts []Host
		for _, h := range c.Hosts {
			if h.Role == s.role {
				hosts = append(hosts, h)
			}
		}
		if len(hosts) == 0 {
			continue
		}
		switch {
		case s.key == "loadbalancer" && len(hosts) > 1:
			b.WriteString("loadbalancer:\n")
			for _, h := range hosts {
				fmt.Fprintf(&b, "  - name: %s\n    address: %s\n", h.Name, h.Address)
			}
			fmt.Fprintf(&b, "vip:\n  address: %s\n", c.VIP())
		case s.key == "loadbalancer":
			fmt.Fprintf(&b, "loadbalancer:\n  name: %s\n  address: %s\n", hosts[0].Name, hosts[0].Address)
		case s.key == "ca":
			fmt.Fprintf(&b, "ca:\n  name: %s\n  address: %s\n  os: linux\n", hosts[0].Name, hosts[0].Address)
		default:
			fmt.Fprintf(&b, "%s:\n", s.key)
			for _, h := range hosts {
				fmt.Fprintf(&b, "  - name: %s\n    address: %s\n", h.Name, h.Address)
			}
		}
	}
	return b.String()
}

// VIP is the address the cluster's load balancers share when it has
// several ("" when not): above every host's (.10 to .249).
func (c *Cluster) VIP() string {
	n := 0
	for _, h := range c.Hosts {
		if h.Role == "loadbalancer" {
			n++
		}
	}
	if n < 2 {
		return ""
	}
	return fmt.Sprintf("198.18.%d.250", c.Subnet)
}

// InstallFromFolder makes the cluster's inventory prepare its hosts from
// an air-gapped folder (install: binaries): for bare hosts.
func (c *Cluster) InstallFromFolder(folder string) error {
	raw, err := os.ReadFile(c.Inventory)
	if err != nil {
		return err
	}
	line := "  kubernetesVersion: " + KubernetesVersion + "\n"
	if strings.Contains(string(raw), "\n  install: binaries\n") {
		return nil // a second run on the same hosts
	}
	if !strings.Contains(string(raw), line) {
		return fmt.Errorf("sim: %s has no %q", c.Inventory, line)
	}
	edited := strings.Replace(string(raw), line, line+"  install: binaries\n  binaries: "+folder+"\n", 1)
	return os.WriteFile(c.Inventory, []byte(edited), 0o600)
}
