package playbooks

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fleetops/fleet/internal/kubeadm"
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
	// GenerateCA lets fleet make a root CA on the CA host when it has none
	// and the inventory names none.
	GenerateCA bool
	// KubeadmTimeout bounds one kubeadm init or join; a kubeadm still
	// running then is killed on its host with every process it started.
	KubeadmTimeout time.Duration
}

// DefaultApplyOptions are the defaults: 15-minute tokens.
func DefaultApplyOptions() ApplyOptions {
	return ApplyOptions{TokenTTL: 15 * time.Minute, ReadyTimeout: 3 * time.Minute, MaxClockSkew: 30 * time.Second, KubeadmTimeout: 10 * time.Minute}
}

// workerJoinParallelism bounds concurrent worker joins: each join makes the
// API server issue a certificate and the new kubelet list everything.
const workerJoinParallelism = 10

// applyRun is the state one apply shares between its steps: the secrets it
// made, and what it learned. A step only writes fields that later steps
// read, and the engine starts a step after its dependencies have finished;
// the one exception is the token, which a join may replace (tokenMu).
type applyRun struct {
	s     *Session
	opts  ApplyOptions
	first string   // the master kubeadm init runs on (join: an initialised one)
	only  []string // join: the nodes named; apply: empty, every node

	tokenMu        sync.Mutex // guards token once the joins run in parallel
	token          kubeadm.Token
	certKey        string
	tokenCreated   bool // this run has its token (made by init or token create)
	certsUploaded  bool
	certsRenewed   int // times the kubeadm-certs Secret was gone and re-uploaded
	pendingMasters int
	// joinedAt records which nodes had joined when credentials were made:
	// the join steps' checks read it instead of asking every host again.
	joinedAt   map[string]bool
	caPEM      []byte
	caHash     string
	kubeconfig []byte
}

// Apply builds the cluster the inventory describes, or converges it.
func Apply(ctx context.Context, s *Session, opts ApplyOptions) (*steps.Report, error) {
	if err := checkExclude(s.Inv, opts.Exclude); err != nil {
		return nil, err
	}
	s.Connect(ctx, hostNames(s.Inv.Hosts()))
	return locked(ctx, s, "apply", func() (*steps.Report, error) {
		return s.Run(ctx, applyGraph(s, opts, initMaster(ctx, s)))
	})
}

// Plan is a dry run of Apply: preflight runs, every other step only checks
// the state it would change. Nothing on any host changes.
func Plan(ctx context.Context, s *Session, opts ApplyOptions) (*steps.Report, error) {
	if err := checkExclude(s.Inv, opts.Exclude); err != nil {
		return nil, err
	}
	return s.DryRun(ctx, applyGraph(s, opts, initMaster(ctx, s)))
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
		ok, _, err := initialised(ctx, s, m)
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

// applyGraph: kubeadm init (or nothing, if it has run) on first, the other
// masters join.
func applyGraph(s *Session, opts ApplyOptions, first string) *steps.Graph {
	inv := s.Inv
	a := &applyRun{s: s, opts: opts, first: first}
	masters := namesWithRole(inv, inventory.RoleMaster)
	rest := without(masters, []string{first})
	masters = append([]string{first}, rest...)
	workers := without(namesWithRole(inv, inventory.RoleWorker), opts.Exclude)
	nodes := append(append([]string{}, masters...), workers...)

	checked := append([]string{inv.LoadBalancer.Name}, nodes...)
	if inv.CA != nil {
		checked = append(checked, inv.CA.Name)
	}
	g := steps.New()
	g.MustAdd(steps.Step{Name: "preflight", Description: "reach every host; check OS, binaries, swap and clock skew",
		Hosts: checked, ReadOnly: true, Run: a.preflight})
	g.MustAdd(steps.Step{Name: "gate", Description: "stop here unless every host passed preflight",
		After: []string{"preflight"}, ReadOnly: true, Run: func(context.Context, string) error { return nil }})
	g.MustAdd(steps.Step{Name: "loadbalancer", Description: "write the NGINX stream config (least_conn over every master's :6443), nginx -t, start or reload (host service or container)",
		Hosts: []string{inv.LoadBalancer.Name}, After: []string{"gate"}, Check: a.lbCheck, Run: a.lbApply})
	initAfter := []string{"loadbalancer"}
	if inv.CA != nil {
		g.MustAdd(steps.Step{Name: "ca-host", Description: "the CFSSL API on the CA host: signing config, auth key, root, cluster CA, OCSP signer, certdb, service",
			Hosts: []string{inv.CA.Name}, After: []string{"gate"}, Check: s.caHostReady,
			Run: func(ctx context.Context, h string) error { return s.setupCAHost(ctx, h, opts.GenerateCA) }})
		g.MustAdd(steps.Step{Name: "cluster-ca", Description: "the CA host's cluster CA as ca.crt/ca.key, for kubeadm init",
			Hosts: []string{a.first}, After: []string{"ca-host"}, Check: a.clusterCAFromCAHost, Run: a.installClusterCA})
		initAfter = append(initAfter, "cluster-ca")
	}
	g.MustAdd(steps.Step{Name: "init", Description: "kubeadm init --upload-certs with controlPlaneEndpoint " + inv.Cluster.ControlPlaneEndpoint,
		Hosts: []string{a.first}, After: initAfter,
		Check: func(ctx context.Context, h string) (bool, string, error) { return initialised(ctx, s, h) }, Run: a.initFirstMaster})
	g.MustAdd(steps.Step{Name: "credentials", Description: "a short-lived bootstrap token, certificates uploaded under a fresh key, the CA hash",
		After: []string{"init"}, Check: a.credentialsReady, Run: a.prepareCredentials})
	g.MustAdd(steps.Step{Name: "cni", Description: "apply the CNI manifest with the pod subnet " + inv.Cluster.PodSubnet,
		Hosts: []string{a.first}, After: []string{"init"}, Check: a.cniCurrent, Run: a.applyCNI})
	if len(rest) > 0 {
		g.MustAdd(steps.Step{Name: "join-masters", Description: "kubeadm join --control-plane, one at a time",
			Hosts: rest, Serial: true, After: []string{"credentials"},
			Check: a.isJoined, Run: a.joinMaster})
	}
	if len(workers) > 0 {
		addWorkerJoins(g, a, workers)
	}
	joins := []string{"credentials", "cni"}
	if len(rest) > 0 {
		joins = append(joins, "join-masters")
	}
	if len(workers) > 0 {
		joins = append(joins, "join-workers")
	}
	g.MustAdd(steps.Step{Name: "kubeconfig", Description: "fetch admin.conf (0600, server = the load balancer) and wait for every node Ready",
		After: joins, Check: a.kubeconfigCurrent, Run: a.writeKubeconfig})
	g.MustAdd(steps.Step{Name: "cleanup-tokens", Description: "delete the bootstrap token this run created",
		After: []string{"kubeconfig"}, Check: a.nothingToClean, Run: a.deleteToken})
	return g
}

func (a *applyRun) lbCheck(ctx context.Context, host string) (bool, string, error) {
	cfg, err := lbConfig(a.s.Inv)
	if err != nil {
		return false, "", err
	}
	return lbUpToDate(ctx, a.s, host, cfg)
}

func (a *applyRun) lbApply(ctx context.Context, host string) error {
	cfg, err := lbConfig(a.s.Inv)
	if err != nil {
		return err
	}
	return applyLB(ctx, a.s, host, cfg, a.s.Inv.Cluster.ControlPlaneEndpoint)
}

// nothingToClean: no bootstrap token made by a fleet apply is left, this
// run's or one an interrupted run left behind.
func (a *applyRun) nothingToClean(ctx context.Context, _ string) (bool, string, error) {
	ids, err := a.fleetTokens(ctx)
	if err != nil {
		return false, "", err
	}
	if len(ids) == 0 {
		return true, "no fleet apply token left", nil
	}
	return false, "", nil
}

func (a *applyRun) deleteToken(ctx context.Context, _ string) error {
	ids, err := a.fleetTokens(ctx)
	if err != nil {
		return err
	}
	client, err := a.client()
	if err != nil {
		return err
	}
	for _, id := range ids {
		err := client.CoreV1().Secrets("kube-system").Delete(ctx, "bootstrap-token-"+id, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete bootstrap token %s: %w", id, err)
		}
	}
	return nil
}

// fleetTokens lists the IDs of bootstrap tokens an apply made, read from
// their Secrets' description.
func (a *applyRun) fleetTokens(ctx context.Context) ([]string, error) {
	client, err := a.client()
	if err != nil {
		return nil, err
	}
	secrets, err := client.CoreV1().Secrets("kube-system").List(ctx, metav1.ListOptions{FieldSelector: "type=bootstrap.kubernetes.io/token"})
	if err != nil {
		return nil, fmt.Errorf("list bootstrap tokens: %w", err)
	}
	var ids []string
	for _, sec := range secrets.Items {
		if string(sec.Data["description"]) == kubeadm.TokenDescription {
			ids = append(ids, string(sec.Data["token-id"]))
		}
	}
	return ids, nil
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

// addWorkerJoins adds the worker joins: ca.crt first, then each worker its
// inventory's way, in parallel; TLS-bootstrapped workers need fleet's RBAC
// bindings first.
func addWorkerJoins(g *steps.Graph, a *applyRun, workers []string) {
	g.MustAdd(steps.Step{Name: "distribute-ca", Description: "copy ca.crt to /etc/kubernetes/pki/ca.crt",
		Hosts: workers, After: []string{"credentials"}, Check: a.isJoined, Run: a.distributeCA})
	after := []string{"distribute-ca"}
	description := "kubeadm join with the token and the CA hash"
	// cfssl workers need the bindings too: their kubelets renew their
	// certificates through the CSR API (rotateCertificates).
	if len(tlsBootstrapWorkers(a.s.Inv, workers)) > 0 || len(cfsslWorkers(a.s.Inv, workers)) > 0 {
		g.MustAdd(steps.Step{Name: "bootstrap-rbac", Description: "ClusterRoleBindings for kubelet TLS bootstrapping and CSR auto-approval",
			After: []string{"credentials"}, Check: a.bootstrapRBACPresent, Run: a.createBootstrapRBAC})
		after = append(after, "bootstrap-rbac")
		description += "; tls-bootstrap workers: kubelet with a bootstrap kubeconfig, CSR approved and issued"
	}
	g.MustAdd(steps.Step{Name: "join-workers", Description: description,
		Hosts: workers, MaxParallel: workerJoinParallelism, After: after, Check: a.isJoined, Run: a.joinWorkerByMode})
}
