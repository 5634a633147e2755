package playbooks_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/reliability"
	"github.com/fleetops/fleet/testing/sim"
)

// TestNodeLocalProxy: with nodeLocalProxy, every kubelet talks to the API
// through its node's 127.0.0.1 (the workers' own NGINX proxy to every
// master, the masters' own API server), so the nodes keep the API when
// the load balancer is gone: its link cut, every kubelet still renews its
// Lease, every node stays Ready, and a worker reaches the API through
// 127.0.0.1. plan shows the proxy before; a second apply changes nothing
// and status sees every local path answer; a master removed leaves every node's upstream.
func TestNodeLocalProxy(t *testing.T) {
	sim.Need(t, cluster)
	c := upWithNodeBinaries(t, sim.Sized("nl", 46, 5, 3)) // lb, master0-2, worker0
	kubeconfig := filepath.Join(c.Dir, "admin.kubeconfig")
	opts := playbooks.DefaultApplyOptions()
	opts.Kubeconfig = kubeconfig
	inv := editInventory(t, c.Inventory, nil, [2]string{"  kubernetesVersion: " + sim.KubernetesVersion + "\n",
		"  kubernetesVersion: " + sim.KubernetesVersion + "\n  nodeLocalProxy: true\n"})
	ps, err := playbooks.NewSession(inv, playbooks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := playbooks.Plan(context.Background(), ps, opts)
	ps.Close()
	if r := reasonOf(plan, "node-proxy", "worker0"); err != nil || !strings.Contains(r, "write the proxy's config") {
		t.Errorf("plan: node-proxy on worker0 says %q (%v), want the config written", r, err)
	}
	report, _, shown, err := runApply(t, inv, opts, nil)
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, shown)
	}
	for _, step := range []string{"node-proxy", "master-kubeconfig", "node-kubeconfig", "kube-proxy-config"} {
		if !ranStep(report, step) {
			t.Errorf("apply did not run %s:\n%s", step, shown)
		}
	}
	if report, _, again, err := runApply(t, inv, opts, nil); err != nil || report.Changed() {
		t.Fatalf("second apply: %v\n%s", err, again)
	}
	for _, n := range []string{"master0", "worker0"} {
		conf, err := c.Exec(n, "cat", "/etc/kubernetes/kubelet.conf")
		if err != nil || !strings.Contains(string(conf), "server: https://127.0.0.1:6443") {
			t.Errorf("%s: the kubelet's kubeconfig does not point at 127.0.0.1: %v\n%s", n, err, conf)
		}
	}
	s, rows := statusOf(t, inv)
	for _, r := range rows {
		if r.LocalProxy != playbooks.Yes {
			t.Errorf("status: %s's local path to the API: %s", r.Host, r.LocalProxy)
		}
	}

	// The load balancer's link cut: the API through a master directly.
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Host = "https://" + c.Host("master0").Address + ":6443"
	api := kubernetes.NewForConfigOrDie(cfg)
	if err := c.LinkDown("lb"); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	t.Cleanup(func() { c.LinkUp("lb") })
	// Every kubelet renews its Lease every 10 s: two rounds.
	time.Sleep(22 * time.Second)
	nodes, err := api.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var renewed []string
	for _, n := range nodes.Items {
		lease, err := api.CoordinationV1().Leases("kube-node-lease").Get(context.Background(), n.Name, metav1.GetOptions{})
		if err != nil || lease.Spec.RenewTime == nil || !lease.Spec.RenewTime.After(cut.Add(5*time.Second)) {
			t.Errorf("%s: its kubelet has not renewed its Lease since the load balancer was cut (%v)", n.Name, err)
		} else {
			renewed = append(renewed, n.Name)
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status != corev1.ConditionTrue {
				t.Errorf("%s is %s with the load balancer cut", n.Name, cond.Status)
			}
		}
	}
	out, err := c.Exec("worker0", "kubectl", "--kubeconfig", "/etc/kubernetes/kubelet.conf", "get", "node", "worker0", "-o", "name")
	if err != nil || strings.TrimSpace(string(out)) != "node/worker0" {
		t.Errorf("worker0 through 127.0.0.1 with the load balancer cut: %v %s", err, out)
	}
	reliability.Record(t, reliability.Row{N: 22, Did: fmt.Sprintf("nothing to do: with the load balancer's link cut for %s, %s renewed their Leases through 127.0.0.1 (workers: fleet's NGINX proxy to every master; masters: their own API server) and stayed Ready; worker0 read its Node through its proxy",
		time.Since(cut).Round(time.Second), strings.Join(renewed, ", ")),
		Rerun: "with the link back, fleet remove master2 took master2 out of worker0's proxy upstream before draining it; worker0 stayed Ready"})
	if err := c.LinkUp("lb"); err != nil {
		t.Fatal(err)
	}

	// A master removed: out of every staying node's upstream.
	if _, err := playbooks.Remove(context.Background(), s, []string{"master2"}, playbooks.DefaultRemoveOptions()); err != nil {
		t.Fatalf("remove master2: %v", err)
	}
	conf, err := c.Exec("worker0", "cat", "/etc/fleet/apiserver-proxy/nginx.conf")
	if err != nil || strings.Contains(string(conf), c.Host("master2").Address) || !strings.Contains(string(conf), c.Host("master1").Address) {
		t.Errorf("worker0's proxy after master2 left: %v\n%s", err, conf)
	}
	if out, err := c.Exec("worker0", "kubectl", "--kubeconfig", "/etc/kubernetes/kubelet.conf", "get", "node", "worker0", "-o", "name"); err != nil {
		t.Errorf("worker0 through 127.0.0.1 after master2 left: %v %s", err, out)
	}
}

// statusOf is fleet status's node rows for inv, and the session that
// asked (closed with the test).
func statusOf(t *testing.T, inv *inventory.Inventory) (*playbooks.Session, []playbooks.NodeStatus) {
	t.Helper()
	s, err := playbooks.NewSession(inv, playbooks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	rows, err := playbooks.Status(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return s, rows
}

// ranStep says whether a step ran (not only checked) on some host.
func ranStep(r *steps.Report, step string) bool {
	for _, e := range r.Changes() {
		if e.Step == step {
			return true
		}
	}
	return false
}

// TestNodeLocalProxyWithoutBalancer: no load balancer at all. The worker
// joins through the first master, then its kubelet uses its own proxy to
// every master; a second apply changes nothing; status has no balancer.
func TestNodeLocalProxyWithoutBalancer(t *testing.T) {
	sim.Need(t, cluster)
	c := upWithNodeBinaries(t, sim.Topology{ID: "nb", Subnet: 47, Hosts: []sim.HostSpec{{Name: "master0", Role: "master"}, {Name: "worker0", Role: "worker"}}})
	opts := playbooks.DefaultApplyOptions()
	opts.Kubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	inv := editInventory(t, c.Inventory, nil, [2]string{"  kubernetesVersion: " + sim.KubernetesVersion + "\n",
		"  kubernetesVersion: " + sim.KubernetesVersion + "\n  nodeLocalProxy: true\n"})
	if inv.Cluster.ControlPlaneEndpoint != c.Host("master0").Address+":6443" {
		t.Fatalf("endpoint %s, want master0's", inv.Cluster.ControlPlaneEndpoint)
	}
	if _, _, shown, err := runApply(t, inv, opts, nil); err != nil {
		t.Fatalf("apply: %v\n%s", err, shown)
	}
	if report, _, again, err := runApply(t, inv, opts, nil); err != nil || report.Changed() {
		t.Fatalf("second apply: %v\n%s", err, again)
	}
	conf, err := c.Exec("worker0", "cat", "/etc/kubernetes/kubelet.conf")
	if err != nil || !strings.Contains(string(conf), "server: https://127.0.0.1:6443") {
		t.Errorf("worker0's kubelet does not use its proxy: %v\n%s", err, conf)
	}
	s, rows := statusOf(t, inv)
	for _, r := range rows {
		if r.Ready != playbooks.Yes || r.LocalProxy != playbooks.Yes {
			t.Errorf("status of %s: Ready %s, local proxy %s", r.Host, r.Ready, r.LocalProxy)
		}
	}
	if b := playbooks.Balancers(context.Background(), s); len(b) != 0 {
		t.Errorf("status lists balancers of a cluster without any: %+v", b)
	}
}
