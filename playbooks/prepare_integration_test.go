package playbooks_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fleetops/fleet/internal/binaries"
	fleetexec "github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/aptrepo"
	"github.com/fleetops/fleet/testing/rpmrepo"
	"github.com/fleetops/fleet/testing/sim"
)

// bareNodes are the bare test bed's masters and workers.
var bareNodes = []string{"master0", "master1", "worker0"}

// prepareTraces are what the prepare steps leave on a node: the test
// reads them to tell a touched host from an untouched one.
const prepareTraces = `for f in /usr/bin/kubeadm /usr/bin/kubelet /usr/bin/kubectl /usr/local/bin/containerd \
	/etc/modules-load.d/fleet-kubernetes.conf /etc/sysctl.d/90-fleet-kubernetes.conf /etc/containerd/config.toml \
	/etc/systemd/system/kubelet.service /etc/systemd/system/kubelet.service.d/10-kubeadm.conf /var/lib/fleet/binaries.sha256; do
	[ -e $f ] && echo "$f"
done; echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"; ls /usr/bin/*.fleet-new 2>/dev/null; :`

// TestPrepareFromBareHosts: hosts with nothing of Kubernetes (no kubeadm,
// kubelet, kubectl or containerd, forwarding off) become an HA cluster
// with install: binaries and nothing else; what must be refused is refused
// before any host changes.
func TestPrepareFromBareHosts(t *testing.T) {
	sim.Need(t, cluster)
	topo := sim.Topology{ID: "bz", Subnet: 41, Bare: true, Hosts: []sim.HostSpec{
		{Name: "lb", Role: "loadbalancer"},
		{Name: "master0", Role: "master"}, {Name: "master1", Role: "master"},
		{Name: "worker0", Role: "worker"}, {Name: "ca", Role: "ca"},
	}}
	c := upWithNodeBinaries(t, topo)
	nodesOnly := sim.AirgapFolder(c.Tools)
	// The folder the operator brings: the nodes' binaries and the CA
	// host's cfssl and cfssljson.
	folder := filepath.Join(c.Dir, "airgap-with-cfssl")
	os.RemoveAll(folder)
	if err := os.MkdirAll(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFolder(t, nodesOnly, folder)
	addToFolder(t, folder, filepath.Join(c.Tools, "local/bin/cfssl"), filepath.Join(c.Tools, "local/bin/cfssljson"))
	for _, h := range bareNodes {
		if got := traces(t, c, h); got != "ip_forward=0\n" {
			t.Fatalf("%s is not bare: %q", h, got)
		}
	}
	// Log in as the sudo user: every upload streams through sudo.
	base, err := os.ReadFile(c.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	base = []byte(strings.Replace(string(base), "\n  user: root\n", "\n  user: "+sim.SudoUser+"\n  sudo: true\n", 1))
	invPath := filepath.Join(c.Dir, "bare.yaml")
	// A registry mirror: containerd's hosts.toml (nothing pulls here).
	const mirrors = "  registryMirrors: {registry.k8s.io: [\"https://mirror.example:5000\"]}\n"
	withFolderAndMirrors := func(dir, version, mirrors string) *inventory.Inventory {
		return editInventory(t, invPath, base, [2]string{"  kubernetesVersion: " + sim.KubernetesVersion + "\n",
			"  kubernetesVersion: " + version + "\n  install: binaries\n  binaries: " + dir + "\n" + mirrors})
	}
	withFolder := func(dir, version string) *inventory.Inventory { return withFolderAndMirrors(dir, version, mirrors) }
	opts := playbooks.DefaultApplyOptions()
	opts.Kubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	opts.GenerateCA = true

	t.Run("a CA host without cfssl, from a folder without it, is refused in preflight", func(t *testing.T) {
		_, s, shown, err := runApply(t, withFolder(nodesOnly, sim.KubernetesVersion), opts, nil)
		var pe *playbooks.PreflightError
		if !errors.As(err, &pe) || pe.Host != "ca" || !strings.Contains(pe.Error(), "/usr/local/bin/cfssl and /usr/local/bin/cfssljson missing: put cfssl and cfssljson (1.6 or later) in the binaries folder") {
			t.Fatalf("got %v, want the CA host's preflight to name cfssl\n%s", err, shown)
		}
		if s.Uploaded() != 0 {
			t.Errorf("%d bytes sent", s.Uploaded())
		}
		untouched(t, c)
	})

	t.Run("a binary whose sum differs is refused before any upload", func(t *testing.T) {
		tampered := t.TempDir()
		copyFolder(t, folder, tampered)
		f, err := os.OpenFile(filepath.Join(tampered, "kubelet"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte{0})
		f.Close()
		_, s, shown, err := runApply(t, withFolder(tampered, sim.KubernetesVersion), opts, nil)
		var ce *binaries.ChecksumError
		var be *playbooks.BinariesError
		if !errors.As(err, &be) || !errors.As(err, &ce) || ce.Path != filepath.Join(tampered, "kubelet") {
			t.Fatalf("got %v, want the kubelet's checksum refused", err)
		}
		for _, want := range []string{"kubelet", ce.Got, ce.Want} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %s", err, want)
			}
		}
		if s.Uploaded() != 0 || shown != err.Error() {
			t.Errorf("something ran: %d bytes sent; events:\n%s", s.Uploaded(), shown)
		}
		untouched(t, c)
	})

	t.Run("an unsupported distribution fails preflight, nothing changes anywhere", func(t *testing.T) {
		osRelease(t, c, "worker0", "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.20.0\nPRETTY_NAME=\"Alpine Linux v3.20\"\n")
		defer osRelease(t, c, "worker0", "")
		_, s, shown, err := runApply(t, withFolder(folder, sim.KubernetesVersion), opts, nil)
		var pe *playbooks.PreflightError
		if !errors.As(err, &pe) || pe.Host != "worker0" || !strings.Contains(pe.Error(), "Alpine Linux v3.20 (ID=alpine) is not a distribution fleet prepares") {
			t.Fatalf("got %v, want worker0's preflight to name Alpine\n%s", err, shown)
		}
		if s.Uploaded() != 0 {
			t.Errorf("%d bytes sent", s.Uploaded())
		}
		untouched(t, c)
	})

	t.Run("plan shows the work and does none", func(t *testing.T) {
		var out output
		s, err := playbooks.NewSession(withFolder(folder, sim.KubernetesVersion), playbooks.Options{OnEvent: out.event})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		report, err := playbooks.Plan(context.Background(), s, opts)
		if err != nil {
			t.Fatalf("plan: %v\n%s", err, out.buf.String())
		}
		wantTodo := map[string]string{
			"prepare-binaries": "install containerd, kubeadm, kubectl, kubelet, /etc/systemd/system/kubelet.service",
			"prepare-kernel":   "set net.ipv4.ip_forward=1",
			"prepare-runtime":  "write /etc/containerd/config.toml",
		}
		for step, want := range wantTodo {
			for _, h := range bareNodes {
				if r := reasonOf(report, step, h); !strings.Contains(r, want) {
					t.Errorf("plan: %s on %s says %q, want %q", step, h, r, want)
				}
			}
		}
		if r, want := reasonOf(report, "prepare-loadbalancer", "lb"), "install nginx, libnginx-mod-stream from the distribution"; r != want {
			t.Errorf("plan: prepare-loadbalancer says %q, want %q", r, want)
		}
		untouched(t, c)
	})

	t.Run("apply turns bare hosts into a Ready HA cluster", func(t *testing.T) {
		b, err := binaries.Load(folder)
		if err != nil {
			t.Fatal(err)
		}
		report, s, shown, err := runApply(t, withFolder(folder, sim.KubernetesVersion), opts, nil)
		if err != nil {
			t.Fatalf("apply: %v\n%s", err, shown)
		}
		ran := changedSteps(report)
		// The load balancer's nginx, from the distribution's packages.
		nginxFromPackages(t, c, ran)
		for _, h := range bareNodes {
			for _, step := range []string{"prepare-kernel", "prepare-binaries", "prepare-runtime"} {
				if !ran[step+"/"+h] {
					t.Errorf("%s did not run on %s", step, h)
				}
			}
			got := traces(t, c, h)
			if strings.Count(got, "\n") != 11 || !strings.Contains(got, "ip_forward=1") {
				t.Errorf("%s after apply:\n%s", h, got)
			}
			conf, err := c.Exec(h, "cat", "/etc/containerd/config.toml")
			if err != nil || !strings.Contains(string(conf), "SystemdCgroup = true") || !strings.Contains(string(conf), `sandbox_image = "registry.k8s.io/pause:`) ||
				!strings.Contains(string(conf), `config_path = "/etc/containerd/certs.d"`) {
				t.Errorf("%s: containerd config %q, %v", h, conf, err)
			}
			hosts, err := c.Exec(h, "cat", "/etc/containerd/certs.d/registry.k8s.io/hosts.toml")
			if err != nil || !strings.Contains(string(hosts), "server = \"https://registry.k8s.io\"\n\n[host.\"https://mirror.example:5000\"]\n") {
				t.Errorf("%s: registry.k8s.io's hosts.toml %q, %v", h, hosts, err)
			}
			for _, f := range b.NodeFiles() {
				sum, err := c.Exec(h, "sha256sum", f.Dest)
				if err != nil || !strings.HasPrefix(string(sum), f.SHA256+" ") {
					t.Errorf("%s: %s is %q, want %s", h, f.Dest, sum, f.SHA256)
				}
			}
		}
		var caSize int64
		for _, f := range b.CAFiles() {
			caSize += f.Size
			sum, err := c.Exec("ca", "sha256sum", f.Dest)
			if err != nil || !strings.HasPrefix(string(sum), f.SHA256+" ") {
				t.Errorf("ca: %s is %q, want %s", f.Dest, sum, f.SHA256)
			}
		}
		if !ran["prepare-ca/ca"] || len(b.CAFiles()) != 2 {
			t.Errorf("prepare-ca ran: %v; the folder's CA files: %v", ran["prepare-ca/ca"], b.CAFiles())
		}
		if want := int64(len(bareNodes))*b.TotalSize() + caSize; s.Uploaded() != want {
			t.Errorf("sent %d bytes, want %d (each binary once per host that gets it)", s.Uploaded(), want)
		}
		if !strings.Contains(shown, fmt.Sprintf("sent %.1f MB", float64(b.TotalSize())/1e6)) {
			t.Errorf("no per-host upload note in the events:\n%s", shown)
		}
		nodes, err := clientFor(t, opts.Kubeconfig).CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var ready []string
		for _, n := range nodes.Items {
			for _, cond := range n.Status.Conditions {
				if cond.Type == "Ready" && cond.Status == "True" && n.Status.NodeInfo.KubeletVersion == sim.KubernetesVersion {
					ready = append(ready, n.Name)
				}
			}
		}
		if strings.Join(ready, ",") != strings.Join(bareNodes, ",") {
			t.Errorf("Ready at %s: %v, want %v", sim.KubernetesVersion, ready, bareNodes)
		}
	})

	t.Run("a second apply sends nothing and changes nothing", func(t *testing.T) {
		report, s, shown, err := runApply(t, withFolder(folder, sim.KubernetesVersion), opts, nil)
		if err != nil {
			t.Fatalf("apply: %v\n%s", err, shown)
		}
		if report.Changed() || s.Uploaded() != 0 {
			t.Errorf("changes %v, %d bytes sent:\n%s", changedSteps(report), s.Uploaded(), shown)
		}
		for _, h := range bareNodes {
			if r := reasonOf(report, "prepare-binaries", h); !strings.Contains(r, "4 binaries of "+sim.KubernetesVersion+" installed") {
				t.Errorf("%s: prepare-binaries says %q", h, r)
			}
		}
		if r := reasonOf(report, "prepare-loadbalancer", "lb"); r != "nginx, libnginx-mod-stream installed from the distribution" {
			t.Errorf("lb: prepare-loadbalancer says %q", r)
		}
		if r := reasonOf(report, "prepare-ca", "ca"); r != "2 cfssl binaries installed with their sums" {
			t.Errorf("ca: prepare-ca says %q", r)
		}
	})

	t.Run("a second prepare asks each node one command", func(t *testing.T) {
		// Preflight's command answers every prepare check: on prepared
		// hosts the whole prepare is that one command per node.
		var mu sync.Mutex
		perHost := map[string][]string{}
		s, err := playbooks.NewSession(withFolder(folder, sim.KubernetesVersion), playbooks.Options{OnCommand: func(tr fleetexec.CommandTrace) {
			if tr.Step != "" { // the lock's commands are not a step's
				mu.Lock()
				perHost[tr.Host] = append(perHost[tr.Host], tr.Step)
				mu.Unlock()
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		report, err := playbooks.Prepare(context.Background(), s, opts)
		if err != nil {
			t.Fatal(err)
		}
		if report.Changed() || s.Uploaded() != 0 {
			t.Errorf("changes %v, %d bytes sent", changedSteps(report), s.Uploaded())
		}
		for _, h := range bareNodes {
			if got := perHost[h]; len(got) != 1 || got[0] != "preflight" {
				t.Errorf("%s: commands of steps %v, want [preflight]", h, got)
			}
		}
	})

	t.Run("a mirror taken out of the inventory: its hosts.toml goes, containerd's config stays", func(t *testing.T) {
		// A hosts.toml fleet did not write stays: it is the site's.
		if _, err := c.Exec("worker0", "sh", "-c", "mkdir -p /etc/containerd/certs.d/site.example && echo 'server = \"https://site.example\"' > /etc/containerd/certs.d/site.example/hosts.toml"); err != nil {
			t.Fatal(err)
		}
		before, _ := c.Exec("worker0", "cat", "/etc/containerd/config.toml")
		session := func() *playbooks.Session {
			s, err := playbooks.NewSession(withFolderAndMirrors(folder, sim.KubernetesVersion, ""), playbooks.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}
		plan, err := playbooks.Plan(context.Background(), session(), opts)
		if err != nil {
			t.Fatal(err)
		}
		report, err := playbooks.Prepare(context.Background(), session(), opts)
		if err != nil {
			t.Fatal(err)
		}
		ran := changedSteps(report)
		for _, h := range bareNodes {
			if r := reasonOf(plan, "prepare-runtime", h); r != "remove /etc/containerd/certs.d/registry.k8s.io/hosts.toml" || !ran["prepare-runtime/"+h] {
				t.Errorf("%s: prepare-runtime planned %q, ran %v", h, r, ran["prepare-runtime/"+h])
			}
			if out, _ := c.Exec(h, "sh", "-c", "ls /etc/containerd/certs.d/*/hosts.toml 2>/dev/null; :"); h == "worker0" && string(out) != "/etc/containerd/certs.d/site.example/hosts.toml\n" ||
				h != "worker0" && len(out) != 0 {
				t.Errorf("%s: hosts.toml files left: %q", h, out)
			}
		}
		if after, _ := c.Exec("worker0", "cat", "/etc/containerd/config.toml"); string(after) != string(before) {
			t.Errorf("containerd's config changed:\n%s\nwas\n%s", after, before)
		}
	})

	t.Run("another version than the installed one is refused, naming both", func(t *testing.T) {
		_, s, shown, err := runApply(t, withFolder(folder, "v1.34.5"), opts, nil)
		var pe *playbooks.PreflightError
		if !errors.As(err, &pe) {
			t.Fatalf("got %v, want a preflight refusal\n%s", err, shown)
		}
		want := "kubeadm " + sim.KubernetesVersion + " is installed, the inventory wants v1.34.5"
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
		if strings.Contains(shown, "succeeded prepare") || s.Uploaded() != 0 {
			t.Errorf("a prepare step ran:\n%s", shown)
		}
	})
}

// nginxFromPackages fails the test unless prepare-loadbalancer ran and
// the package manager on lb knows nginx and its stream module (dpkg, or
// rpm on a Rocky host), and the load balancer answers.
func nginxFromPackages(t *testing.T, c *sim.Cluster, ran map[string]bool) {
	t.Helper()
	query := []string{"dpkg-query", "-W", "nginx", "libnginx-mod-stream"}
	if c.Host("lb").Distro == sim.DistroRocky {
		query = []string{"rpm", "-q", "nginx", "nginx-mod-stream"}
	}
	if out, err := c.Exec("lb", query...); !ran["prepare-loadbalancer/lb"] || err != nil || strings.Count(string(out), "\n") != 2 {
		t.Errorf("prepare-loadbalancer ran: %v; %s on lb: %v %q", ran["prepare-loadbalancer/lb"], query[0], err, out)
	}
}

// reasonOf is the check's reason a step gave on a host ("" if none).
func reasonOf(r *steps.Report, step, host string) string {
	for _, e := range r.Events {
		if e.Step == step && e.Host == host && e.Reason != "" {
			return e.Reason
		}
	}
	return ""
}

func traces(t *testing.T, c *sim.Cluster, host string) string {
	t.Helper()
	out, err := c.Exec(host, "sh", "-c", prepareTraces)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// untouched fails the test unless every bare node is as it booted.
func untouched(t *testing.T, c *sim.Cluster) {
	t.Helper()
	for _, h := range bareNodes {
		if got := traces(t, c, h); got != "ip_forward=0\n" {
			t.Errorf("%s was changed:\n%s", h, got)
		}
	}
	if out, err := c.Exec("lb", "sh", "-c", "command -v nginx || echo none"); err != nil || string(out) != "none\n" {
		t.Errorf("lb has nginx: %q, %v", out, err)
	}
	for _, h := range c.Hosts {
		if out, err := c.Exec(h.Name, "sh", "-c", "ls /usr/local/bin/cfssl* 2>/dev/null; :"); h.Role == "ca" && (err != nil || len(out) != 0) {
			t.Errorf("%s has cfssl: %q, %v", h.Name, out, err)
		}
	}
}

// addToFolder links files into an air-gapped folder and lists them in its
// SHA256SUMS.
func addToFolder(t *testing.T, folder string, files ...string) {
	t.Helper()
	sums, err := os.OpenFile(filepath.Join(folder, binaries.SumsFile), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sums.Close()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(folder, filepath.Base(f)), data, 0o755); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(sums, "%x  %s\n", sha256.Sum256(data), filepath.Base(f))
	}
}

// osRelease gives the host another /etc/os-release, or its own back ("").
func osRelease(t *testing.T, c *sim.Cluster, host, content string) {
	t.Helper()
	script := "rm -f /etc/os-release && ln -s ../usr/lib/os-release /etc/os-release"
	if content != "" {
		script = "rm -f /etc/os-release && printf %s \"$1\" > /etc/os-release"
	}
	if out, err := c.Exec(host, "sh", "-c", script, "os-release", content); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

// copyFolder copies the air-gapped folder, so one file can be changed.
func copyFolder(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		src, err := os.Open(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.OpenFile(filepath.Join(to, e.Name()), os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		dst.Close()
	}
}

// TestPrepareFromPackages: bare hosts of a site that reaches only its own
// mirrors become a Ready cluster with install: packages: the Debian master
// through the real apt-get and dpkg, the Rocky worker and load balancer
// through the real dnf and rpm; the Kubernetes packages at the cluster's version and held
// (apt-mark hold, dnf versionlock), containerd from the distribution's
// repository; the mirrors' key (one, as pkgs.k8s.io signs both formats
// with one) is fetched and pinned by fingerprint, and a key that is not
// the pinned one stops the run before any host changes.
func TestPrepareFromPackages(t *testing.T) {
	sim.Need(t, cluster)
	debs, _ := filepath.Glob(filepath.Join(aptrepo.DebsDir, "*.deb"))
	if len(debs) < 5 {
		t.Fatalf("no containerd, runc and nginx .deb files in %s for the hosts' distribution mirror: run scripts/setup.sh", aptrepo.DebsDir)
	}
	topo := sim.Topology{ID: "bq", Subnet: 43, Bare: true, Hosts: []sim.HostSpec{
		{Name: "lb", Role: "loadbalancer"}, {Name: "master0", Role: "master"}, {Name: "worker0", Role: "worker"},
	}, Rocky: []string{"lb", "worker0"}}
	c := upWithNodeBinaries(t, topo)
	nodes := []string{"master0", "worker0"}
	folder := sim.AirgapFolder(c.Tools)
	const version, rpmVersion = "1.34.4-1.1", "1.34.4-150500.1.1" // as pkgs.k8s.io numbers them
	// containerd and nginx come from the distribution's mirror (sim's).
	repo, err := aptrepo.Build(filepath.Join(c.Dir, "apt"), kubePackagesOf(folder, version))
	if err != nil {
		t.Fatal(err)
	}
	url, err := c.ServeDir("lb", repo.Dir, 8080, "InRelease")
	if err != nil {
		t.Fatal(err)
	}
	rpmRepo, err := rpmrepo.Build(filepath.Join(c.Dir, "rpm"), rpmKubePackagesOf(folder, rpmVersion), repo.GPGHome)
	if err != nil {
		t.Fatal(err)
	}
	rpmURL, err := c.ServeDir("lb", rpmRepo.Dir, 8084, "repodata/repomd.xml")
	if err != nil {
		t.Fatal(err)
	}
	invPath := filepath.Join(c.Dir, "packages.yaml")
	withKey := func(fingerprint string) *inventory.Inventory {
		return editInventory(t, invPath, mustRead(t, c.Inventory), [2]string{"  kubernetesVersion: " + sim.KubernetesVersion + "\n",
			"  kubernetesVersion: " + sim.KubernetesVersion + "\n  install: packages\n  packages:\n    repository: " + url + "\n    rpmRepository: " + rpmURL + "\n    keyFingerprint: " + fingerprint + "\n"})
	}
	opts := playbooks.DefaultApplyOptions()
	opts.Kubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	installed := func(h string) string {
		script := "dpkg-query -W kubeadm kubelet kubectl containerd 2>/dev/null; echo held: $(apt-mark showhold); ls /etc/apt/keyrings 2>/dev/null; :"
		if c.Host(h).Distro == sim.DistroRocky {
			script = `rpm -q --whatprovides --qf '%{NAME}\t%{VERSION}-%{RELEASE}\n' kubeadm kubelet kubectl containerd | grep -v ' '
echo held: $(dnf -q versionlock list | sed 's/-[0-9].*//' | sort); ls /etc/pki/rpm-gpg; :`
		}
		out, _ := c.Exec(h, "sh", "-c", script)
		return string(out)
	}
	versionOf := func(h string) string {
		if c.Host(h).Distro == sim.DistroRocky {
			return rpmVersion
		}
		return version
	}

	t.Run("a key that is not the pinned one is refused before any host changes", func(t *testing.T) {
		before := map[string]string{}
		for _, h := range nodes {
			before[h] = installed(h)
			if strings.Contains(before[h], "kubeadm") || strings.Contains(before[h], "fleet-kubernetes.asc") {
				t.Fatalf("%s is not bare: %q", h, before[h])
			}
		}
		other := strings.Repeat("0", 40)
		_, _, shown, err := runApply(t, withKey(other), opts, nil)
		var be *playbooks.BinariesError
		if !errors.As(err, &be) || !strings.Contains(err.Error(), "the key's fingerprint is "+repo.Fingerprint+", the pinned one "+other) {
			t.Fatalf("got %v, want the key refused naming both fingerprints\n%s", err, shown)
		}
		for _, h := range nodes {
			if got := installed(h); got != before[h] {
				t.Errorf("%s changed: %q, was %q", h, got, before[h])
			}
		}
	})

	t.Run("apply installs, holds and builds the cluster", func(t *testing.T) {
		report, _, shown, err := runApply(t, withKey(repo.Fingerprint), opts, nil)
		if err != nil {
			t.Fatalf("apply: %v\n%s", err, shown)
		}
		ran := changedSteps(report)
		nginxFromPackages(t, c, ran)
		for _, h := range nodes {
			if !ran["prepare-packages/"+h] || !ran["prepare-kernel/"+h] || !ran["prepare-runtime/"+h] {
				t.Errorf("%s: prepare steps that ran: %v", h, ran)
			}
			got, v := installed(h), versionOf(h)
			for _, want := range []string{"kubeadm\t" + v, "kubelet\t" + v, "kubectl\t" + v, "containerd\t1.", "held: kubeadm kubectl kubelet", "fleet-kubernetes.asc"} {
				if !strings.Contains(got, want) {
					t.Errorf("%s lacks %q:\n%s", h, want, got)
				}
			}
		}
		nodeList, err := clientFor(t, opts.Kubeconfig).CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		if err != nil || len(nodeList.Items) != len(nodes) {
			t.Fatalf("nodes %v, %v", nodeList, err)
		}
		if out, err := exec.Command("dpkg-query", "-W", "kubeadm").CombinedOutput(); err == nil {
			t.Errorf("the machine running the test has kubeadm installed now: %s", out)
		}
		if out, err := exec.Command("rpm", "-q", "kubeadm").CombinedOutput(); err == nil {
			t.Errorf("the machine running the test has kubeadm in its rpm database now: %s", out)
		}
	})

	t.Run("a second apply installs nothing", func(t *testing.T) {
		report, _, shown, err := runApply(t, withKey(repo.Fingerprint), opts, nil)
		if err != nil || report.Changed() {
			t.Fatalf("%v; changes %v\n%s", err, changedSteps(report), shown)
		}
		for _, h := range nodes {
			from := url
			if c.Host(h).Distro == sim.DistroRocky {
				from = rpmURL
			}
			if r := reasonOf(report, "prepare-packages", h); !strings.Contains(r, "kubeadm, kubelet, kubectl "+versionOf(h)+" installed from "+from+" and held") {
				t.Errorf("%s: prepare-packages says %q", h, r)
			}
		}
	})

	t.Run("fleet upgrade moves the packages to the next minor's repository", func(t *testing.T) {
		next := sim.AirgapFolderOf(c.Tools, sim.NextVersion)
		const nextVersion, nextRPMVersion = "1.35.4-1.1", "1.35.4-150500.1.1"
		repo2, err := aptrepo.Build(filepath.Join(c.Dir, "apt-next"), kubePackagesOf(next, nextVersion))
		if err != nil {
			t.Fatal(err)
		}
		url2, err := c.ServeDir("lb", repo2.Dir, 8082, "InRelease")
		if err != nil {
			t.Fatal(err)
		}
		rpmRepo2, err := rpmrepo.Build(filepath.Join(c.Dir, "rpm-next"), rpmKubePackagesOf(next, nextRPMVersion), repo2.GPGHome)
		if err != nil {
			t.Fatal(err)
		}
		rpmURL2, err := c.ServeDir("lb", rpmRepo2.Dir, 8085, "repodata/repomd.xml")
		if err != nil {
			t.Fatal(err)
		}
		leave := ""
		if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
			leave = "  allowCgroupV1: true\n" // this machine has cgroups v1
		}
		inv := editInventory(t, invPath, nil, [2]string{"  kubernetesVersion: " + sim.KubernetesVersion + "\n", "  kubernetesVersion: " + sim.NextVersion + "\n" + leave},
			[2]string{"  repository: " + url + "\n", "  repository: " + url2 + "\n"}, [2]string{"rpmRepository: " + rpmURL + "\n", "rpmRepository: " + rpmURL2 + "\n"},
			[2]string{"keyFingerprint: " + repo.Fingerprint, "keyFingerprint: " + repo2.Fingerprint})
		if _, shown, err := runUpgrade(t, inv, nil); err != nil {
			t.Fatalf("upgrade: %v\n%s", err, shown)
		}
		for _, h := range nodes {
			got, v := installed(h), nextVersion
			if c.Host(h).Distro == sim.DistroRocky {
				v = nextRPMVersion
			}
			for _, want := range []string{"kubeadm\t" + v, "kubelet\t" + v, "kubectl\t" + v, "held: kubeadm kubectl kubelet"} {
				if !strings.Contains(got, want) {
					t.Errorf("%s lacks %q after the upgrade:\n%s", h, want, got)
				}
			}
		}
		for name, v := range kubeletVersions(t, clientFor(t, opts.Kubeconfig)) {
			if v != sim.NextVersion {
				t.Errorf("%s's kubelet is %s after the upgrade", name, v)
			}
		}
		if again, shown, err := runUpgrade(t, inv, nil); err != nil || again.Changed() {
			t.Errorf("a second upgrade: %v\n%s", err, shown)
		}
	})
}

// kubePackagesOf are kubeadm, kubelet and kubectl from an air-gapped
// folder as packages of version, laid out as pkgs.k8s.io's are.
func kubePackagesOf(folder, version string) []aptrepo.Package {
	var pkgs []aptrepo.Package
	for _, name := range []string{"kubeadm", "kubelet", "kubectl"} {
		pkgs = append(pkgs, aptrepo.Package{Name: name, Version: version, Arch: "amd64", Files: map[string]string{"usr/bin/" + name: filepath.Join(folder, name)}})
	}
	return pkgs
}

// rpmKubePackagesOf is kubePackagesOf for an rpm repository: version is
// version-release (1.34.4-150500.1.1).
func rpmKubePackagesOf(folder, version string) []rpmrepo.Package {
	v, release, _ := strings.Cut(version, "-")
	var pkgs []rpmrepo.Package
	for _, name := range []string{"kubeadm", "kubelet", "kubectl"} {
		pkgs = append(pkgs, rpmrepo.Package{Name: name, Version: v, Release: release, Files: map[string]string{"/usr/bin/" + name: filepath.Join(folder, name)}})
	}
	return pkgs
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
