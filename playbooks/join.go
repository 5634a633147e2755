package playbooks

import (
	"context"
	"fmt"
	"slices"
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
func Join(ctx context.Context, s *Session, nodes []string, opts JoinOptions) (*Report, error) {
	masters, workers, err := splitNodes(s.Inv, "join", nodes)
	if err != nil {
		return nil, err
	}
	s.Connect(ctx, append(s.Inv.LoadBalancerNames(), append(mastersOf(s.Inv), nodes...)...))
	return locked(ctx, s, "join", func() (*Report, error) {
		access, err := connectCluster(ctx, s)
		if err != nil {
			return nil, err
		}
		return s.Run(ctx, joinGraph(s, access, opts, masters, workers))
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
func joinGraph(s *Session, found *clusterAccess, opts JoinOptions, masters, workers []string) *steps.Graph {
	inv := s.Inv
	nodes := append(append([]string{}, masters...), workers...)
	probeHosts := nodes
	if len(masters) > 0 {
		probeHosts = append(slices.Clone(nodes), inv.LoadBalancerNames()...)
	}
	access := steps.Given("cluster access", found)
	joined := steps.NewOutput[joinState]("join state")
	creds := steps.NewOutput[*joinCredentials]("join credentials")

	g := steps.New()
	g.MustAdd(s.step(steps.Step{Name: "preflight", Description: "reach the nodes; check OS, binaries, swap and clock skew",
		Hosts: probeHosts, ReadOnly: true}, &preflightPhase{inv: inv, maxSkew: DefaultApplyOptions().MaxClockSkew}))
	g.MustAdd(s.step(steps.Step{Name: "credentials", Description: "a fresh short-lived token (and, for masters, certificates uploaded under a fresh key) and the CA hash",
		After: []string{"preflight"}, Consumes: []steps.Slot{access}, Produces: []steps.Slot{joined, creds}},
		&credentialsPhase{inv: inv, master: found.master, nodes: without(nodes, []string{found.master}), tokenTTL: opts.TokenTTL,
			access: access, joined: joined, creds: creds}))
	j := joinInputs{joinedCheck: joinedCheck{inv: inv, joined: joined}, timeout: opts.KubeadmTimeout, access: access, creds: creds}
	waits := append([]string{"credentials"}, addJoins(s, g, j, masters, nil)...)
	if len(masters) > 0 {
		waits = append(waits, addLoadBalancers(s, g, inv, "add the new masters to the NGINX upstream once they serve; nginx -t, reload", []string{"join-masters"})...)
	}
	waits = append(waits, addJoins(s, g, j, nil, workers)...)
	g.MustAdd(s.step(steps.Step{Name: "ready", Description: "wait until the named nodes are Registered and Ready",
		After: waits, Consumes: []steps.Slot{access}}, &readiness{nodes: nodes, timeout: opts.ReadyTimeout, access: access}))
	proxied := nodes
	if len(masters) > 0 { // every proxy's upstream gains them
		proxied = append(namesWithRole(inv, inventory.RoleMaster), namesWithRole(inv, inventory.RoleWorker)...)
	}
	apiAfter := append([]string{"ready"}, addNodeLocal(s, g, inv, proxied, nodes, []string{"ready"}, access)...)
	g.MustAdd(s.step(steps.Step{Name: "node-meta", Description: "the inventory's labels and taints on each Node",
		Hosts: nodes, After: apiAfter, Consumes: []steps.Slot{access}}, &nodeMetaPhase{inv: inv, access: access}))
	g.MustAdd(s.step(steps.Step{Name: "cleanup-tokens", Description: "delete this run's bootstrap tokens, and the uploaded control-plane certificates (kubeadm-certs) once no master is left to join",
		After: apiAfter, Consumes: []steps.Slot{access}}, &cleanupTokensPhase{access: access}))
	return g
}
