package playbooks

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/fleetops/fleet/internal/kubeadm"
	"github.com/fleetops/fleet/internal/nodemeta"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// nodeOf is the host as kubeadm init or join registers it: with the
// labels its kubelet may set itself, and with the inventory's taints (on
// a master, after kubeadm's control-plane taint, which a node's own taints
// would otherwise replace).
func nodeOf(inv *inventory.Inventory, host string) kubeadm.Node {
	h := inv.Host(host)
	n := kubeadm.Node{Name: h.Name, AdvertiseAddress: h.Address, Labels: nodemeta.KubeletLabels(h.Labels)}
	taints := wantOf(inv, h).Taints
	if len(taints) > 0 && h.Role == inventory.RoleMaster {
		taints = append([]corev1.Taint{{Key: controlPlaneLabel, Effect: corev1.TaintEffectNoSchedule}}, taints...)
	}
	n.Taints = taints
	return n
}

// wantOf is what the inventory gives a host's Node: its labels (on a
// worker, the BGP node selector's too), and its taints.
func wantOf(inv *inventory.Inventory, h *inventory.Host) nodemeta.Want {
	w := nodemeta.Want{Labels: h.Labels}
	if n := inv.Cluster.Network; h.Role == inventory.RoleWorker && n != nil && n.Cilium != nil && n.Cilium.BGP != nil {
		w.Labels = maps.Clone(h.Labels)
		if w.Labels == nil {
			w.Labels = map[string]string{}
		}
		for k, v := range n.Cilium.BGP.NodeSelector {
			if _, set := w.Labels[k]; !set {
				w.Labels[k] = v
			}
		}
	}
	for _, t := range h.Taints {
		w.Taints = append(w.Taints, corev1.Taint{Key: t.Key, Value: t.Value, Effect: corev1.TaintEffect(t.Effect)})
	}
	return w
}

// nodeMetaPhase puts the inventory's labels and taints on each node's
// Node through the API, and takes off those fleet set that the inventory
// no longer has; labels and taints anyone else set stay.
type nodeMetaPhase struct {
	inv    *inventory.Inventory
	access *steps.Output[*clusterAccess]

	// Every node's check reads the Nodes of one list, made by the first:
	// a Get per node is a request per node on every apply.
	listOnce sync.Once
	listed   map[string]*corev1.Node
	listErr  error
}

// node is host's Node from the run's one list, else (registered since,
// or not at all) read alone; nil when it is not registered.
func (p *nodeMetaPhase) node(ctx context.Context, access *clusterAccess, host string) (*corev1.Node, error) {
	p.listOnce.Do(func() {
		var list *corev1.NodeList
		if list, p.listErr = access.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); p.listErr == nil {
			p.listed = map[string]*corev1.Node{}
			for i := range list.Items {
				p.listed[list.Items[i].Name] = &list.Items[i]
			}
		}
	})
	if p.listErr != nil {
		return nil, fmt.Errorf("list Nodes: %w", p.listErr)
	}
	if n, ok := p.listed[host]; ok {
		return n, nil
	}
	node, err := access.client.CoreV1().Nodes().Get(ctx, host, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return node, err
}

// nodeRegistration bounds the wait for a just-joined kubelet's Node.
const nodeRegistration = 2 * time.Minute

func (p *nodeMetaPhase) check(ctx context.Context, _ probe, host string) (bool, string, error) {
	access, err := p.access.Get(ctx)
	if err != nil {
		return false, "", err
	}
	node, err := p.node(ctx, access, host)
	if err != nil {
		return false, "", fmt.Errorf("read Node %s: %w", host, err)
	}
	if node == nil {
		return false, "the Node is not registered yet", nil
	}
	if _, change := nodemeta.Reconcile(node, wantOf(p.inv, p.inv.Host(host))); !change.Empty() {
		return false, change.String(), nil
	}
	return true, "labels and taints as the inventory says", nil
}

func (p *nodeMetaPhase) run(ctx context.Context, r remote, host string) error {
	access, err := p.access.Get(ctx)
	if err != nil {
		return err
	}
	nodes := access.client.CoreV1().Nodes()
	want := wantOf(p.inv, p.inv.Host(host))
	var change nodemeta.Change
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var node *corev1.Node
		err := pollUntil(ctx, time.Second, nodeRegistration, func(ctx context.Context) (bool, error) {
			var err error
			node, err = nodes.Get(ctx, host, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return err == nil, err
		})
		if err != nil {
			return fmt.Errorf("wait for Node %s: %w", host, err)
		}
		var updated *corev1.Node
		if updated, change = nodemeta.Reconcile(node, want); change.Empty() {
			return nil
		}
		_, err = nodes.Update(ctx, updated, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("labels and taints of Node %s: %w", host, err)
	}
	if !change.Empty() {
		r.note("node-meta", host, change.String())
	}
	return nil
}
