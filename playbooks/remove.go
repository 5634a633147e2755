package playbooks

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fleetops/fleet/internal/etcd"
	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/steps"
)

// RemoveOptions tune `fleet remove`.
type RemoveOptions struct {
	// Force removes the last master, or masters past etcd's quorum.
	Force bool
	// DrainTimeout bounds the evictions (PodDisruptionBudgets may hold them).
	DrainTimeout time.Duration
	// Gone: the nodes are dead for good. Nothing runs on them (no drain,
	// no reset); they only leave the cluster: the load balancer's upstream,
	// etcd, their Node (its pods are collected with it). Refused for a node
	// that answers: its kubelet would carry on.
	Gone bool
}

// DefaultRemoveOptions gives evictions two minutes.
func DefaultRemoveOptions() RemoveOptions { return RemoveOptions{DrainTimeout: 2 * time.Minute} }

// removeRun is one `fleet remove`.
type removeRun struct {
	s       *Session
	access  *clusterAccess
	opts    RemoveOptions
	masters []string // being removed
}

// Remove takes nodes out of the cluster: a master first leaves the load
// balancer's upstream; then each node is drained, reset with kubeadm
// (masters one at a time, each leaving etcd), and its Node deleted. With
// opts.Gone, nodes that are dead for good only leave the upstream, etcd
// and the API.
func Remove(ctx context.Context, s *Session, nodes []string, opts RemoveOptions) (*steps.Report, error) {
	masters, _, err := splitNodes(s.Inv, "remove", nodes)
	if err != nil {
		return nil, err
	}
	if opts.Gone {
		if err := checkGone(ctx, s, nodes); err != nil {
			return nil, err
		}
	}
	return locked(ctx, s, "remove", func() (*steps.Report, error) { return remove(ctx, s, nodes, masters, opts) })
}

// remove is Remove under the cluster lock.
func remove(ctx context.Context, s *Session, nodes, masters []string, opts RemoveOptions) (*steps.Report, error) {
	access, err := connectCluster(ctx, s, masters...)
	if err != nil {
		if len(masters) > 0 {
			return nil, fmt.Errorf("refusing to remove %v: no other initialised master would be left (fleet reset tears a whole cluster down): %w", masters, err)
		}
		return nil, err
	}
	r := &removeRun{s: s, access: access, opts: opts, masters: masters}
	if len(masters) > 0 {
		if err := r.checkQuorum(ctx); err != nil {
			return nil, err
		}
	}
	return s.Run(ctx, r.graph(nodes))
}

// checkGone refuses --gone for the lock's master (the run could not take
// the lock) and for any node that answers over SSH, in parallel: one
// connect timeout, however many nodes.
func checkGone(ctx context.Context, s *Session, nodes []string) error {
	if slices.Contains(nodes, s.lockHost()) {
		return fmt.Errorf("remove %s --gone: %s is the inventory's first master, which holds the cluster lock; list another master first in %s, then remove it", s.lockHost(), s.lockHost(), s.Inv.Path)
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
		return fmt.Errorf("remove --gone: %s answer(s) over SSH: remove without --gone (drain and reset them), or stop them first; a live kubelet would register its Node again", strings.Join(alive, ", "))
	}
	return nil
}

// checkQuorum refuses to leave etcd with fewer members than the quorum of
// its current size: the members that stay must still agree on their own.
func (r *removeRun) checkQuorum(ctx context.Context) error {
	members, err := r.members(ctx)
	if err != nil {
		return err
	}
	leaving := 0
	for _, m := range members {
		if slices.Contains(r.masters, m.Name) {
			leaving++
		}
	}
	n := len(members)
	if left := n - leaving; left < etcd.Quorum(n) && !r.opts.Force {
		return fmt.Errorf("refusing to remove %v: etcd would keep %d of its %d members, below the quorum of %d (remove masters one at a time, or --force)",
			r.masters, left, n, etcd.Quorum(n))
	}
	return nil
}

func (r *removeRun) members(ctx context.Context) ([]etcd.Member, error) {
	c, err := etcdOn(ctx, r.s, r.access.master)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.Members(ctx)
}

func (r *removeRun) graph(nodes []string) *steps.Graph {
	s := r.s
	g := steps.New()
	drainAfter := []string(nil)
	if len(r.masters) > 0 {
		g.MustAdd(steps.Step{Name: "loadbalancer", Description: "take the masters out of the NGINX upstream first; nginx -t, reload",
			Hosts: []string{s.Inv.LoadBalancer.Name}, Check: r.lbCheck, Run: r.lbApply})
		drainAfter = []string{"loadbalancer"}
	}
	forgetAfter := drainAfter
	if !r.opts.Gone {
		g.MustAdd(steps.Step{Name: "drain", Description: "cordon, evict the pods (PodDisruptionBudgets honoured)",
			Hosts: nodes, After: drainAfter, Check: r.drained, Run: r.drain})
		g.MustAdd(steps.Step{Name: "reset", Description: "kubeadm reset -f (a master leaves etcd), one node at a time",
			Hosts: nodes, Serial: true, After: []string{"drain"}, Check: r.resetDone, Run: r.reset})
		forgetAfter = []string{"reset"}
	}
	if len(r.masters) > 0 {
		g.MustAdd(steps.Step{Name: "etcd-member", Description: "remove the master's etcd member if kubeadm reset could not (--gone: always)",
			Hosts: r.masters, After: forgetAfter, Check: r.notMember, Run: r.removeMember})
		forgetAfter = append(forgetAfter, "etcd-member")
	}
	g.MustAdd(steps.Step{Name: "delete-node", Description: "delete the Node object",
		Hosts: nodes, After: forgetAfter, Check: r.nodeGone, Run: r.deleteNode})
	return g
}

// upstreamConfig renders the load balancer without the removed masters.
func (r *removeRun) upstreamConfig() ([]byte, error) {
	inv := *r.s.Inv
	inv.Masters = nil
	for _, m := range r.s.Inv.Masters {
		if !slices.Contains(r.masters, m.Name) {
			inv.Masters = append(inv.Masters, m)
		}
	}
	return lbConfig(&inv)
}

func (r *removeRun) lbCheck(ctx context.Context, host string) (bool, string, error) {
	cfg, err := r.upstreamConfig()
	if err != nil {
		return false, "", err
	}
	return lbUpToDate(ctx, r.s, host, cfg)
}

func (r *removeRun) lbApply(ctx context.Context, host string) error {
	cfg, err := r.upstreamConfig()
	if err != nil {
		return err
	}
	return applyLB(ctx, r.s, host, cfg, r.s.Inv.Cluster.ControlPlaneEndpoint)
}

// drained: the Node is gone, or cordoned with nothing left to evict.
func (r *removeRun) drained(ctx context.Context, node string) (bool, string, error) {
	n, err := r.access.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, "not in the cluster", nil
	}
	if err != nil {
		return false, "", err
	}
	if !n.Spec.Unschedulable {
		return false, "", nil
	}
	pods, err := evictablePods(ctx, r.access.client, node)
	if err != nil || len(pods) > 0 {
		return false, "", err
	}
	return true, "cordoned and empty", nil
}

func (r *removeRun) drain(ctx context.Context, node string) error {
	return drainNode(ctx, r.access.client, node, r.opts.DrainTimeout)
}

func (r *removeRun) resetDone(ctx context.Context, node string) (bool, string, error) {
	return nodeStateGone(ctx, r.s, node)
}

func (r *removeRun) reset(ctx context.Context, node string) error {
	return resetNode(ctx, r.s, node)
}

// notMember: etcd has no member of this node.
func (r *removeRun) notMember(ctx context.Context, node string) (bool, string, error) {
	members, err := r.members(ctx)
	if err != nil {
		return false, "", err
	}
	if _, found := memberOf(r.s, members, node); found {
		return false, "", nil
	}
	return true, "not an etcd member (kubeadm reset removed it)", nil
}

func (r *removeRun) removeMember(ctx context.Context, node string) error {
	_, err := removeEtcdMember(ctx, r.s, r.access.master, node)
	return err
}

func (r *removeRun) nodeGone(ctx context.Context, node string) (bool, string, error) {
	_, err := r.access.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return true, "no Node object", nil
	}
	return false, "", err
}

func (r *removeRun) deleteNode(ctx context.Context, node string) error {
	err := r.access.client.CoreV1().Nodes().Delete(ctx, node, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete Node: %w", err)
	}
	return nil
}
