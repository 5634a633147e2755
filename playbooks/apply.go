package playbooks

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// ApplyOptions tune `fleet apply`.
type ApplyOptions struct {
	Kubeconfig   string        // where the admin kubeconfig goes on this machine
	TokenTTL     time.Duration // lifetime of the run's bootstrap token
	ReadyTimeout time.Duration // how long to wait for every node Ready
	MaxClockSkew time.Duration // preflight: hosts further off than this fail
	// Exclude leaves these workers out of the run (unreachable or broken
	// ones): the rest is built, and a later apply without it adds them.
	Exclude []string
	// GenerateCA lets fleet make a root CA when the CA host has none and
	// the inventory names none: on this machine, beside the inventory
	// (<cluster>-root-ca.pem, key 0600, never overwritten), its key never
	// uploaded.
	GenerateCA bool
	// RootOnCAHost makes that root on the CA host instead, its key kept
	// there: the seed's homelab layout.
	RootOnCAHost bool
	// KubeadmTimeout bounds one kubeadm init or join; a kubeadm still
	// running then is killed on its host with every process it started.
	KubeadmTimeout time.Duration
	// NetworkTimeout bounds the wait for the network's DaemonSets to roll
	// out (kubeProxy: false removes kube-proxy only after it) and for CRDs
	// the network's operator creates.
	NetworkTimeout time.Duration
}

// DefaultApplyOptions are the defaults: 15-minute tokens.
func DefaultApplyOptions() ApplyOptions {
	return ApplyOptions{TokenTTL: 15 * time.Minute, ReadyTimeout: 3 * time.Minute, MaxClockSkew: 30 * time.Second, KubeadmTimeout: 10 * time.Minute,
		NetworkTimeout: 10 * time.Minute}
}

// Apply builds the cluster the inventory describes, or converges it.
func Apply(ctx context.Context, s *Session, opts ApplyOptions) (*Report, error) {
	if err := checkExclude(s.Inv, opts.Exclude); err != nil {
		return nil, err
	}
	// The binaries folder is checked while the
	// hosts are dialled, before any is changed.
	end, err := s.connectChecking(ctx, hostNames(s.Inv.Hosts()))
	if err != nil {
		return nil, err
	}
	defer end()
	return locked(ctx, s, "apply", func() (*Report, error) {
		return s.Run(ctx, applyGraph(s, opts, initMaster(ctx, s)))
	})
}

// Plan is a dry run of Apply: preflight runs, every other step only checks
// the state it would change. Nothing on any host changes.
func Plan(ctx context.Context, s *Session, opts ApplyOptions) (*Report, error) {
	if err := checkExclude(s.Inv, opts.Exclude); err != nil {
		return nil, err
	}
	if err := s.checkInstallSource(ctx); err != nil {
		return nil, err
	}
	first := initMaster(ctx, s)
	// A new kubernetesVersion is fleet upgrade's to carry out: its plan is
	// the one to show.
	if running := runningVersion(ctx, s, first); running != "" && running != s.Inv.Cluster.KubernetesVersion {
		s.note("plan", "", fmt.Sprintf("the control plane runs %s, the inventory says %s: fleet upgrade's plan follows (fleet apply refuses until the upgrade is done)",
			running, s.Inv.Cluster.KubernetesVersion))
		return s.DryRun(ctx, upgradeGraph(s, DefaultUpgradeOptions()))
	}
	return s.DryRun(ctx, applyGraph(s, opts, first))
}

// runningVersion is the version master's control plane runs, from the
// image of its kube-apiserver manifest; "" when it has none.
func runningVersion(ctx context.Context, s *Session, master string) string {
	files, err := s.probe().readFiles(ctx, master, apiserverManifest)
	if err != nil {
		return ""
	}
	return imageTag(files[apiserverManifest])
}

// initMaster picks the master the cluster grows from: the first one that
// is initialised already (after `fleet remove master0` the cluster lives on
// in the others, and master0 must join it, not start a second cluster), or
// the inventory's first master. A master that cannot be asked ends the
// search; preflight reports it.
func initMaster(ctx context.Context, s *Session) string {
	masters := s.Inv.Masters
	names := make([]string, len(masters))
	for i, m := range masters {
		names[i] = m.Name
	}
	// In parallel: this also opens the connections preflight uses.
	ok, errs := onEach(names, 0, func(m string) (bool, error) {
		ok, _, err := initialised(ctx, s.probe(), m)
		return ok, err
	})
	for i, m := range masters {
		if errs[i] != nil {
			break
		}
		if ok[i] {
			return m.Name
		}
	}
	return masters[0].Name
}

// checkExclude allows leaving out workers only: without the load balancer
// or a master there is no cluster to build.
func checkExclude(inv *inventory.Inventory, exclude []string) error {
	for _, name := range exclude {
		h := inv.Host(name)
		switch {
		case h == nil:
			return fmt.Errorf("--exclude %s: no such host in %s", name, inv.Path)
		case h.Role != inventory.RoleWorker:
			return fmt.Errorf("--exclude %s: only workers can be left out, %s is the %s", name, name, h.Role)
		}
	}
	return nil
}

// ApplyGraph is the step graph of `fleet apply` on new hosts, in the order
// it runs.
func ApplyGraph(s *Session, opts ApplyOptions) *steps.Graph {
	return applyGraph(s, opts, s.Inv.Masters[0].Name)
}

// applyGraph: kubeadm init on first (or nothing, if it has run), then the
// other masters join one at a time and the workers in parallel.
func applyGraph(s *Session, opts ApplyOptions, first string) *steps.Graph {
	inv := s.Inv
	rest := without(namesWithRole(inv, inventory.RoleMaster), []string{first})
	workers := without(namesWithRole(inv, inventory.RoleWorker), opts.Exclude)
	nodes := append(append([]string{first}, rest...), workers...)
	checked := append(inv.LoadBalancerNames(), nodes...)
	if inv.CA != nil {
		checked = append(checked, inv.CA.Name)
	}
	// What the steps hand each other.
	access := steps.NewOutput[*clusterAccess]("cluster access")
	made := steps.NewOutput[initCredentials]("init credentials")
	joined := steps.NewOutput[joinState]("join state")
	creds := steps.NewOutput[*joinCredentials]("join credentials")

	g := steps.New()
	g.MustAdd(s.step(steps.Step{Name: "preflight", Description: "reach every host; check OS, binaries, swap and clock skew",
		Hosts: checked, ReadOnly: true}, &preflightPhase{inv: inv, maxSkew: opts.MaxClockSkew}))
	// The charts render here, before any host changes: a chart that does
	// not render (a value it refuses, a version it lacks) stops the run
	// with nothing half-done.
	network := &rendered{src: sources{inv: inv}, timeout: opts.NetworkTimeout}
	g.MustAdd(steps.Step{Name: "gate", Description: "stop here unless every host passed preflight and the network and addons render",
		After: []string{"preflight"}, ReadOnly: true, Run: func(ctx context.Context, _ string) error { return network.get(ctx) }})
	lbReady := addLoadBalancers(s, g, inv, "write the NGINX stream config (least_conn over every master's :6443), nginx -t, start or reload (host service or container)", addPrepareLB(s, g))
	initAfter := append(lbReady, addPrepare(s, g, nodes)...)
	if inv.CA != nil {
		g.MustAdd(s.step(steps.Step{Name: "ca-host", Description: "the CFSSL API on the CA host: signing config, auth key, root, cluster CA, OCSP signer, certdb, service",
			Hosts: []string{inv.CA.Name}, After: append([]string{"gate"}, addPrepareCA(s, g)...)}, &caHostPhase{inv: inv, generateRoot: opts.GenerateCA, rootOnHost: opts.RootOnCAHost}))
		g.MustAdd(s.step(steps.Step{Name: "cluster-ca", Description: "the CA host's cluster CA as ca.crt/ca.key, for kubeadm init",
			Hosts: []string{first}, After: []string{"ca-host"}}, &clusterCAPhase{inv: inv}))
		initAfter = append(initAfter, "cluster-ca")
	}
	g.MustAdd(s.step(steps.Step{Name: "init", Description: "kubeadm init --upload-certs with controlPlaneEndpoint " + inv.Cluster.ControlPlaneEndpoint,
		Hosts: []string{first}, After: initAfter, Produces: []steps.Slot{access, made}},
		&initPhase{inv: inv, tokenTTL: opts.TokenTTL, timeout: opts.KubeadmTimeout, access: access, made: made}))
	g.MustAdd(s.step(steps.Step{Name: "credentials", Description: "a short-lived bootstrap token, certificates uploaded under a fresh key, the CA hash",
		After: []string{"init"}, Consumes: []steps.Slot{access, made}, Produces: []steps.Slot{joined, creds}},
		&credentialsPhase{inv: inv, master: first, nodes: nodes[1:], tokenTTL: opts.TokenTTL, access: access, made: made, joined: joined, creds: creds}))
	g.MustAdd(s.step(steps.Step{Name: "network", Description: "the pod network (" + networkSource(inv) + "), applied server-side: CRDs first, objects the inventory dropped deleted",
		Hosts: []string{first}, After: []string{"init"}}, &networkPhase{r: network}))
	joins := joinInputs{joinedCheck: joinedCheck{inv: inv, joined: joined}, timeout: opts.KubeadmTimeout, access: access, creds: creds}
	waits := append([]string{"credentials", "network"}, addJoins(s, g, joins, rest, workers)...)
	g.MustAdd(s.step(steps.Step{Name: "kubeconfig", Description: "fetch admin.conf (0600, server = the load balancer) and wait for every node Ready",
		After: waits, Consumes: []steps.Slot{access}},
		&kubeconfigPhase{path: opts.Kubeconfig, readiness: readiness{nodes: nodes, timeout: opts.ReadyTimeout, access: access}}))
	// The API calls after wait for kubelets restarted onto a node-local
	// proxy (a master's restart can drop a connection in flight).
	apiAfter := append([]string{"kubeconfig"}, addNodeLocal(s, g, inv, nodes, nodes, []string{"kubeconfig"}, access)...)
	g.MustAdd(s.step(steps.Step{Name: "node-meta", Description: "the inventory's labels and taints on each Node (those fleet set and the inventory dropped removed)",
		Hosts: nodes, After: apiAfter, Consumes: []steps.Slot{access}}, &nodeMetaPhase{inv: inv, access: access}))
	g.MustAdd(s.step(steps.Step{Name: "addons", Description: "cluster.addons in order, each applied like the network; addons the inventory dropped removed",
		Hosts: []string{first}, After: []string{"network"}, Consumes: []steps.Slot{access}}, &addonsPhase{r: network, access: access}))
	if !inv.Cluster.KubeProxyEnabled() {
		g.MustAdd(s.step(steps.Step{Name: "kube-proxy", Description: "remove kube-proxy (kubeProxy: false) once the network's DaemonSets have rolled out",
			Hosts: []string{first}, After: append([]string{"network"}, apiAfter...)}, &kubeProxyPhase{inv: inv, r: network}))
	}
	g.MustAdd(s.step(steps.Step{Name: "cleanup-tokens", Description: "delete this run's bootstrap tokens, and the uploaded control-plane certificates (kubeadm-certs) once no master is left to join",
		After: apiAfter, Consumes: []steps.Slot{access}}, &cleanupTokensPhase{access: access}))
	return g
}

// networkSource names the inventory's network for a step's description.
func networkSource(inv *inventory.Inventory) string {
	switch n := inv.Cluster.Network; {
	case n == nil:
		return "none in the inventory"
	case n.Cilium != nil:
		return "Cilium " + n.Cilium.Version + " from its Helm chart"
	case n.Helm != nil:
		return "Helm chart " + n.Helm.Chart
	}
	return "manifest " + inv.Cluster.Network.Manifest + ", pod subnet " + inv.Cluster.PodSubnet
}

// addJoins adds the joins after the credentials step: masters one at a
// time; ca.crt, then each worker its inventory's way, in parallel, with
// fleet's RBAC bindings first where TLS-bootstrapped or CA-host workers
// need them. It returns the steps a later step waits for.
func addJoins(s *Session, g *steps.Graph, j joinInputs, masters, workers []string) []string {
	var added []string
	if len(masters) > 0 {
		g.MustAdd(s.step(steps.Step{Name: "join-masters", Description: "kubeadm join --control-plane, one at a time",
			Hosts: masters, Serial: true, After: []string{"credentials"}, Consumes: j.slots()}, &joinMastersPhase{j}))
		added = append(added, "join-masters")
	}
	if len(workers) == 0 {
		return added
	}
	g.MustAdd(s.step(steps.Step{Name: "distribute-ca", Description: "copy ca.crt to /etc/kubernetes/pki/ca.crt",
		Hosts: workers, After: []string{"credentials"}, Consumes: []steps.Slot{j.creds, j.joined}},
		&distributeCAPhase{joinedCheck: j.joinedCheck, creds: j.creds}))
	after := []string{"distribute-ca"}
	description := "kubeadm join with the token and the CA hash"
	// cfssl workers need the bindings too: their kubelets renew their
	// certificates through the CSR API (rotateCertificates).
	if len(workersOf(j.inv, workers, inventory.JoinTLSBootstrap))+len(workersOf(j.inv, workers, inventory.JoinCFSSL)) > 0 {
		g.MustAdd(s.step(steps.Step{Name: "bootstrap-rbac", Description: "ClusterRoleBindings for kubelet TLS bootstrapping and CSR auto-approval",
			After: []string{"credentials"}, Consumes: []steps.Slot{j.access}}, &bootstrapRBACPhase{access: j.access}))
		after = append(after, "bootstrap-rbac")
		description += "; tls-bootstrap workers: kubelet with a bootstrap kubeconfig, CSR approved and issued"
	}
	g.MustAdd(s.step(steps.Step{Name: "join-workers", Description: description,
		Hosts: workers, MaxParallel: workerJoinParallelism, After: after, Consumes: j.slots()}, &joinWorkersPhase{j}))
	return append(added, "join-workers")
}

func without(names, drop []string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(drop, n) {
			out = append(out, n)
		}
	}
	return out
}

// namesWithRole lists the inventory's hosts of one role, in inventory order.
func namesWithRole(inv *inventory.Inventory, role inventory.Role) []string {
	var names []string
	for _, h := range inv.Hosts() {
		if h.Role == role {
			names = append(names, h.Name)
		}
	}
	return names
}
