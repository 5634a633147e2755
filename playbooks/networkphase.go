package playbooks

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// rendered renders the network and the addons once per run (a chart
// takes a moment): the state checks, the applies and the kube-proxy step
// share one render.
type rendered struct {
	src     sources
	timeout time.Duration // for rollouts and CRDs others create

	once    sync.Once
	network *release
	notes   []string
	addons  []*release
	err     error
}

func (r *rendered) get(ctx context.Context) error {
	r.once.Do(func() {
		r.network, r.notes, r.err = r.src.network(ctx)
		if r.err != nil {
			r.err = fmt.Errorf("network: %w", r.err)
			return
		}
		for _, a := range r.src.inv.Cluster.Addons {
			rel, err := r.src.addon(ctx, a)
			if err != nil {
				r.err = err
				return
			}
			r.addons = append(r.addons, rel)
		}
	})
	return r.err
}

// networkPhase applies cluster.network on the first master.
type networkPhase struct{ r *rendered }

func (p *networkPhase) check(ctx context.Context, pr probe, master string) (bool, string, error) {
	if err := p.r.get(ctx); err != nil {
		return false, "", err
	}
	if p.r.network == nil {
		return true, "no network in the inventory", nil
	}
	return releaseCheck(ctx, pr, master, p.r.network)
}

func (p *networkPhase) run(ctx context.Context, rm remote, master string) error {
	if err := p.r.get(ctx); err != nil {
		return err
	}
	for _, n := range p.r.notes {
		rm.note("network", master, n)
	}
	return p.r.network.apply(ctx, rm, master, p.r.timeout)
}

// addonsPhase applies cluster.addons in order, after the network, and
// removes the addons the inventory no longer names (their objects, then
// their record).
type addonsPhase struct {
	r      *rendered
	access *steps.Output[*clusterAccess]
	// pending are the addons the check found not as rendered: run applies
	// those, without diffing every addon again.
	pending []*release
}

// addonRecordPrefix names the records of addons.
const addonRecordPrefix = "fleet-release-addon-"

func (p *addonsPhase) check(ctx context.Context, pr probe, master string) (bool, string, error) {
	if err := p.r.get(ctx); err != nil {
		return false, "", err
	}
	var left []string
	p.pending = nil
	for _, a := range p.r.addons {
		done, why, err := releaseCheck(ctx, pr, master, a)
		if err != nil {
			return false, "", err
		}
		if !done {
			p.pending = append(p.pending, a)
			left = append(left, strings.TrimPrefix(a.name, "addon-")+": "+why)
		}
	}
	dropped, err := p.dropped(ctx)
	if err != nil {
		return false, "", err
	}
	for _, name := range dropped {
		left = append(left, name+": to remove (no longer in the inventory)")
	}
	if len(left) > 0 {
		return false, strings.Join(left, "; "), nil
	}
	return true, fmt.Sprintf("%s applied as rendered", plural(len(p.r.addons), "addon")), nil
}

// dropped lists the addons the cluster has records of and the inventory
// no longer names: one API list (no kubectl started on a host), since
// every apply asks, addons or not.
func (p *addonsPhase) dropped(ctx context.Context) ([]string, error) {
	access, err := p.access.Get(ctx)
	if err != nil {
		return nil, err
	}
	var list *corev1.ConfigMapList
	err = apiRetry(ctx, func(ctx context.Context) error {
		var err error
		list, err = access.client.CoreV1().ConfigMaps("kube-system").List(ctx, metav1.ListOptions{LabelSelector: releaseLabel + "=fleet"})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list fleet's release records: %w", err)
	}
	var out []string
	for _, cm := range list.Items {
		name, ok := strings.CutPrefix(cm.Name, addonRecordPrefix)
		if ok && !slices.ContainsFunc(p.r.src.inv.Cluster.Addons, func(a inventory.Addon) bool { return a.Name == name }) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (p *addonsPhase) run(ctx context.Context, rm remote, master string) error {
	if err := p.r.get(ctx); err != nil {
		return err
	}
	for _, a := range p.pending {
		if err := a.apply(ctx, rm, master, p.r.timeout); err != nil {
			return err
		}
	}
	dropped, err := p.dropped(ctx)
	if err != nil {
		return err
	}
	for _, name := range dropped {
		// An empty render: apply deletes everything the record lists.
		gone := &release{name: "addon-" + name, namespace: "kube-system", source: "nothing (addon " + name + " left the inventory)"}
		if err := gone.apply(ctx, rm, master, p.r.timeout); err != nil {
			return err
		}
		if _, err := rm.run(ctx, master, kubectl("delete", "configmap", "-n", "kube-system", gone.recordName(), "--ignore-not-found")); err != nil {
			return fmt.Errorf("addon %s: delete its record: %w", name, err)
		}
		rm.note("addons", master, "removed addon "+name+": no longer in the inventory")
	}
	return nil
}

func releaseCheck(ctx context.Context, pr probe, master string, rel *release) (bool, string, error) {
	st, err := rel.state(ctx, pr, master)
	if err != nil {
		return false, "", err
	}
	if st.done() {
		return true, rel.source + " applied as rendered", nil
	}
	return false, rel.source + ": " + st.summary(), nil
}

// kubeProxyPhase removes kubeadm's kube-proxy (DaemonSet and ConfigMap)
// from a cluster whose inventory says kubeProxy: false, but only once the
// network that replaces it has rolled out: a cluster is never left with
// neither.
type kubeProxyPhase struct {
	inv *inventory.Inventory
	r   *rendered
}

func (p *kubeProxyPhase) check(ctx context.Context, pr probe, master string) (bool, string, error) {
	res, err := pr.query(ctx, master, kubectl("get", "daemonset,configmap", "-n", "kube-system", "--field-selector=metadata.name=kube-proxy", "-o", "name"))
	if err != nil {
		return false, "", err
	}
	if strings.TrimSpace(res.Stdout) == "" {
		return true, "no kube-proxy (cluster.kubeProxy is false)", nil
	}
	return false, "kube-proxy to remove once the network has rolled out", nil
}

func (p *kubeProxyPhase) run(ctx context.Context, rm remote, master string) error {
	if err := p.r.get(ctx); err != nil {
		return err
	}
	if p.r.network == nil {
		return fmt.Errorf("kubeProxy: false, but the inventory names no network to replace kube-proxy: kube-proxy kept")
	}
	if len(p.r.network.daemonSets()) == 0 {
		return fmt.Errorf("kubeProxy: false, but the network (%s) has no DaemonSet to wait for: kube-proxy kept", p.r.network.source)
	}
	if err := p.r.network.rolledOut(ctx, rm, master, p.r.timeout); err != nil {
		return fmt.Errorf("kube-proxy kept: %w", err)
	}
	if _, err := rm.run(ctx, master, kubectl("delete", "-n", "kube-system", "daemonset/kube-proxy", "configmap/kube-proxy", "--ignore-not-found")); err != nil {
		return fmt.Errorf("remove kube-proxy: %w", err)
	}
	rm.note("kube-proxy", master, "removed kube-proxy (DaemonSet and ConfigMap): "+p.r.network.source+" has rolled out; its iptables rules stay on the nodes until they reboot")
	return nil
}
