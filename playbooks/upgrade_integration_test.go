package playbooks_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/reliability"
	"github.com/fleetops/fleet/testing/sim"
)

// TestUpgrade: a cluster of two masters and two workers built at
// sim.KubernetesVersion from the binaries folder is moved one minor up
// with the real kubeadm of both versions. apply at the new version is
// refused and plan shows the upgrade; a skipped minor is refused; an
// upgrade cut after its first master is finished by the next, which skips
// that master; then every kubelet reports the new version, every API
// server answers as it, no node stays cordoned, and a third run changes
// nothing.
func TestUpgrade(t *testing.T) {
	sim.Need(t, cluster)
	c := upWithNodeBinaries(t, sim.Sized("ug", 53, 5, 2)) // lb, master0-1, worker0-1
	opts := playbooks.DefaultApplyOptions()
	opts.Kubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	from, to := sim.KubernetesVersion, sim.NextVersion
	inv := editInventory(t, c.Inventory, nil, [2]string{"  kubernetesVersion: " + from + "\n",
		"  kubernetesVersion: " + from + "\n  install: binaries\n  binaries: " + sim.AirgapFolderOf(c.Tools, from) + "\n"})
	if _, _, shown, err := runApply(t, inv, opts, nil); err != nil {
		t.Fatalf("apply at %s: %v\n%s", from, err, shown)
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
		if v := kubeletVersions(t, clientFor(t, opts.Kubeconfig)); v["master0"] != from {
			t.Fatalf("the refused upgrade changed master0: %v", v)
		}
		// The cluster was made without it: the upgrade puts it into
		// the cluster's kubelet-config.
		inv = editInventory(t, c.Inventory, nil, [2]string{"  kubernetesVersion: " + to + "\n", "  kubernetesVersion: " + to + "\n  allowCgroupV1: true\n"})
	}

	// Two minors up: refused before anything changes.
	skipped := editInventory(t, c.Inventory, nil, [2]string{"  kubernetesVersion: " + to + "\n", "  kubernetesVersion: v1.36.1\n"})
	if _, shown, err := runUpgrade(t, skipped, nil); !isRefused(err) || !strings.Contains(err.Error(), "one minor at a time") {
		t.Fatalf("upgrade two minors up: %v, want refused one minor at a time\n%s", err, shown)
	}
	inv = editInventory(t, c.Inventory, nil, [2]string{"  kubernetesVersion: v1.36.1\n", "  kubernetesVersion: " + to + "\n"})
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
	for _, host := range []string{"master0", "master1"} {
		if r := reasonOf(plan, "upgrade-masters", host); !strings.Contains(r, "control plane "+from+" → "+to) || !strings.Contains(r, "kubelet "+from+" → "+to) {
			t.Errorf("plan: upgrade-masters on %s says %q", host, r)
		}
	}
	if r := reasonOf(plan, "upgrade-workers", "worker1"); !strings.Contains(r, "kubelet "+from+" → "+to) {
		t.Errorf("plan: upgrade-workers on worker1 says %q", r)
	}
	api := clientFor(t, opts.Kubeconfig)
	if v := kubeletVersions(t, api); v["master0"] != from || v["worker1"] != from {
		t.Fatalf("plan changed a kubelet: %v", v)
	}

	// Cut short once master0 is done: the next run skips it.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, shown, err := runUpgradeCtx(t, ctx, inv, func(e steps.Event) {
		if e.Step == "upgrade-masters" && e.Host == "master0" && e.Kind == steps.Succeeded {
			cancel()
		}
	})
	if err == nil {
		t.Fatalf("the upgrade cut after master0 succeeded:\n%s", shown)
	}
	if v := kubeletVersions(t, api); v["master0"] != to || v["worker0"] != from {
		t.Fatalf("after the cut: kubelets %v, want master0 at %s and worker0 at %s\n%s", v, to, from, shown)
	}
	began := time.Now()
	report, shown, err := runUpgrade(t, inv, nil)
	if err != nil {
		t.Fatalf("upgrade after the cut: %v\n%s", err, shown)
	}
	t.Logf("the resumed upgrade took %s (master1, worker0, worker1)", time.Since(began).Round(time.Second))
	reliability.Record(t, reliability.Row{N: 23, Did: "the run stopped at the cancellation with master0 upgraded to " + to + " (control plane and kubelet) and uncordoned, the other nodes untouched at " + from,
		Rerun: "the next fleet upgrade found master0 at " + to + " and skipped it, upgraded master1 with kubeadm upgrade node, then the workers; every kubelet and API server at " + to + ", no node cordoned, a third run changed nothing"})
	if r := reasonOf(report, "upgrade-masters", "master0"); r != "at "+to {
		t.Errorf("the resumed upgrade did master0 again: %q\n%s", r, shown)
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
	for _, m := range []string{"master0", "master1"} {
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
	var out output
	s, err := playbooks.NewSession(inv, playbooks.Options{OnEvent: func(e steps.Event) {
		out.event(e)
		if inject != nil {
			inject(e)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	report, err := playbooks.Upgrade(ctx, s, playbooks.DefaultUpgradeOptions())
	return report, out.buf.String(), err
}

func isRefused(err error) bool {
	var r *playbooks.RefusedError
	return errors.As(err, &r)
}

// kubeletVersions is each Node's kubelet version.
func kubeletVersions(t *testing.T, api kubernetes.Interface) map[string]string {
	t.Helper()
	nodes, err := api.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, n := range nodes.Items {
		out[n.Name] = n.Status.NodeInfo.KubeletVersion
	}
	return out
}
