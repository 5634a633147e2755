package playbooks

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetops/fleet/internal/etcd"
	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// RemoveOptions tune `fleet remove`.
type RemoveOptions struct {
	// Force removes the last master, or masters past etcd's quorum.
	Force bool
	// DrainTimeout bounds the evictions (PodDisruptionBudgets may hold them).
	DrainTimeout time.Duration
	// ForceDrain deletes pods no controller manages (kubectl drain --force).
	ForceDrain bool
	// DeleteEmptyDirData evicts pods with emptyDir data, which is lost.
	DeleteEmptyDirData bool
	// Gone: the nodes are dead for good. Nothing runs on them (no drain,
	// no reset); they only leave the cluster: the load balancer's upstream,
	// etcd, their Node (its pods are collected with it). Refused for a node
	// that answers: its kubelet would carry on.
	Gone bool
}

// DefaultRemoveOptions gives evictions two minutes.
func DefaultRemoveOptions() RemoveOptions { return RemoveOptions{DrainTimeout: 2 * time.Minute} }

// Remove takes nodes out of the cluster: a master first leaves the load
// balancer's upstream; then each node is drained, reset with kubeadm
// (masters one at a time, each leaving etcd), and its Node deleted. With
// opts.Gone, nodes that are dead for good only leave the upstream, etcd
// and the API.
func Remove(ctx context.Context, s *Session, nodes []string, opts RemoveOptions) (*Report, error) {
	masters, _, err := splitNodes(s.Inv, "remove", nodes)
	if err != nil {
		return nil, err
	}
	if opts.Gone {
		if err := checkGone(ctx, s, nodes); err != nil {
			return nil, err
		}
	}
	return locked(ctx, s, "remove", func() (*Report, error) { return remove(ctx, s, nodes, masters, opts) })
}

// remove is Remove under the cluster lock.
func remove(ctx context.Context, s *Session, nodes, masters []string, opts RemoveOptions) (*Report, error) {
	access, err := connectCluster(ctx, s, masters...)
	if err != nil {
		if len(masters) > 0 {
			return nil, refused("refusing to remove %v: no other initialised master would be left (fleet reset tears a whole cluster down): %v", masters, err)
		}
		return nil, err
	}
	if len(masters) > 0 {
		if err := checkQuorum(ctx, s, access, masters, opts.Force); err != nil {
			return nil, err
		}
	}
	return s.Run(ctx, removeGraph(s, access, nodes, masters, opts))
}

// checkGone refuses --gone for the lock's master (the run could not take
// the lock) and for any node that answers over SSH, in parallel: one
// connect timeout, however many nodes.
func checkGone(ctx context.Context, s *Session, nodes []string) error {
	if slices.Contains(nodes, s.lockHost()) {
		return refused("remove %s --gone: %s is the inventory's first master, which holds the cluster lock; list another master first in %s, then remove it", s.lockHost(), s.lockHost(), s.Inv.Path)
	}
	_, answers := onEach(nodes, 0, func(n string) (exec.Result, error) { return s.run(ctx, n, "true") })
	if err := ctx.Err(); err != nil {
		return err
	}
	var alive []string
	for i, err := range answers {
		if err == nil {
			alive = append(alive, nodes[i])
		}
	}
	if len(alive) > 0 {
		return refused("remove --gone: %s answer(s) over SSH: remove without --gone (drain and reset them), or stop them first; a live kubelet would register its Node again", strings.Join(alive, ", "))
	}
	return nil
}

// checkQuorum refuses to leave etcd with fewer members than the quorum of
// its current size: the members that stay must still agree on their own.
func checkQuorum(ctx context.Context, s *Session, access *clusterAccess, masters []string, force bool) error {
	members, err := etcdMembers(ctx, s.probe(), access.master)
	if err != nil {
		return err
	}
	leaving := 0
	for _, m := range members {
		if slices.Contains(masters, m.Name) {
			leaving++
		}
	}
	n := len(members)
	if left := n - leaving; left < etcd.Quorum(n) && !force {
		return refused("refusing to remove %v: etcd would keep %d of its %d members, below the quorum of %d (remove masters one at a time, or --force)",
			masters, left, n, etcd.Quorum(n))
	}
	return nil
}

// etcdMembers lists etcd's members through the etcd on master.
func etcdMembers(ctx context.Context, p probe, master string) ([]etcd.Member, error) {
	c, err := etcdOn(ctx, p, master)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Members(ctx)
}

// removeGraph: a master first leaves the load balancer's upstream; each
// node is drained and reset (one at a time), a master's etcd member goes,
// then its Node. With --gone, only the upstream, etcd and the Node.
func removeGraph(s *Session, access *clusterAccess, nodes, masters []string, opts RemoveOptions) *steps.Graph {
	g := steps.New()
	drainAfter := []string(nil)
	if len(masters) > 0 {
		staying := *s.Inv
		staying.Masters = slices.DeleteFunc(slices.Clone(s.Inv.Masters), func(m inventory.Host) bool { return slices.Contains(masters, m.Name) })
		drainAfter = addLoadBalancers(s, g, &staying, "take the masters out of the NGINX upstream first; nginx -t, reload", nil)
		// And out of every staying node's local proxy.
		staysNode := without(append(namesWithRole(&staying, inventory.RoleMaster), namesWithRole(&staying, inventory.RoleWorker)...), nodes)
		drainAfter = append(drainAfter, addNodeLocal(s, g, &staying, staysNode, nil, nil, nil)...)
	}
	forgetAfter := drainAfter
	if !opts.Gone {
		g.MustAdd(s.step(steps.Step{Name: "drain", Description: "cordon, evict the pods as kubectl drain --ignore-daemonsets does (PodDisruptionBudgets honoured)",
			Hosts: nodes, After: drainAfter}, &drainPhase{client: access.client,
			opts: drainOptions{timeout: opts.DrainTimeout, force: opts.ForceDrain, deleteEmptyDirData: opts.DeleteEmptyDirData}}))
		g.MustAdd(s.step(steps.Step{Name: "reset", Description: "kubeadm reset -f (a master leaves etcd), one node at a time",
			Hosts: nodes, Serial: true, After: []string{"drain"}}, &resetPhase{inv: s.Inv}))
		forgetAfter = []string{"reset"}
	}
	if len(masters) > 0 {
		g.MustAdd(s.step(steps.Step{Name: "etcd-member", Description: "remove the master's etcd member if kubeadm reset could not (--gone: always)",
			Hosts: masters, After: forgetAfter}, &etcdMemberPhase{inv: s.Inv, via: access.master}))
		forgetAfter = append(forgetAfter, "etcd-member")
	}
	g.MustAdd(s.step(steps.Step{Name: "delete-node", Description: "delete the Node object",
		Hosts: nodes, After: forgetAfter}, &deleteNodePhase{client: access.client}))
	return g
}

// drainPhase cordons a node and evicts its pods.
type drainPhase struct {
	client kubernetes.Interface
	opts   drainOptions
}

// check: the Node is gone, or cordoned with nothing left to evict.
func (p *drainPhase) check(ctx context.Context, _ probe, node string) (bool, string, error) {
	n, err := p.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, "not in the cluster", nil
	}
	if err != nil {
		return false, "", err
	}
	if !n.Spec.Unschedulable {
		return false, "", nil
	}
	if pods, err := podsToMove(drainer(ctx, p.client, p.opts), node); err != nil || pods > 0 {
		return false, "", nil // run says what stops the drain
	}
	return true, "cordoned and empty", nil
}

func (p *drainPhase) run(ctx context.Context, _ remote, node string) error {
	return drainNode(ctx, p.client, node, p.opts)
}

// etcdMemberPhase removes a master's etcd member through the etcd on via.
type etcdMemberPhase struct {
	inv *inventory.Inventory
	via string
}

// check: etcd has no member of this node.
func (p *etcdMemberPhase) check(ctx context.Context, pr probe, node string) (bool, string, error) {
	members, err := etcdMembers(ctx, pr, p.via)
	if err != nil {
		return false, "", err
	}
	if _, found := memberOf(p.inv, members, node); found {
		return false, "", nil
	}
	return true, "not an etcd member (kubeadm reset removed it)", nil
}

func (p *etcdMemberPhase) run(ctx context.Context, r remote, node string) error {
	_, err := removeEtcdMember(ctx, r, p.inv, p.via, node)
	return err
}

// deleteNodePhase deletes a Node object.
type deleteNodePhase struct{ client kubernetes.Interface }

func (p *deleteNodePhase) check(ctx context.Context, _ probe, node string) (bool, string, error) {
	_, err := p.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, "no Node object", nil
	}
	return false, "", err
}

func (p *deleteNodePhase) run(ctx context.Context, _ remote, node string) error {
	err := p.client.CoreV1().Nodes().Delete(ctx, node, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Node: %w", err)
	}
	return nil
}
