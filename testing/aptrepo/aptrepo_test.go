package aptrepo_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetops/fleet/testing/aptrepo"
	"github.com/fleetops/fleet/testing/sim"
)

// TestAptInstallsFromTheRepository: a bare simulated host installs the test
// bed's kubeadm and kubectl from a repository served inside the test
// network, with the real apt-get and dpkg, holds them with apt-mark, and
// refuses the repository once its index no longer matches what was signed.
// The machine running the test does not get the packages: each host has
// its own package state.
func TestAptInstallsFromTheRepository(t *testing.T) {
	if os.Getenv(sim.IntegrationEnv) != "1" {
		t.Skipf("integration test: run with %s=1 as root (make test)", sim.IntegrationEnv)
	}
	layer := os.Getenv("FLEET_SIM_LAYER")
	if layer == "" {
		layer = "/var/cache/fleet-sim/layer"
	}
	folder := sim.AirgapFolder(layer)
	topo := sim.Topology{ID: "ar", Subnet: 42, Bare: true, Tools: layer, Hosts: []sim.HostSpec{
		{Name: "lb", Role: "loadbalancer"}, {Name: "node", Role: "worker"},
	}}
	c, err := sim.Up(context.Background(), "/var/tmp/fleet-sim/ar", topo)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	const version = "1.34.4-1.1" // pkgs.k8s.io's numbering of v1.34.4
	repo, err := aptrepo.Build(filepath.Join(c.Dir, "apt"), []aptrepo.Package{
		{Name: "kubeadm", Version: version, Arch: "amd64", Files: map[string]string{"usr/bin/kubeadm": filepath.Join(folder, "kubeadm")}},
		{Name: "kubectl", Version: version, Arch: "amd64", Files: map[string]string{"usr/bin/kubectl": filepath.Join(folder, "kubectl")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(repo.Fingerprint) != 40 {
		t.Fatalf("fingerprint %q", repo.Fingerprint)
	}
	url, err := c.ServeDir("lb", repo.Dir, 8080, "InRelease")
	if err != nil {
		t.Fatal(err)
	}

	// As a site's host would be set up: the key by signed-by, only this
	// source (the test network reaches no Debian mirror).
	setup := `set -e
install -d -m 755 /etc/apt/keyrings
cp "$1" /etc/apt/keyrings/fleet-test.asc
echo "deb [signed-by=/etc/apt/keyrings/fleet-test.asc] $2 /" > /etc/apt/sources.list.d/fleet-test.list`
	if out, err := c.Exec("node", "sh", "-c", setup, "setup", repo.KeyFile, url); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	apt := "apt-get -q -o Dir::Etc::sourcelist=/etc/apt/sources.list.d/fleet-test.list -o Dir::Etc::sourceparts=- "
	install := apt + "update && DEBIAN_FRONTEND=noninteractive " + apt + "install -y --no-install-recommends kubeadm=" + version + " kubectl=" + version +
		" && apt-mark hold kubeadm kubectl >/dev/null && echo held: $(apt-mark showhold) && kubeadm version -o short && dpkg-query -W kubeadm kubectl"
	out, err := c.Exec("node", "sh", "-c", install)
	if err != nil {
		t.Fatalf("apt on the host: %v\n%s", err, out)
	}
	for _, want := range []string{"held: kubeadm kubectl", sim.KubernetesVersion, "kubeadm\t" + version, "kubectl\t" + version} {
		if !strings.Contains(string(out), want) {
			t.Errorf("apt's answer lacks %q:\n%s", want, out)
		}
	}
	if out, err := exec.Command("dpkg-query", "-W", "kubeadm").CombinedOutput(); err == nil {
		t.Errorf("the machine running the test has kubeadm installed now: %s", out)
	}

	// An index that is not what the key signed is refused.
	packages := filepath.Join(repo.Dir, "Packages")
	f, err := os.OpenFile(packages, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\nPackage: rogue\nVersion: 1\nArchitecture: amd64\n")
	f.Close()
	out, err = c.Exec("node", "sh", "-c", "rm -rf /var/lib/apt/lists/* && "+apt+"update")
	if err == nil || !strings.Contains(string(out), "Hash Sum mismatch") && !strings.Contains(string(out), "unexpected size") {
		t.Errorf("apt did not refuse an index that does not match the signed Release (%v):\n%s", err, out)
	}
}
