package playbooks

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fleetops/fleet/internal/binaries"
	"github.com/fleetops/fleet/internal/etcd"
	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/internal/versionskew"
	"github.com/fleetops/fleet/inventory"
)

// UpgradeOptions tune `fleet upgrade`.
type UpgradeOptions struct {
	// MaxUnavailable is how many workers are drained at once: a number,
	// or a percentage of the workers ("10%"); "" is 10 %, at least one.
	MaxUnavailable string
	Drain          drainOptions
	// ReadyTimeout bounds the wait for a node Ready at the new version
	// after its kubelet restarted (and a master's control plane healthy).
	ReadyTimeout   time.Duration
	KubeadmTimeout time.Duration // one kubeadm upgrade apply or node
	MaxClockSkew   time.Duration
}

// DefaultUpgradeOptions: 10 % of the workers at once, kubectl drain's
// usual patience.
func DefaultUpgradeOptions() UpgradeOptions {
	return UpgradeOptions{Drain: drainOptions{timeout: 5 * time.Minute}, ReadyTimeout: 5 * time.Minute,
		KubeadmTimeout: 15 * time.Minute, MaxClockSkew: 30 * time.Second}
}

// SetDrain sets the drain's choices, as fleet remove offers them.
func (o *UpgradeOptions) SetDrain(timeout time.Duration, force, deleteEmptyDirData bool) {
	o.Drain = drainOptions{timeout: timeout, force: force, deleteEmptyDirData: deleteEmptyDirData}
}

// MaxUnavailable reads --max-unavailable for a cluster of workers
// workers: a count, or a percentage rounded down, never below one.
func MaxUnavailable(spec string, workers int) (int, error) {
	if spec == "" {
		spec = "10%"
	}
	var n int
	if pct, ok := strings.CutSuffix(spec, "%"); ok {
		p, err := strconv.Atoi(pct)
		if err != nil || p <= 0 || p > 100 {
			return 0, fmt.Errorf("--max-unavailable %s: want a percentage from 1%% to 100%%", spec)
		}
		n = int(math.Floor(float64(workers) * float64(p) / 100))
	} else {
		c, err := strconv.Atoi(spec)
		if err != nil || c <= 0 {
			return 0, fmt.Errorf("--max-unavailable %s: want a positive number of workers or a percentage", spec)
		}
		n = c
	}
	return max(n, 1), nil
}

// Upgrade moves the cluster to the inventory's kubernetesVersion, as
// kubeadm documents it: kubeadm first on every node, then the masters one
// at a time (the first `kubeadm upgrade apply`, the others `kubeadm
// upgrade node`; each drained, its kubelet and kubectl replaced and
// restarted, uncordoned once Ready at the new version with its control
// plane healthy), then the workers, at most --max-unavailable at once.
// Every node's progress is read from the cluster, so a run cut short is
// finished by the next.
func Upgrade(ctx context.Context, s *Session, opts UpgradeOptions) (*Report, error) {
	if _, err := MaxUnavailable(opts.MaxUnavailable, len(s.Inv.Workers)); err != nil {
		return nil, err
	}
	end, err := s.connectChecking(ctx, UpgradeNodes(s.Inv))
	if err != nil {
		return nil, err
	}
	defer end()
	return locked(ctx, s, "upgrade", func() (*Report, error) {
		return s.Run(ctx, upgradeGraph(s, opts))
	})
}

// UpgradeNodes are the nodes in upgrade order: masters, then workers.
func UpgradeNodes(inv *inventory.Inventory) []string {
	return append(namesWithRole(inv, inventory.RoleMaster), namesWithRole(inv, inventory.RoleWorker)...)
}

func upgradeGraph(s *Session, opts UpgradeOptions) *steps.Graph {
	inv := s.Inv
	target := inv.Cluster.KubernetesVersion
	masters := namesWithRole(inv, inventory.RoleMaster)
	workers := namesWithRole(inv, inventory.RoleWorker)
	batch, _ := MaxUnavailable(opts.MaxUnavailable, len(workers))
	view := steps.NewOutput[*upgradeView]("the cluster's versions")
	// The nodes that run kubeadm (masters, kubeadm-joined workers) get
	// the new one; when fleet installs (the folder, the packages) every
	// node does, as fleet put kubeadm on every node.
	var kubeadmNodes []string
	for _, n := range UpgradeNodes(inv) {
		if h := inv.Host(n); h.Role == inventory.RoleMaster || inv.JoinModeOf(h) == inventory.JoinKubeadm || inv.Installs() {
			kubeadmNodes = append(kubeadmNodes, n)
		}
	}

	g := steps.New()
	g.MustAdd(s.step(steps.Step{Name: "preflight", Description: "reach every node; check OS, binaries, swap and clock skew",
		Hosts: UpgradeNodes(inv), ReadOnly: true}, &preflightPhase{inv: inv, maxSkew: opts.MaxClockSkew, upgrading: true}))
	g.MustAdd(s.step(steps.Step{Name: "upgrade-check", Description: "the version skew rules for " + target + "; every node Ready, etcd with all its members, every control plane healthy",
		After: []string{"preflight"}, ReadOnly: true, Produces: []steps.Slot{view}}, &upgradeCheckPhase{inv: inv, view: view}))
	g.MustAdd(s.step(steps.Step{Name: "upgrade-kubeadm", Description: "kubeadm " + target + " on every node that runs it (" + installSource(inv) + ")",
		Hosts: kubeadmNodes, After: []string{"upgrade-check"}}, newUpgradeTools(inv, "upgrade-kubeadm", "kubeadm")))
	g.MustAdd(s.step(steps.Step{Name: "upgrade-plan", Description: "kubeadm upgrade plan " + target + " on the first master to upgrade; its verdict noted",
		Hosts: masters[:1], After: []string{"upgrade-kubeadm"}, ReadOnly: true, Consumes: []steps.Slot{view}}, &upgradePlanPhase{inv: inv, view: view, timeout: opts.KubeadmTimeout}))
	g.MustAdd(s.step(steps.Step{Name: "upgrade-masters", Description: "kubeadm upgrade apply (the first) or node; drain; kubelet and kubectl " + target + "; kubelet restarted; Ready at " + target + " with a healthy control plane; uncordon; one master at a time",
		Hosts: masters, Serial: true, After: []string{"upgrade-plan"}, Consumes: []steps.Slot{view}},
		&upgradeNodePhase{inv: inv, view: view, opts: opts, tools: newUpgradeTools(inv, "upgrade-masters", "kubelet", "kubectl")}))
	if len(workers) > 0 {
		g.MustAdd(s.step(steps.Step{Name: "upgrade-workers", Description: fmt.Sprintf("drain; kubeadm upgrade node; kubelet and kubectl %s; kubelet restarted; Ready at %s; uncordon; %d at a time (--max-unavailable)", target, target, batch),
			Hosts: workers, MaxParallel: batch, After: []string{"upgrade-masters"}, Consumes: []steps.Slot{view}},
			&upgradeNodePhase{inv: inv, view: view, opts: opts, tools: newUpgradeTools(inv, "upgrade-workers", "kubelet", "kubectl")}))
	}
	return g
}

// installSource names where an upgrade's binaries come from.
func installSource(inv *inventory.Inventory) string {
	switch inv.Cluster.Install {
	case inventory.InstallBinaries:
		return "from the binaries folder"
	case inventory.InstallPackages:
		return "from " + packageSources(inv) + ", held"
	}
	return "installed by the operator: checked"
}

// upgradeView is what the upgrade knows of the cluster before it starts.
type upgradeView struct {
	access *clusterAccess
	from   string // the control plane's version when the run began
}

// kubeadmConfigVersion reads the cluster's version as kubeadm records it:
// ClusterConfiguration's kubernetesVersion in kube-system/kubeadm-config,
// which `kubeadm upgrade apply` moves when it has upgraded the first
// control plane.
func kubeadmConfigVersion(ctx context.Context, a *clusterAccess) (string, error) {
	var cm *corev1.ConfigMap
	err := apiRetry(ctx, func(ctx context.Context) (err error) {
		cm, err = a.client.CoreV1().ConfigMaps("kube-system").Get(ctx, "kubeadm-config", metav1.GetOptions{})
		return err
	})
	if err != nil {
		return "", fmt.Errorf("kube-system/kubeadm-config: %w", err)
	}
	var cfg struct {
		KubernetesVersion string `yaml:"kubernetesVersion"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["ClusterConfiguration"]), &cfg); err != nil || cfg.KubernetesVersion == "" {
		return "", fmt.Errorf("kube-system/kubeadm-config has no kubernetesVersion (%v)", err)
	}
	return cfg.KubernetesVersion, nil
}

// upgradeCheckPhase refuses an upgrade the skew rules forbid or a cluster
// that is not healthy enough to go through one, before anything changes.
type upgradeCheckPhase struct {
	inv  *inventory.Inventory
	view *steps.Output[*upgradeView]
}

func (p *upgradeCheckPhase) run(ctx context.Context, r remote, _ string) error {
	access, err := connectCluster(ctx, r.s)
	if err != nil {
		return err
	}
	from, err := kubeadmConfigVersion(ctx, access)
	if err != nil {
		return err
	}
	target := p.inv.Cluster.KubernetesVersion
	change, err := versionskew.Upgrade(from, target)
	if err != nil {
		return refused("%v", err)
	}
	nodes, err := access.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	problems := upgradeProblems(UpgradeNodes(p.inv), nodes.Items, from, target)
	masters := namesWithRole(p.inv, inventory.RoleMaster)
	members, err := etcdMembers(ctx, r.probe, access.master)
	if err != nil {
		problems = append(problems, fmt.Sprintf("etcd on %s: %v", access.master, err))
	} else if started := startedMembers(members); len(started) != len(masters) {
		problems = append(problems, fmt.Sprintf("etcd has %d started members (%s), the inventory %d masters", len(started), strings.Join(started, ", "), len(masters)))
	}
	healthy, errs := onEach(masters, 0, func(m string) (string, error) { return controlPlaneUnhealthy(ctx, r.probe, m), nil })
	for i, m := range masters {
		if errs[i] == nil && healthy[i] != "" {
			problems = append(problems, m+": "+healthy[i])
		}
	}
	if len(problems) > 0 {
		return refused("the cluster is not ready for an upgrade to %s: %s", target, strings.Join(problems, "; "))
	}
	if change == versionskew.Same {
		r.note("upgrade-check", "", "the control plane runs "+target+" already")
	} else {
		r.note("upgrade-check", "", fmt.Sprintf("%s: %s → %s", change, from, target))
	}
	return p.view.Set(ctx, &upgradeView{access: access, from: from})
}

// upgradeProblems is what keeps the nodes from an upgrade from from to
// target: one missing or not Ready, a kubelet the skew rules do not allow
// now or one newer than target.
func upgradeProblems(want []string, nodes []corev1.Node, from, target string) []string {
	byName := map[string]*corev1.Node{}
	for i := range nodes {
		byName[nodes[i].Name] = &nodes[i]
	}
	var problems []string
	for _, name := range want {
		n, ok := byName[name]
		switch {
		case !ok:
			problems = append(problems, name+" is not in the cluster: run fleet apply (at "+from+") first")
			continue
		case !nodeReady(n):
			problems = append(problems, name+" is not Ready")
		}
		kubelet := n.Status.NodeInfo.KubeletVersion
		if err := versionskew.Kubelet(kubelet, from); err != nil && kubelet != target {
			problems = append(problems, name+": "+err.Error())
		} else if err := versionskew.Kubelet(kubelet, target); err != nil {
			problems = append(problems, name+": "+err.Error())
		}
	}
	return problems
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// controlPlaneUnhealthy says which of master's control-plane pods do not
// answer their health endpoint now, or "".
func controlPlaneUnhealthy(ctx context.Context, p probe, master string) string {
	dial, err := p.dialer(ctx, master)
	if err != nil {
		return err.Error()
	}
	var sick []string
	for _, pod := range controlPlanePods {
		if err := waitHealthy(ctx, dial, pod, 10*time.Second); err != nil {
			sick = append(sick, pod.name)
		}
	}
	if len(sick) == 0 {
		return ""
	}
	return strings.Join(sick, ", ") + " not healthy"
}

// upgradeTools puts an upgrade's binaries on a node by the inventory's
// install path, only the named ones, each at its moment: from the binaries
// folder, from the Kubernetes packages of the new version's repository,
// or, on hosts the operator prepares, checks they are there.
type upgradeTools struct {
	inv      *inventory.Inventory
	names    []string
	binaries *binariesPhase      // install: binaries
	packages seen[packagesState] // install: packages: what the check read
}

func newUpgradeTools(inv *inventory.Inventory, step string, names ...string) *upgradeTools {
	t := &upgradeTools{inv: inv, names: names}
	if inv.Cluster.Install == inventory.InstallBinaries {
		version := inv.Cluster.KubernetesVersion
		t.binaries = &binariesPhase{step: step, version: version, kit: func(b *binaries.Bundle) binaryKit {
			return binaryKit{what: strings.Join(names, ", ") + " of " + version, files: b.NodeFiles(), only: names}
		}}
	}
	return t
}

func (t *upgradeTools) check(ctx context.Context, p probe, host string) (bool, string, error) {
	switch t.inv.Cluster.Install {
	case inventory.InstallBinaries:
		return t.binaries.check(ctx, p, host)
	case inventory.InstallPackages:
		m, key, st, err := packagesOn(ctx, p, host, nil) // read now: the node may have moved since preflight
		if err != nil {
			return false, "", err
		}
		t.packages.keep(host, st)
		if todo := packagesUpgradeTodo(st, m, key, t.inv.Cluster.KubernetesVersion, t.names); len(todo) > 0 {
			return false, strings.Join(todo, "; "), nil
		}
		return true, strings.Join(t.names, ", ") + " " + t.inv.Cluster.KubernetesVersion + " installed from " + m.repo + " and held", nil
	}
	wrong, err := t.versionsOff(ctx, p, host)
	if err != nil || len(wrong) == 0 {
		return err == nil, strings.Join(t.names, ", ") + " at " + t.inv.Cluster.KubernetesVersion, err
	}
	return false, "wants " + strings.Join(wrong, ", "), nil
}

func (t *upgradeTools) run(ctx context.Context, r remote, host string) error {
	switch t.inv.Cluster.Install {
	case inventory.InstallBinaries:
		return t.binaries.run(ctx, r, host)
	case inventory.InstallPackages:
		return t.upgradePackages(ctx, r, host)
	}
	wrong, err := t.versionsOff(ctx, r.probe, host)
	if err != nil {
		return err
	}
	if len(wrong) > 0 {
		return fmt.Errorf("%s: install them at %s (install: prepared: the operator installs the binaries), then run fleet upgrade again", strings.Join(wrong, "; "), t.inv.Cluster.KubernetesVersion)
	}
	return nil
}

// packagesUpgradeTodo lists what is left for the named packages to be at
// version from m's repository, held.
func packagesUpgradeTodo(st packagesState, m packageManager, key []byte, version string, names []string) []string {
	var todo []string
	for _, f := range m.sourceFiles(st, key) {
		todo = append(todo, "write "+f.path)
	}
	move, hold := packagesMoves(st, version, names)
	for _, name := range move {
		todo = append(todo, fmt.Sprintf("upgrade %s %s → %s", name, orUnknown(st.installed[name]), strings.TrimSuffix(debVersion(version), "-")))
	}
	for _, name := range hold {
		todo = append(todo, "hold "+name)
	}
	return todo
}

// packagesMoves are the named packages not at version yet, and those to
// hold once they are: the moved ones (released for the move) and any
// not held.
func packagesMoves(st packagesState, version string, names []string) (move, hold []string) {
	for _, name := range names {
		if !strings.HasPrefix(st.installed[name], debVersion(version)) {
			move = append(move, name)
			hold = append(hold, name)
		} else if !st.held[name] {
			hold = append(hold, name)
		}
	}
	return move, hold
}

// upgradePackages points the package manager at the new version's
// repository and moves the named packages to the version there: released
// from their hold, installed at the repository's revision, held again.
func (t *upgradeTools) upgradePackages(ctx context.Context, r remote, host string) error {
	m, key, st, err := packagesOn(ctx, r.probe, host, &t.packages)
	if err != nil {
		return err
	}
	move, hold := packagesMoves(st, t.inv.Cluster.KubernetesVersion, t.names)
	var commands, held []string
	for _, name := range move {
		if st.held[name] {
			held = append(held, name)
		}
	}
	if len(held) > 0 {
		commands = append(commands, m.unholdCommand(held))
	}
	if len(move) > 0 {
		commands = append(commands, m.installCommand(t.inv.Cluster.KubernetesVersion, move))
	}
	if len(hold) > 0 {
		commands = append(commands, m.holdCommand(hold))
	}
	return m.change(ctx, r, host, m.sourceFiles(st, key), commands)
}

// versionsOff lists the named binaries whose version is not the target's,
// with what they say.
func (t *upgradeTools) versionsOff(ctx context.Context, p probe, host string) ([]string, error) {
	var wrong []string
	for _, name := range t.names {
		res, err := p.query(ctx, host, versionCommand(name, name))
		got := ""
		if err == nil {
			got = parseVersion(name, res.Stdout)
		}
		if got != t.inv.Cluster.KubernetesVersion {
			wrong = append(wrong, name+" is "+orUnknown(got))
		}
	}
	return wrong, nil
}

// upgradePlanPhase runs `kubeadm upgrade plan` on the first master and
// notes its verdict: kubeadm's own view of the upgrade, before any
// control plane changes.
type upgradePlanPhase struct {
	inv     *inventory.Inventory
	view    *steps.Output[*upgradeView]
	timeout time.Duration
}

func (p *upgradePlanPhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	v, err := p.view.Get(ctx)
	if err != nil {
		return false, "", err
	}
	if v.from == p.inv.Cluster.KubernetesVersion {
		return true, "the control plane runs " + v.from + " already", nil
	}
	// kubeadm upgrade plan must be the new kubeadm's: in a dry run, where
	// upgrade-kubeadm only looked, this says the step comes after it.
	res, err := pr.query(ctx, host, versionCommand("kubeadm", "kubeadm"))
	if got := parseVersion("kubeadm", res.Stdout); err != nil || got != p.inv.Cluster.KubernetesVersion {
		return false, "", fmt.Errorf("kubeadm on %s is %s, not %s yet", host, orUnknown(got), p.inv.Cluster.KubernetesVersion)
	}
	return false, "", nil
}

func (p *upgradePlanPhase) run(ctx context.Context, r remote, host string) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	res, err := r.probe.query(ctx, host, exec.Command("kubeadm", "upgrade", "plan", p.inv.Cluster.KubernetesVersion))
	if err != nil {
		return fmt.Errorf("kubeadm upgrade plan: %w", err)
	}
	r.note("upgrade-plan", host, upgradePlanVerdict(res.Stdout, p.inv.Cluster.KubernetesVersion))
	return nil
}

// releaseVersion is a Kubernetes release's version as kubeadm prints it.
var releaseVersion = regexp.MustCompile(`^v\d+\.\d+\.\d+`)

// upgradePlanVerdict is the gist of `kubeadm upgrade plan`'s report: the
// command it offers for target and the components it would move.
func upgradePlanVerdict(out, target string) string {
	var moves []string
	offered := false
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "kubeadm" && f[1] == "upgrade" && slices.Contains(f, target) {
			offered = true
		}
		// "kube-apiserver   master0   v1.34.4   v1.35.4": a component,
		// (a node), from, to.
		if len(f) >= 3 && f[len(f)-1] == target && releaseVersion.MatchString(f[len(f)-2]) && f[len(f)-2] != target {
			moves = append(moves, f[0]+" "+f[len(f)-2]+" → "+target)
		}
	}
	slices.Sort(moves)
	moves = slices.Compact(moves)
	if !offered {
		return "kubeadm upgrade plan does not offer " + target + " in so many words; kubeadm upgrade apply decides"
	}
	if len(moves) == 0 {
		return "kubeadm offers kubeadm upgrade apply " + target
	}
	return "kubeadm offers kubeadm upgrade apply " + target + ": " + strings.Join(moves, ", ")
}

// startedMembers names the etcd members that have started (a learner or
// a member added but never started has no name yet).
func startedMembers(members []etcd.Member) []string {
	var names []string
	for _, m := range members {
		if m.Name != "" && !m.IsLearner {
			names = append(names, m.Name)
		}
	}
	return names
}
