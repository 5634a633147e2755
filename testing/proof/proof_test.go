// Package proof shows, without any of fleet's code, that the simulated hosts
// run a real kubeadm HA control plane: plain OpenSSH runs kubeadm init on
// one host, joins two more control-plane hosts and a worker, and client-go
// checks the result. kubeadm runs with every preflight check enforced, as on
// a prepared VM. If this fails, the test bed is broken, not fleet.
package proof

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	certsv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fleetops/fleet/testing/sim"
)

var cluster *sim.Cluster

func TestMain(m *testing.M) {
	topo := sim.HA("pf", 50)
	topo.Tools = os.Getenv("FLEET_SIM_LAYER")
	if topo.Tools == "" {
		topo.Tools = "/var/cache/fleet-sim/layer"
	}
	os.Exit(sim.RunTests(m, topo, &cluster))
}

// ssh runs a command on a host with the OpenSSH client, host key verified.
func ssh(t *testing.T, host, command string) string {
	t.Helper()
	out, err := exec.Command("ssh", "-i", cluster.KeyFile,
		"-o", "UserKnownHostsFile="+cluster.KnownHosts, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
		"root@"+cluster.Host(host).Address, command).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %s: %v\n%s", host, command, err, out)
	}
	return string(out)
}

func initConfig(master sim.Host) string {
	return fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: %[1]s
  bindPort: 6443
nodeRegistration:
  name: %[2]s
  criSocket: unix:///run/containerd/containerd.sock
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: %[3]s
controlPlaneEndpoint: %[1]s:6443
networking:
  podSubnet: 10.244.0.0/16
  serviceSubnet: 10.96.0.0/12
`, master.Address, master.Name, sim.KubernetesVersion)
}

var (
	tokenRe   = regexp.MustCompile(`--token (\S+)`)
	hashRe    = regexp.MustCompile(`--discovery-token-ca-cert-hash (sha256:[0-9a-f]{64})`)
	certKeyRe = regexp.MustCompile(`--certificate-key ([0-9a-f]{64})`)
)

func TestKubeadmHAOnSimulatedHosts(t *testing.T) {
	sim.Need(t, cluster)
	start := time.Now()
	m0 := cluster.Host("master0")

	ssh(t, "master0", "cat > /root/kubeadm.yaml <<'EOF'\n"+initConfig(m0)+"EOF")
	out := ssh(t, "master0", "kubeadm init --config /root/kubeadm.yaml --upload-certs 2>&1")
	t.Logf("kubeadm init: %s", time.Since(start).Round(time.Millisecond))
	token, hash, certKey := match(t, tokenRe, out), match(t, hashRe, out), match(t, certKeyRe, out)

	join := fmt.Sprintf("kubeadm join %s:6443 --token %s --discovery-token-ca-cert-hash %s --cri-socket unix:///run/containerd/containerd.sock",
		m0.Address, token, hash)
	for _, m := range []string{"master1", "master2"} {
		begin := time.Now()
		ssh(t, m, fmt.Sprintf("%s --control-plane --certificate-key %s --apiserver-advertise-address %s 2>&1", join, certKey, cluster.Host(m).Address))
		t.Logf("control-plane join %s: %s", m, time.Since(begin).Round(time.Millisecond))
	}
	begin := time.Now()
	ssh(t, "worker0", join+" 2>&1")
	t.Logf("worker join: %s", time.Since(begin).Round(time.Millisecond))

	client := adminClient(t)
	waitNodesReady(t, client, []string{"master0", "master1", "master2", "worker0"})
	checkEtcdMembers(t, 3)
	checkCSRsIssued(t, client, 3)

	tokens := ssh(t, "master0", "kubeadm token list")
	if !strings.Contains(tokens, strings.Split(token, ".")[0]) || !strings.Contains(tokens, "kubeadm-certs") {
		t.Errorf("kubeadm token list lacks the join token or the kubeadm-certs proxy token:\n%s", tokens)
	}
	fmt.Printf("proof: 3 control-plane hosts and a worker Ready in %s\n", time.Since(start).Round(time.Millisecond))
	checkKubeletMemory(t, 50<<20)

	resetWorker(t, client)
}

func match(t *testing.T, re *regexp.Regexp, out string) string {
	t.Helper()
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %s in kubeadm output:\n%s", re, out)
	}
	return m[1]
}

func adminClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	conf := ssh(t, "master0", "cat /etc/kubernetes/admin.conf")
	path := filepath.Join(t.TempDir(), "admin.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func waitNodesReady(t *testing.T, client kubernetes.Interface, names []string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		nodes, err := client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		ready := map[string]bool{}
		if err == nil {
			for _, n := range nodes.Items {
				for _, c := range n.Status.Conditions {
					if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
						ready[n.Name] = true
					}
				}
			}
		}
		missing := []string{}
		for _, n := range names {
			if !ready[n] {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 && len(nodes.Items) == len(names) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nodes not Ready: %v (list error %v)", missing, err)
		}
		time.Sleep(time.Second)
	}
}

// checkEtcdMembers asks etcd itself, through its gateway with the
// healthcheck client certificate kubeadm made.
func checkEtcdMembers(t *testing.T, want int) {
	t.Helper()
	members, err := cluster.EtcdMembers("master0")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(members, ","); len(members) != want || got != "master0,master1,master2" {
		t.Errorf("etcd members %v, want master0-2", members)
	}
}

func checkCSRsIssued(t *testing.T, client kubernetes.Interface, atLeast int) {
	t.Helper()
	csrs, err := client.CertificatesV1().CertificateSigningRequests().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	issued := 0
	for _, c := range csrs.Items {
		approved := false
		for _, cond := range c.Status.Conditions {
			approved = approved || cond.Type == certsv1.CertificateApproved
		}
		if approved && len(c.Status.Certificate) > 0 && c.Spec.SignerName == "kubernetes.io/kube-apiserver-client-kubelet" {
			issued++
		}
	}
	if issued < atLeast {
		t.Errorf("%d kubelet CSRs Approved,Issued, want at least %d", issued, atLeast)
	}
}

// checkKubeletMemory bounds the emulated kubelet's resident memory on every
// joined host, so a 200-host test bed fits the machine.
func checkKubeletMemory(t *testing.T, limit int64) {
	t.Helper()
	for _, h := range []string{"master0", "master1", "master2", "worker0"} {
		pids, err := exec.Command("ip", "netns", "pids", cluster.Host(h).NetNS).Output()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, pid := range strings.Fields(string(pids)) {
			comm, _ := os.ReadFile("/proc/" + pid + "/comm")
			if strings.TrimSpace(string(comm)) != "kubelet" {
				continue
			}
			found = true
			status, _ := os.ReadFile("/proc/" + pid + "/status")
			var rss int64
			for _, line := range strings.Split(string(status), "\n") {
				if strings.HasPrefix(line, "VmRSS:") {
					fmt.Sscanf(strings.TrimPrefix(line, "VmRSS:"), "%d", &rss)
				}
			}
			rss <<= 10 // kB
			t.Logf("%s: kubelet RSS %.1f MiB", h, float64(rss)/(1<<20))
			if rss == 0 || rss > limit {
				t.Errorf("%s: kubelet RSS %d bytes, want (0, %d]", h, rss, limit)
			}
		}
		if !found {
			t.Errorf("%s: no kubelet process", h)
		}
	}
}

func resetWorker(t *testing.T, client kubernetes.Interface) {
	t.Helper()
	ssh(t, "worker0", "kubeadm reset -f 2>&1")
	w := cluster.Host("worker0")
	for _, f := range []string{"etc/kubernetes/kubelet.conf", "var/lib/kubelet/config.yaml", "etc/kubernetes/pki/ca.crt"} {
		if _, err := os.Stat(filepath.Join(w.Dir, f)); err == nil {
			t.Errorf("kubeadm reset left %s on worker0", f)
		}
	}
	// The kubelet stops for good: its health port no longer answers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := cluster.Exec("worker0", "curl", "-sf", "--max-time", "1", "http://127.0.0.1:10248/healthz")
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the kubelet on worker0 still answers after kubeadm reset")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
