package sim

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/crypto/ssh"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Getenv(IntegrationEnv) != "1" {
		t.Skipf("integration test: run with %s=1 as root (make test)", IntegrationEnv)
	}
}

// leftovers lists what a topology can leave in the kernel.
func leftovers(t *testing.T, id string) []string {
	t.Helper()
	var left []string
	nss, err := listNetns(netnsPrefix(id))
	if err != nil {
		t.Fatal(err)
	}
	left = append(left, nss...)
	out, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, bridgeName(id)) || strings.Contains(line, " fs"+id+"-") {
			left = append(left, strings.TrimSpace(line))
		}
	}
	return left
}

func TestUpGivesEachHostItsOwnWorldAndDownRemovesEverything(t *testing.T) {
	needRoot(t)
	dir := filepath.Join("/var/tmp/fleet-sim", "st")
	topo := Sized("st", 40, 3, 1)
	topo.Tools = layerForTest(t)
	c, err := Up(context.Background(), dir, topo)
	if err != nil {
		t.Fatal(err)
	}
	defer Down(dir, "st")

	// Own hostname, address, 127.0.0.1 and /etc/kubernetes per host.
	for _, h := range c.Hosts {
		out, err := c.Exec(h.Name, "sh", "-c", "hostname; ip -4 -o addr show eth0 | awk '{print $4}'; echo "+h.Name+" > /etc/kubernetes/whoami")
		if err != nil {
			t.Fatal(err)
		}
		if want := h.Name + "\n" + h.Address + "/24\n"; string(out) != want {
			t.Errorf("%s: got %q, want %q", h.Name, out, want)
		}
	}
	for _, h := range c.Hosts {
		b, err := os.ReadFile(filepath.Join(h.Dir, "etc/kubernetes/whoami"))
		if err != nil || string(b) != h.Name+"\n" {
			t.Errorf("%s sees someone else's /etc/kubernetes: %q %v", h.Name, b, err)
		}
	}
	if _, err := os.Stat("/etc/kubernetes/whoami"); err == nil {
		t.Error("a host wrote to the machine's /etc/kubernetes")
	}
	// The same loopback port on two hosts does not collide.
	for _, h := range c.Hosts[:2] {
		if _, err := c.Exec(h.Name, "sh", "-c", "nohup python3 -m http.server 10248 --bind 127.0.0.1 >/dev/null 2>&1 & "+
			"for i in $(seq 100); do ss -ltn | grep -q 127.0.0.1:10248 && exit 0; sleep 0.1; done; exit 1"); err != nil {
			t.Errorf("%s: %v", h.Name, err)
		}
	}

	// Installed like a node: binaries where packages put them, the CRI
	// endpoint up before kubeadm runs, the kubelet's unit looping.
	out, err := c.Exec("worker0", "sh", "-c", "for b in kubeadm kubelet kube-apiserver etcd; do command -v $b; done; kubeadm version -o short; "+
		"for i in $(seq 50); do [ -S /run/containerd/containerd.sock ] && break; sleep 0.1; done; ls /run/containerd/containerd.sock")
	if err != nil {
		t.Fatal(err)
	}
	if want := "/usr/bin/kubeadm\n/usr/bin/kubelet\n/usr/local/bin/kube-apiserver\n/usr/local/bin/etcd\nv1.34.4\n/run/containerd/containerd.sock\n"; string(out) != want {
		t.Errorf("worker0 installation:\n%s\nwant\n%s", out, want)
	}
	if _, err := os.Stat("/usr/bin/kubeadm"); err == nil {
		t.Error("the machine's own /usr/bin got kubeadm")
	}

	// A process left running on a host (as a kubelet would be) must die too.
	if _, err := c.Exec("worker0", "sh", "-c", "nohup sleep 9999 >/dev/null 2>&1 &"); err != nil {
		t.Fatal(err)
	}
	pids, err := netnsPids(c.Host("worker0").NetNS)
	if err != nil || len(pids) < 2 {
		t.Fatalf("pids in worker0: %v %v", pids, err)
	}

	// Simulate a crash: the state file is gone, only the kernel remembers.
	os.Remove(filepath.Join(dir, stateFile))
	if err := Down(dir, "st"); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, "st"); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	for _, p := range pids {
		if alive(p) {
			t.Errorf("process %d survived", p)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists", dir)
	}
	// Down on nothing is fine.
	if err := Down(dir, "st"); err != nil {
		t.Errorf("second Down: %v", err)
	}
}

func TestRotateHostKeyChangesTheServedKey(t *testing.T) {
	needRoot(t)
	dir := filepath.Join("/var/tmp/fleet-sim", "rk")
	c, err := Up(context.Background(), dir, Sized("rk", 41, 2, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	before, _ := c.HostKey("master0")
	if err := c.RotateHostKey(context.Background(), "master0"); err != nil {
		t.Fatal(err)
	}
	after, _ := c.HostKey("master0")
	if string(before.Marshal()) == string(after.Marshal()) {
		t.Fatal("key unchanged")
	}
	out, err := exec.Command("ssh-keyscan", "-T", "5", "-t", "ed25519", c.Host("master0").Address).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), strings.Fields(string(ssh.MarshalAuthorizedKey(after)))[1]) {
		t.Errorf("sshd serves %q, want the new key", out)
	}
}

// alive reports whether pid runs; a zombie waiting for its parent to reap it
// has been killed and does not count.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// layerForTest is the node-binary layer that make sim-tools lays out.
func layerForTest(t *testing.T) string {
	t.Helper()
	layer := os.Getenv("FLEET_SIM_LAYER")
	if layer == "" {
		layer = "/var/cache/fleet-sim/layer"
	}
	if _, err := os.Stat(filepath.Join(layer, "bin/kubeadm")); err != nil {
		t.Fatalf("no node binaries in %s: run make sim-tools", layer)
	}
	return layer
}
