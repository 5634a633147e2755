package sim

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
)

// Names of the kernel objects a topology owns. Interface names are limited
// to 15 bytes, hence the terse scheme.
func bridgeName(id string) string        { return "fsim" + id }
func netnsPrefix(id string) string       { return "fsim-" + id + "-" }
func netnsName(id, host string) string   { return netnsPrefix(id) + host }
func vethName(id string, idx int) string { return fmt.Sprintf("%s%d", vethPrefix(id), idx) }
func vethPrefix(id string) string        { return "fs" + id + "-" }

func gatewayIP(subnet int) string   { return fmt.Sprintf("198.18.%d.1", subnet) }
func hostIP(subnet, idx int) string { return fmt.Sprintf("198.18.%d.%d", subnet, 10+idx) }

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func createBridge(id string, subnet int) error {
	br := bridgeName(id)
	if err := ip("link", "add", br, "type", "bridge"); err != nil {
		return err
	}
	if err := ip("addr", "add", gatewayIP(subnet)+"/24", "dev", br); err != nil {
		return err
	}
	return ip("link", "set", br, "up")
}

// createHostNet makes the host's network namespace with its own loopback and
// an eth0 on the topology's bridge.
func createHostNet(id string, subnet, idx int, host string, forwarding bool) error {
	ns, veth := netnsName(id, host), vethName(id, idx)
	steps := [][]string{
		{"netns", "add", ns},
		{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"link", "set", veth, "master", bridgeName(id), "up"},
		{"-n", ns, "addr", "add", hostIP(subnet, idx) + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "link", "set", "eth0", "up"},
		{"-n", ns, "route", "add", "default", "via", gatewayIP(subnet)},
	}
	defer func() {
		// kubeadm's preflight wants forwarding on, as any prepared node
		// has it; a bare host waits for fleet to turn it on.
		if forwarding {
			_ = exec.Command("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1").Run()
		}
	}()
	for _, s := range steps {
		if err := ip(s...); err != nil {
			return err
		}
	}
	return nil
}

// listNetns returns the names of network namespaces that start with prefix.
func listNetns(prefix string) ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %w", err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// netnsPids lists every process in the namespace, whatever its name.
func netnsPids(ns string) ([]int, error) {
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns pids %s: %w", ns, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		var p int
		if _, err := fmt.Sscan(f, &p); err == nil {
			pids = append(pids, p)
		}
	}
	return pids, nil
}

func linkExists(name string) bool {
	return exec.Command("ip", "link", "show", name).Run() == nil
}

// listLinks returns the names of the machine's links that start with prefix.
func listLinks(prefix string) ([]string, error) {
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		return nil, fmt.Errorf("ip link show: %w", err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	return names, nil
}
