// Package sim brings up simulated hosts for fleet's tests: each host is a
// network, mount and UTS namespace with its own address, its own 127.0.0.1,
// its own /etc/kubernetes, /var/lib, /root, ... and a real OpenSSH sshd with
// its own host key. Nothing is mocked: fleet talks to these hosts exactly as
// it would to VMs.
package sim

import (
	"fmt"
	"regexp"
	"slices"
)

// HostSpec names one host and its inventory role.
type HostSpec struct {
	Name string
	Role string // loadbalancer, master, worker, ca
}

// Topology is a set of hosts on one simulated network.
type Topology struct {
	// ID tells clusters apart on one machine: it prefixes namespaces and
	// links, so it is short ([a-z0-9], at most 4 characters).
	ID string
	// Subnet picks the /24 inside 198.18.0.0/15 (RFC 2544 test range):
	// 198.18.<Subnet>.0/24, bridge .1, hosts from .10.
	Subnet int
	Hosts  []HostSpec
	// Tools, if set, is a folder laid out like /usr (bin/kubeadm,
	// local/bin/etcd, ...) that every host sees under its own /usr, as if
	// the packages were installed. See InstallLayer.
	Tools string
	// Bare hosts are a fresh OS install: of Tools they get only what a
	// registry would serve their container runtime (ImagesLayer), no
	// kubeadm, kubelet, kubectl or containerd, and the kernel as a new
	// machine has it (forwarding off). fleet's install: binaries prepares
	// them from AirgapFolder(Tools).
	Bare bool
	// Rocky names hosts that claim Rocky Linux 9 (os-release,
	// redhat-release) and keep their own rpm database and dnf state: dnf
	// and rpm on them install into that host only. In a Bare topology
	// they get the distribution's rpm mirror (containerd) instead of apt's.
	Rocky []string
}

// distroOf is what host claims to be: "rocky" or "" (the machine's Debian).
func (t Topology) distroOf(host string) string {
	if slices.Contains(t.Rocky, host) {
		return DistroRocky
	}
	return ""
}

// DistroRocky is Host.Distro of a host that claims Rocky Linux.
const DistroRocky = "rocky"

var idPattern = regexp.MustCompile(`^[a-z0-9]{1,4}$`)

// maxHosts keeps every host inside the /24 (.10 to .249).
const maxHosts = 240

func (t Topology) validate() error {
	if !idPattern.MatchString(t.ID) {
		return fmt.Errorf("sim: topology id %q must be 1-4 characters of [a-z0-9]", t.ID)
	}
	if t.Subnet < 0 || t.Subnet > 255 {
		return fmt.Errorf("sim: subnet %d out of range 0-255", t.Subnet)
	}
	if len(t.Hosts) == 0 || len(t.Hosts) > maxHosts {
		return fmt.Errorf("sim: %d hosts, want 1-%d", len(t.Hosts), maxHosts)
	}
	seen := map[string]bool{}
	for _, h := range t.Hosts {
		if seen[h.Name] {
			return fmt.Errorf("sim: duplicate host %q", h.Name)
		}
		seen[h.Name] = true
	}
	for _, name := range t.Rocky {
		if !seen[name] {
			return fmt.Errorf("sim: Rocky names %q, which is not a host", name)
		}
	}
	return nil
}

// HA is the topology of the project's seeds: an NGINX load balancer, three
// control-plane hosts, two workers and a CA host.
func HA(id string, subnet int) Topology {
	return Topology{ID: id, Subnet: subnet, Hosts: []HostSpec{
		{"lb", "loadbalancer"},
		{"master0", "master"}, {"master1", "master"}, {"master2", "master"},
		{"worker0", "worker"}, {"worker1", "worker"},
		{"ca", "ca"},
	}}
}

// VIPPair is two load balancers sharing a VIP in front of one master and
// one worker: the smallest cluster that shows a failover.
func VIPPair(id string, subnet int) Topology {
	return Topology{ID: id, Subnet: subnet, Hosts: []HostSpec{
		{"lb0", "loadbalancer"}, {"lb1", "loadbalancer"}, {"master0", "master"}, {"worker0", "worker"},
	}}
}

// Sized is a load balancer, masters masters and the rest workers: n hosts.
func Sized(id string, subnet, n, masters int) Topology {
	t := Topology{ID: id, Subnet: subnet, Hosts: []HostSpec{{"lb", "loadbalancer"}}}
	for i := 0; i < masters && len(t.Hosts) < n; i++ {
		t.Hosts = append(t.Hosts, HostSpec{fmt.Sprintf("master%d", i), "master"})
	}
	for i := 0; len(t.Hosts) < n; i++ {
		t.Hosts = append(t.Hosts, HostSpec{fmt.Sprintf("worker%d", i), "worker"})
	}
	return t
}

// Named returns a built-in topology by name: "ha" or "hosts-N".
func Named(name, id string, subnet int) (Topology, error) {
	switch name {
	case "ha":
		return HA(id, subnet), nil
	case "vip":
		return VIPPair(id, subnet), nil
	}
	var n int
	if _, err := fmt.Sscanf(name, "hosts-%d", &n); err == nil && n >= 2 {
		return Sized(id, subnet, n, 3), nil
	}
	return Topology{}, fmt.Errorf("sim: unknown topology %q (want ha, vip or hosts-N)", name)
}
