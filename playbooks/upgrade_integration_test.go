package playbooks_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/reliability"
	"github.com/fleetops/fleet/testing/sim"
)

// TestUpgrade: an HA cluster (three masters, two workers, one of them
// joined by TLS bootstrapping, without kubeadm) built at
// sim.KubernetesVersion from the binaries folder is moved one minor up
// with the real kubeadm of both versions. Before: apply at the new
// version is refused and plan shows the upgrade; two minors up, a
// downgrade and a NotReady node are refused with nothing changed (and a
// cgroups v1 host without the inventory's leave, on such a machine).
// During: the API is asked through the load balancer every second and
// may fail only while a master is being upgraded; a Deployment guarded by
// a PodDisruptionBudget never has fewer Ready pods than the budget's
// minimum; the run is cut in the middle of the second master's upgrade
// and the next run finishes it, skipping the first. After: every kubelet
// and API server at the new version, no node cordoned, a third run
// changes nothing, and apply at the new version works.
func TestUpgrade(t *testing.T) {
	sim.Need(t, cluster)
	c := upWithNodeBinaries(t, sim.Sized("ug", 53, 6, 3)) // lb, master0-2, worker0-1
	opts := playbooks.DefaultApplyOptions()
	opts.Kubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	from, to := sim.KubernetesVersion, sim.NextVersion
	// worker1 joins without kubeadm: its upgrade is its kubelet alone.
	w1 := "  - name: worker1\n    address: " + c.Host("worker1").Address + "\n"
	inv := editInventory(t, c.Inventory, nil, [2]string{"  kubernetesVersion: " + from + "\n",
		"  kubernetesVersion: " + from + "\n  install: binaries\n  binaries: " + sim.AirgapFolderOf(c.Tools, from) + "\n"},
		[2]string{w1, w1 + "    joinMode: tls-bootstrap\n"})
	if _, _, shown, err := runApply(t, inv, opts, nil); err != nil {
		t.Fatalf("apply at %s: %v\n%s", from, err, shown)
	}
	api := clientFor(t, opts.Kubeconfig)
	untouched := func(what string) {
		t.Helper()
		for name, v := range kubeletVersions(t, api) {
			if v != from {
				t.Fatalf("%s changed %s's kubelet to %s", what, name, v)
			}
		}
	}

	// This machine's cgroups decide whether v1.35's kubelets need the
	// inventory's leave: without it, a cgroups v1 host is refused.
	_, err := os.Stat("/sys/fs/cgroup/cgroup.controllers")
	cgroupV1 := err != nil
	inv = editInventory(t, c.Inventory, nil, [2]string{"  kubernetesVersion: " + from + "\n", "  kubernetesVersion: " + to + "\n"},
		[2]string{sim.AirgapFolderOf(c.Tools, from) + "\n", sim.AirgapFolderOf(c.Tools, to) + "\n"})
	if _, shown, err := runUpgrade(t, inv, nil); cgroupV1 != (err != nil && strings.Contains(err.Error(), "cgroups v1")) {
		t.Fatalf("upgrade to %s without allowCgroupV1 on a machine with cgroups v1 %v: %v\n%s", to, cgroupV1, err, shown)
	}
	if cgroupV1 {
		untouched("the upgrade refused for cgroups v1")
		// The cluster was made without it: the upgrade puts it into
		// the cluster's kubelet-config.
		inv = editInventory(t, c.Inventory, nil, [2]string{"  kubernetesVersion: " + to + "\n", "  kubernetesVersion: " + to + "\n  allowCgroupV1: true\n"})
	}

	// Refused before anything changes, with the reason.
	for _, tc := range []struct{ version, why string }{
		{"v1.36.1", "one minor at a time"},
		{"v1.34.3", "does not downgrade"},
	} {
		bad := editInventory(t, c.Inventory, nil, [2]string{"  kubernetesVersion: " + to + "\n", "  kubernetesVersion: " + tc.version + "\n"})
		_, shown, err := runUpgrade(t, bad, nil)
		if !isRefused(err) || !strings.Contains(err.Error(), tc.why) {
			t.Fatalf("upgrade to %s: %v, want refused: %s\n%s", tc.version, err, tc.why, shown)
		}
		inv = editInventory(t, c.Inventory, nil, [2]string{"  kubernetesVersion: " + tc.version + "\n", "  kubernetesVersion: " + to + "\n"})
		untouched("the upgrade to " + tc.version)
	}
	setNodeReady(t, api, "worker1", corev1.ConditionFalse)
	if _, shown, err := runUpgrade(t, inv, nil); !isRefused(err) || !strings.Contains(err.Error(), "worker1 is not Ready") {
		t.Fatalf("upgrade with worker1 NotReady: %v, want refused\n%s", err, shown)
	}
	setNodeReady(t, api, "worker1", corev1.ConditionTrue)
	untouched("the upgrade refused for a NotReady node")

	if _, _, shown, err := runApply(t, inv, opts, nil); err == nil || !strings.Contains(err.Error(), "fleet upgrade") {
		t.Fatalf("apply at %s on a cluster at %s: %v, want a refusal pointing at fleet upgrade\n%s", to, from, err, shown)
	}
	ps, err := playbooks.NewSession(inv, playbooks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := playbooks.Plan(context.Background(), ps, opts)
	ps.Close()
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	for _, host := range []string{"master0", "master1", "master2"} {
		if r := reasonOf(plan, "upgrade-masters", host); !strings.Contains(r, "control plane "+from+" → "+to) || !strings.Contains(r, "kubelet "+from+" → "+to) {
			t.Errorf("plan: upgrade-masters on %s says %q", host, r)
		}
	}
	if r := reasonOf(plan, "upgrade-plan", "master0"); r != "after upgrade-kubeadm" {
		t.Errorf("plan: upgrade-plan on master0 says %q, want it after the new kubeadm (the old one must not be asked)", r)
	}
	if r := reasonOf(plan, "upgrade-workers", "worker1"); !strings.Contains(r, "kubelet "+from+" → "+to) {
		t.Errorf("plan: upgrade-workers on worker1 says %q", r)
	}
	// The folder put kubeadm on worker1 too: it is replaced (a later
	// apply would refuse the old one), though worker1 does not run it.
	if r := reasonOf(plan, "upgrade-kubeadm", "worker1"); !strings.Contains(r, "install kubeadm") {
		t.Errorf("plan: upgrade-kubeadm on worker1 says %q", r)
	}
	untouched("plan")

	// A workload the drains must respect, the API through the balancer,
	// and who was being upgraded when.
	budget := guardedWorkload(t, api, 3, 2)
	cfg, err := clientcmd.BuildConfigFromFlags("", opts.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	probe := probeEverySecond(t, cfg)
	var windows upgradeWindows
	record := func(e steps.Event) { windows.see(e) }

	// Cut in the middle of master1's upgrade: the next run finishes it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, shown, err := runUpgradeCtx(t, ctx, inv, func(e steps.Event) {
		record(e)
		if e.Step == "upgrade-masters" && e.Host == "master1" && e.Kind == steps.Started {
			time.AfterFunc(5*time.Second, cancel)
		}
	})
	if err == nil {
		t.Fatalf("the upgrade cut during master1 succeeded:\n%s", shown)
	}
	if v := kubeletVersions(t, api); v["master0"] != to || v["master2"] != from || v["worker0"] != from {
		t.Fatalf("after the cut: kubelets %v, want master0 at %s, master2 and the workers at %s\n%s", v, to, from, shown)
	}
	began := time.Now()
	report, shown, err := runUpgrade(t, inv, record)
	if err != nil {
		t.Fatalf("upgrade after the cut: %v\n%s", err, shown)
	}
	t.Logf("the resumed upgrade took %s (master1 from where the cut left it, master2, worker0, worker1)", time.Since(began).Round(time.Second))
	if r := reasonOf(report, "upgrade-masters", "master0"); r != "at "+to {
		t.Errorf("the resumed upgrade did master0 again: %q\n%s", r, shown)
	}
	reliability.Record(t, reliability.Row{N: 23, Did: "cancelled 5 s into master1's upgrade (master0 done): the run stopped there, killing what it ran on master1; the other nodes stayed at " + from,
		Rerun: "the next fleet upgrade found master0 at " + to + " and skipped it, finished master1 (kubeadm upgrade node again, drain, kubelet, uncordon), then master2 and the workers; every kubelet and API server at " + to + ", no node cordoned, a third run changed nothing"})

	failures, probes, outside := probe.stop(windows.masters())
	t.Logf("the API through the load balancer: %d of %d probes failed, all while a master was being upgraded", failures, probes)
	if len(outside) > 0 {
		t.Errorf("probes failed while no master was being upgraded: %v (master windows %v)", outside, windows.masters())
	}
	least := budget.stop()
	t.Logf("the PodDisruptionBudget's Deployment had at least %d of 3 pods Ready throughout (minAvailable 2)", least)
	if least < 2 {
		t.Errorf("the drains took the Deployment to %d Ready pods, under its budget's 2", least)
	}
	for name, v := range kubeletVersions(t, api) {
		if v != to {
			t.Errorf("%s's kubelet is %s after the upgrade, want %s", name, v, to)
		}
	}
	nodes, err := api.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		if n.Spec.Unschedulable {
			t.Errorf("%s is still cordoned after the upgrade", n.Name)
		}
	}
	// Each API server is the new binary: ask each master's directly.
	for _, m := range []string{"master0", "master1", "master2"} {
		out, err := c.Exec(m, "kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "--server", "https://"+c.Host(m).Address+":6443", "version", "-o", "json")
		if err != nil || !strings.Contains(string(out), `"gitVersion": "`+to+`"`) {
			t.Errorf("%s's API server after the upgrade: %v\n%s", m, err, out)
		}
	}
	if cgroupV1 {
		cm, err := api.CoreV1().ConfigMaps("kube-system").Get(context.Background(), "kubelet-config", metav1.GetOptions{})
		if err != nil || !strings.Contains(cm.Data["kubelet"], "failCgroupV1: false") {
			t.Errorf("kube-system/kubelet-config after the upgrade: %v\n%s", err, cm.Data["kubelet"])
		}
	}
	if again, shown, err := runUpgrade(t, inv, nil); err != nil || again.Changed() {
		t.Errorf("a third upgrade: %v, changed %v\n%s", err, again != nil && again.Changed(), shown)
	}
	// The cluster at the new version is apply's again.
	if _, _, shown, err := runApply(t, inv, opts, nil); err != nil {
		t.Errorf("apply at %s after the upgrade: %v\n%s", to, err, shown)
	}
}

// runUpgrade runs one fleet upgrade of inv with a fresh session.
func runUpgrade(t *testing.T, inv *inventory.Inventory, inject func(steps.Event)) (*steps.Report, string, error) {
	return runUpgradeCtx(t, context.Background(), inv, inject)
}

func runUpgradeCtx(t *testing.T, ctx context.Context, inv *inventory.Inventory, inject func(steps.Event)) (*steps.Report, string, error) {
	t.Helper()
	report, _, shown, err := runCommand(t, ctx, inv, inject, func(ctx context.Context, s *playbooks.Session) (*steps.Report, error) {
		return playbooks.Upgrade(ctx, s, playbooks.DefaultUpgradeOptions())
	})
	return report, shown, err
}

func isRefused(err error) bool {
	var r *playbooks.RefusedError
	return errors.As(err, &r)
}

// kubeletVersions is each Node's kubelet version.
func kubeletVersions(t *testing.T, api kubernetes.Interface) map[string]string {
	t.Helper()
	// The API through the balancer may not answer for a moment while a
	// master's control plane restarts (a run cut mid-upgrade leaves one
	// restarting): ask again for a while.
	var nodes *corev1.NodeList
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
		if nodes, err = api.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{}); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range nodes.Items {
		out[n.Name] = n.Status.NodeInfo.KubeletVersion
	}
	return out
}

// setNodeReady sets a Node's Ready condition as its kubelet would (the
// emulated kubelet posts its status once a minute: the change holds until
// then, or until set back).
func setNodeReady(t *testing.T, api kubernetes.Interface, node string, status corev1.ConditionStatus) {
	t.Helper()
	n, err := api.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			n.Status.Conditions[i].Status = status
		}
	}
	if _, err := api.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// upgradeWindows records when each master was being upgraded: from its
// first start to the end of the run that finished it.
type upgradeWindows struct {
	mu     sync.Mutex
	open   map[string]time.Time
	closed [][2]time.Time
}

func (w *upgradeWindows) see(e steps.Event) {
	if e.Step != "upgrade-masters" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.open == nil {
		w.open = map[string]time.Time{}
	}
	// A master whose upgrade failed or was cut is left half-way, its
	// control plane restarting: its window stays open until a later run
	// finishes it.
	switch e.Kind {
	case steps.Started:
		if _, ok := w.open[e.Host]; !ok {
			w.open[e.Host] = e.Time
		}
	case steps.Succeeded:
		if began, ok := w.open[e.Host]; ok {
			w.closed = append(w.closed, [2]time.Time{began, e.Time})
			delete(w.open, e.Host)
		}
	}
}

// masters are the windows in which a master was being upgraded (one
// still open ends now).
func (w *upgradeWindows) masters() [][2]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := slices.Clone(w.closed)
	for _, began := range w.open {
		out = append(out, [2]time.Time{began, time.Now()})
	}
	return out
}

// apiProbe asks the API's /livez through the load balancer every second.
type apiProbe struct {
	mu       sync.Mutex
	probes   int
	failures []time.Time
	cancel   context.CancelFunc
	done     chan struct{}
}

func probeEverySecond(t *testing.T, cfg *rest.Config) *apiProbe {
	t.Helper()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &apiProbe{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			askCtx, stop := context.WithTimeout(ctx, 2*time.Second)
			asked := time.Now()
			_, err := client.Discovery().RESTClient().Get().AbsPath("/livez").DoRaw(askCtx)
			stop()
			if ctx.Err() != nil {
				return
			}
			p.mu.Lock()
			p.probes++
			if err != nil {
				p.failures = append(p.failures, asked)
			}
			p.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-p.done })
	return p
}

// stop ends the probe and says how many failed of how many, and when
// those outside every window failed.
func (p *apiProbe) stop(windows [][2]time.Time) (failures, probes int, outside []string) {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.failures {
		in := slices.ContainsFunc(windows, func(w [2]time.Time) bool { return !f.Before(w[0]) && !f.After(w[1]) })
		if !in {
			outside = append(outside, f.Format("15:04:05.000"))
		}
	}
	return len(p.failures), p.probes, outside
}

// guarded is a Deployment under a PodDisruptionBudget, its pods made
// Ready by the test as a kubelet would once their containers ran (the
// emulated runtime runs no images), and the fewest Ready pods seen.
type guarded struct {
	cancel context.CancelFunc
	done   chan struct{}
	least  atomic.Int64
}

func guardedWorkload(t *testing.T, api kubernetes.Interface, replicas, minAvailable int32) *guarded {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}, Spec: appsv1.DeploymentSpec{
		Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "web", Image: "registry.k8s.io/e2e-test-images/agnhost:2.53"}}}}}}
	if _, err := api.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	min := intstr.FromInt32(minAvailable)
	pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "default"}, Spec: policyv1.PodDisruptionBudgetSpec{
		MinAvailable: &min, Selector: &metav1.LabelSelector{MatchLabels: labels}}}
	if _, err := api.PolicyV1().PodDisruptionBudgets("default").Create(ctx, pdb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	g := &guarded{cancel: cancel, done: make(chan struct{})}
	g.least.Store(int64(replicas))
	ready := func() int {
		pods, err := api.CoreV1().Pods("default").List(runCtx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return -1
		}
		n := 0
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.DeletionTimestamp != nil {
				continue
			}
			if podReady(p) {
				n++
			} else if p.Spec.NodeName != "" {
				setReady(runCtx, api, p) // the next round counts it
			}
		}
		return n
	}
	// Every pod Ready before the upgrade starts.
	deadline := time.Now().Add(time.Minute)
	for ready() != int(replicas) {
		if time.Now().After(deadline) {
			t.Fatalf("the Deployment's %d pods are not all Ready after a minute", replicas)
		}
		time.Sleep(200 * time.Millisecond)
	}
	go func() {
		defer close(g.done)
		for runCtx.Err() == nil {
			if n := ready(); n >= 0 && int64(n) < g.least.Load() {
				g.least.Store(int64(n))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { cancel(); <-g.done })
	return g
}

// stop ends the watch and says the fewest Ready pods it saw.
func (g *guarded) stop() int {
	g.cancel()
	<-g.done
	return int(g.least.Load())
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
