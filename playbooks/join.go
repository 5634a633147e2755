package playbooks

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// JoinOptions tune `fleet join`.
type JoinOptions struct {
	TokenTTL       time.Duration // lifetime of the join's bootstrap token
	ReadyTimeout   time.Duration // how long to wait for the joined nodes Ready
	KubeadmTimeout time.Duration // bounds each kubeadm join
}

// DefaultJoinOptions match apply's.
func DefaultJoinOptions() JoinOptions {
	d := DefaultApplyOptions()
	return JoinOptions{TokenTTL: d.TokenTTL, ReadyTimeout: d.ReadyTimeout, KubeadmTimeout: d.KubeadmTimeout}
}

// Join adds the named inventory nodes to the running cluster with fresh
// credentials: a new short-lived token, and for masters certificates
// uploaded under a new key. Masters join one at a time and enter the load
// balancer's upstream once they serve; workers join in parallel. Nodes that
// have joined already are reported and skipped.
func Join(ctx context.Context, s *Session, nodes []string, opts JoinOptions) (*steps.Report, error) {
	masters, workers, err := splitNodes(s.Inv, "join", nodes)
	if err != nil {
		return nil, err
	}
	s.Connect(ctx, append([]string{s.Inv.LoadBalancer.Name}, append(mastersOf(s.Inv), nodes...)...))
	return locked(ctx, s, "join", func() (*steps.Report, error) {
		access, err := connectCluster(ctx, s)
		if err != nil {
			return nil, err
		}
		a := &applyRun{s: s, first: access.master, only: nodes, kubeconfig: access.kubeconfig,
			opts: ApplyOptions{TokenTTL: opts.TokenTTL, ReadyTimeout: opts.ReadyTimeout, KubeadmTimeout: opts.KubeadmTimeout,
				MaxClockSkew: DefaultApplyOptions().MaxClockSkew}}
		return s.Run(ctx, joinGraph(a, masters, workers))
	})
}

// splitNodes checks that every name is a master or worker of the inventory
// and sorts them by role, in the order given.
func splitNodes(inv *inventory.Inventory, verb string, nodes []string) (masters, workers []string, err error) {
	if len(nodes) == 0 {
		return nil, nil, fmt.Errorf("%s: name at least one node of %s", verb, inv.Path)
	}
	seen := map[string]bool{}
	for _, n := range nodes {
		h := inv.Host(n)
		switch {
		case h == nil:
			return nil, nil, fmt.Errorf("%s %s: no such host in %s", verb, n, inv.Path)
		case seen[n]:
			return nil, nil, fmt.Errorf("%s %s: named twice", verb, n)
		case h.Role == inventory.RoleMaster:
			masters = append(masters, n)
		case h.Role == inventory.RoleWorker:
			workers = append(workers, n)
		default:
			return nil, nil, fmt.Errorf("%s %s: it is the %s in %s, not a node", verb, n, h.Role, inv.Path)
		}
		seen[n] = true
	}
	return masters, workers, nil
}

// joinGraph: preflight → credentials → masters one by one → load balancer
// (after the new masters serve) ; credentials → CA → workers in parallel;
// then wait Ready and delete the token.
func joinGraph(a *applyRun, masters, workers []string) *steps.Graph {
	s := a.s
	lbHost := s.Inv.LoadBalancer.Name
	probeHosts := append(append([]string{}, masters...), workers...)
	if len(masters) > 0 {
		probeHosts = append(probeHosts, lbHost)
	}
	isJoined := a.isJoined

	g := steps.New()
	g.MustAdd(steps.Step{Name: "preflight", Description: "reach the nodes; check OS, binaries, swap and clock skew",
		Hosts: probeHosts, ReadOnly: true, Run: a.preflight})
	g.MustAdd(steps.Step{Name: "credentials", Description: "a fresh short-lived token (and, for masters, certificates uploaded under a fresh key) and the CA hash",
		After: []string{"preflight"}, Check: a.credentialsReady, Run: a.prepareCredentials})
	waits := []string{"credentials"}
	if len(masters) > 0 {
		g.MustAdd(steps.Step{Name: "join-masters", Description: "kubeadm join --control-plane, one at a time",
			Hosts: masters, Serial: true, After: []string{"credentials"}, Check: isJoined, Run: a.joinMaster})
		g.MustAdd(steps.Step{Name: "loadbalancer", Description: "add the new masters to the NGINX upstream once they serve; nginx -t, reload",
			Hosts: []string{lbHost}, After: []string{"join-masters"}, Check: a.lbCheck, Run: a.lbApply})
		waits = append(waits, "loadbalancer")
	}
	if len(workers) > 0 {
		addWorkerJoins(g, a, workers)
		waits = append(waits, "join-workers")
	}
	g.MustAdd(steps.Step{Name: "ready", Description: "wait until the named nodes are Registered and Ready",
		After: waits, Check: a.namedReady, Run: a.waitReady})
	g.MustAdd(steps.Step{Name: "cleanup-tokens", Description: "delete the bootstrap token this run created",
		After: []string{"ready"}, Check: a.nothingToClean, Run: a.deleteToken})
	return g
}

// namedReady: every node the run concerns is Ready already.
func (a *applyRun) namedReady(ctx context.Context, _ string) (bool, string, error) {
	missing, err := a.notReady(ctx)
	if err != nil {
		return false, "", err
	}
	if len(missing) == 0 {
		return true, "every named node is Ready", nil
	}
	return false, "", nil
}

// waitReady waits until every node the run concerns is Ready.
func (a *applyRun) waitReady(ctx context.Context, _ string) error {
	deadline := time.Now().Add(a.opts.ReadyTimeout)
	for {
		missing, err := a.notReady(ctx)
		if err == nil && len(missing) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nodes not Ready after %s: %v (last error: %v)", a.opts.ReadyTimeout, missing, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
