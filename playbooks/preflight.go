package playbooks

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/version"

	"github.com/fleetops/fleet/internal/binaries"
	"github.com/fleetops/fleet/internal/cfssl"
	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/facts"
	"github.com/fleetops/fleet/internal/nodeprep"
	"github.com/fleetops/fleet/internal/versionskew"
	"github.com/fleetops/fleet/inventory"
)

// Ports kubeadm's components take on a node that has not joined yet.
var nodePorts = map[inventory.Role][]string{
	inventory.RoleMaster: {"6443", "2379", "2380", "10250", "10257", "10259"},
	inventory.RoleWorker: {"10250"},
}

// stateCommand reads, in one remote process chain, what preflight needs
// beyond the facts: the clock, the swap devices, whether the node has
// joined (or began to), and the listening TCP sockets with their process
// when one of ports is among them. ss -p reads every process's file
// descriptors, the costliest part of preflight on a busy host: a joined
// node's ports are its own and it skips the sockets, and the others ask
// which process holds a port only once they know one of theirs is held,
// from Linux's socket tables read by the shell itself (ss where there are
// none): a node that has not joined has few sockets, and one process less
// per host counts when a hundred answer at once.
func stateCommand(ports []string) string {
	var filter, hex []string
	for _, p := range ports {
		filter = append(filter, "sport = :"+p)
		if n, err := strconv.Atoi(p); err == nil {
			hex = append(hex, fmt.Sprintf("*:%04X", n))
		}
	}
	if len(hex) == 0 {
		hex = []string{"-"} // no local address looks like this
	}
	return `date +%s; n=-1; while read -r _; do n=$((n+1)); done < /proc/swaps; echo $((n < 0 ? 0 : n))
if [ -e ` + kubeletConf + ` ]; then s=joined
elif ` + startedJoinTest + `; then s=partial
else s=new; fi
if [ -e ` + joinConfigPath + ` ]; then echo $s join-config; else echo $s; fi
if [ $s != joined ]; then
	if [ -r /proc/net/tcp ]; then
		held=; for t in /proc/net/tcp /proc/net/tcp6; do
			[ -r $t ] || continue
			while read -r _ a _ st _; do [ "$st" = 0A ] && case $a in ` + strings.Join(hex, "|") + `) held=y;; esac; done < $t
		done
	else held=$(ss -Hltn ` + exec.Quote("( "+strings.Join(filter, " or ")+" )") + ` 2>/dev/null) || held=unknown
	fi
	[ -z "$held" ] || ss -Hltnp 2>/dev/null || ss -Hltn
fi`
}

// watchedPorts are the ports preflight wants free (or held by what may
// hold them) on h.
func watchedPorts(h *inventory.Host, inv *inventory.Inventory) []string {
	switch h.Role {
	case inventory.RoleLoadBalancer:
		_, port, _ := net.SplitHostPort(inv.Cluster.ControlPlaneEndpoint)
		return []string{port}
	case inventory.RoleCA:
		return []string{strconv.Itoa(inv.CFSSLPort())}
	}
	return nodePorts[h.Role]
}

// nodeState is how far kubeadm got on a node.
type nodeState string

const (
	newNode     nodeState = "new"
	partialJoin nodeState = "partial" // a join cut short: the join step clears it
	joinedNode  nodeState = "joined"
)

// kubeadmComponents are the process names (as ss shows them, cut to 15
// characters) of what kubeadm starts on a node.
var kubeadmComponents = []string{"kubelet", "kube-apiserver", "kube-controller", "kube-scheduler", "etcd"}

// hostState is stateCommand's answer.
type hostState struct {
	clock     time.Time
	swaps     int
	node      nodeState
	listeners []listener
	// joinConfig: a join's config file is there, so a kubeadm join of an
	// earlier run may still be running (see joinConfigName).
	joinConfig bool
}

// listener is one listening TCP socket.
type listener struct {
	port    string
	process string // "nginx", or "" when ss could not tell
}

// parseHostState reads stateCommand's output.
func parseHostState(out string) (hostState, error) {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) < 3 {
		return hostState{}, fmt.Errorf("unexpected state answer %q", out)
	}
	epoch, err1 := strconv.ParseInt(strings.TrimSpace(lines[0]), 10, 64)
	swaps, err2 := strconv.Atoi(strings.TrimSpace(lines[1]))
	if err1 != nil || err2 != nil {
		return hostState{}, fmt.Errorf("unexpected state answer %q", out)
	}
	fields := strings.Fields(lines[2])
	if len(fields) == 0 || len(fields) > 2 || len(fields) == 2 && fields[1] != "join-config" {
		return hostState{}, fmt.Errorf("unexpected node state %q", lines[2])
	}
	node := nodeState(fields[0])
	if !slices.Contains([]nodeState{newNode, partialJoin, joinedNode}, node) {
		return hostState{}, fmt.Errorf("unexpected node state %q", lines[2])
	}
	st := hostState{clock: time.Unix(epoch, 0), swaps: swaps, node: node, joinConfig: len(fields) == 2}
	st.listeners = parseListeners(strings.Join(lines[3:], "\n"))
	return st, nil
}

// parseListeners reads `ss -Hltn[p]`: State Recv-Q Send-Q Local:Port
// Peer:Port [users:(("name",pid=N,fd=M))].
func parseListeners(out string) []listener {
	var ls []listener
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		i := strings.LastIndexByte(f[3], ':')
		if i < 0 {
			continue
		}
		l := listener{port: f[3][i+1:]}
		if len(f) > 5 {
			if _, rest, ok := strings.Cut(f[5], `(("`); ok {
				l.process, _, _ = strings.Cut(rest, `"`)
			}
		}
		ls = append(ls, l)
	}
	return ls
}

// taken lists the ports of want that a listener other than the allowed
// processes holds, once each, in want's order.
func taken(ls []listener, want []string, allowed ...string) []string {
	var out []string
	for _, p := range want {
		for _, l := range ls {
			if l.port == p && !slices.Contains(allowed, l.process) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// preflightPhase checks what apply needs of a host, from one remote
// command: the facts probe, then the state. It changes nothing.
type preflightPhase struct {
	inv     *inventory.Inventory
	maxSkew time.Duration // hosts whose clock is further off fail
	// upgrading: fleet upgrade's preflight, where binaries of the
	// cluster's version are expected, not refused.
	upgrading bool
}

// PreflightError is a host that failed preflight: the run stopped before
// any host was changed.
type PreflightError struct {
	Host string
	Role inventory.Role
	Err  error
}

func (e *PreflightError) Error() string { return e.Err.Error() }
func (e *PreflightError) Unwrap() error { return e.Err }

func (p *preflightPhase) run(ctx context.Context, r remote, host string) error {
	err := p.judge(ctx, r.probe, host)
	if err != nil {
		return &PreflightError{Host: host, Role: p.inv.Host(host).Role, Err: err}
	}
	return nil
}

func (p *preflightPhase) judge(ctx context.Context, pr probe, host string) error {
	h := p.inv.Host(host)
	prepared := prepares(p.inv, h)
	state := stateCommand(watchedPorts(h, p.inv))
	cmd := facts.Command() + "\necho " + stateMarker + "\n" + state
	var b *binaries.Bundle // install: binaries' folder
	var reads []hostRead
	if prepared {
		var err error
		if b, err = pr.s.Bundle(ctx); err != nil {
			return err
		}
		cmd = facts.Command() + "\n" + versionsScript + "echo " + stateMarker + "\n" + state
		// The prepare phases' checks are answered in the same command.
		reads = prepReads(b, pr.s.Inv.Cluster.RegistryMirrors)
	}
	if h.Role == inventory.RoleCA {
		reads = append(reads, hostRead{caToolsScript(), nil})
	}
	if h.Role == inventory.RoleMaster {
		// The certificates kubeadm made, for the expiry warning, and the
		// manifests a cut-short restart left aside: in the same command.
		reads = append(reads, hostRead{leftAsideScript, append(slices.Clone(masterCertFiles), apiserverManifest)})
	}
	out, answers, files, err := pr.querySections(ctx, host, cmd, reads)
	if err != nil {
		return err
	}
	if h.Role == inventory.RoleMaster {
		if soon := expiringSoon(host, files, time.Now()); soon != "" {
			pr.s.note("preflight", host, soon)
		}
		if aside := strings.Fields(answers[len(answers)-1]); len(aside) > 0 {
			return fmt.Errorf("%s waits in %s: a fleet certs renew or fleet restore was cut short; run it again to finish it before apply", strings.Join(aside, ", "), restartDir)
		}
		answers = answers[:len(answers)-1]
		if err := p.versionProblem(files[apiserverManifest]); err != nil {
			return err
		}
	}
	var caProblem string
	if h.Role == inventory.RoleCA {
		if caProblem, err = p.caTools(ctx, pr, strings.Fields(answers[len(answers)-1])); err != nil {
			return err
		}
		answers = answers[:len(answers)-1]
	}
	factsOut, stateOut, ok := strings.Cut(out, stateMarker+"\n")
	if !ok {
		return fmt.Errorf("unexpected preflight answer %q", out)
	}
	var install []string
	var versions map[string]string
	if prepared {
		versions = parseVersions(factsOut)
		factsOut = dropPrefixed(factsOut, "version.")
	}
	f, err := facts.Parse(factsOut)
	if err != nil {
		return err
	}
	family := nodeprep.Family(f.ID, f.IDLike)
	pr.s.family.Store(host, family)
	if prepared {
		if err := pr.s.prep.keepViews(host, b, managerFor(p.inv, family).name, answers, files); err != nil {
			return err
		}
		version := p.inv.Cluster.KubernetesVersion
		if p.upgrading {
			version = "" // the old version until each node's turn
		}
		install = installProblems(h, hostFacts{distro: f.Distro, id: f.ID, arch: f.Arch, family: family,
			containerd: f.Has("containerd"), versions: versions}, b, version)
		if len(install) == 0 && b == nil {
			// The repository's key, pinned, before any host is changed.
			if _, err := pr.s.PackageKey(ctx, managerFor(p.inv, family)); err != nil {
				return err
			}
		}
	}
	pr.s.systemd.Store(host, f.Systemd)
	st, err := parseHostState(stateOut)
	if err != nil {
		return err
	}
	if h.Role == inventory.RoleMaster || h.Role == inventory.RoleWorker {
		pr.s.joinedAt.keep(host, st.node == joinedNode)
		pr.s.untouchedAt.keep(host, st.node == newNode && !st.joinConfig)
	}
	if h.Role == inventory.RoleMaster && st.node != joinedNode && host != p.inv.Masters[0].Name {
		pr.s.upstream.wait(host) // it enters once it joins and serves
	}
	err = problemsOf(h, f, st, p.inv, p.maxSkew, time.Now())
	if caProblem != "" {
		install = append(install, caProblem)
	}
	if len(install) > 0 {
		if err != nil {
			install = append(install, err.Error())
		}
		return fmt.Errorf("%s", strings.Join(install, "; "))
	}
	return err
}

// cgroupProblem refuses a node with cgroups v1 for a version whose kubelet
// refuses it (v1.35 on), unless the inventory allows it.
func cgroupProblem(h *inventory.Host, f facts.Facts, inv *inventory.Inventory) string {
	if !f.CgroupV1 || inv.Cluster.AllowCgroupV1 || (h.Role != inventory.RoleMaster && h.Role != inventory.RoleWorker) {
		return ""
	}
	v, err := version.ParseSemantic(inv.Cluster.KubernetesVersion)
	if err != nil || v.LessThan(version.MajorMinor(1, 35)) {
		return ""
	}
	return "the host has cgroups v1, which kubelets of v1.35 and later refuse: move it to cgroups v2 (systemd.unified_cgroup_hierarchy=1 on the kernel command line), or set cluster.allowCgroupV1: true (deprecated by Kubernetes)"
}

// apiserverManifest is read by preflight for the version the master's
// control plane runs.
const apiserverManifest = manifestsDir + "/kube-apiserver.yaml"

// versionProblem refuses an apply on a master whose control plane runs
// another version than the inventory's: versions change with fleet
// upgrade. fleet upgrade's own preflight lets it be.
func (p *preflightPhase) versionProblem(manifest []byte) error {
	running, want := imageTag(manifest), p.inv.Cluster.KubernetesVersion
	if p.upgrading || running == "" || running == want {
		return nil
	}
	if _, err := versionskew.Upgrade(running, want); err != nil {
		return fmt.Errorf("the control plane runs %s, the inventory says %s: %w", running, want, err)
	}
	return fmt.Errorf("the control plane runs %s, the inventory says %s: apply does not change versions; fleet upgrade -i %s does (fleet plan shows it)", running, want, p.inv.Path)
}

// caToolsScript prints the cfssl binaries the CA host lacks where its
// platform's service runs them (one uname, builtins otherwise).
func caToolsScript() string {
	linux, _ := cfssl.PlatformFor("Linux")
	illumos, _ := cfssl.PlatformFor("SunOS")
	return `case $(uname -s) in SunOS) set -- ` + exec.Quote(illumos.Cfssl) + " " + exec.Quote(illumos.Cfssljson) +
		`;; *) set -- ` + exec.Quote(linux.Cfssl) + " " + exec.Quote(linux.Cfssljson) + `;; esac
for f; do [ -x "$f" ] || echo "$f"; done; :`
}

// caTools judges the cfssl binaries the CA host lacks: the binaries
// folder may bring them (prepare-ca installs them on a Linux CA host),
// else the problem says what to install, and where.
func (p *preflightPhase) caTools(ctx context.Context, pr probe, missing []string) (string, error) {
	if len(missing) == 0 {
		return "", nil
	}
	if p.inv.Cluster.Install == inventory.InstallBinaries && p.inv.CA.OS != "illumos" {
		b, err := pr.s.Bundle(ctx)
		if err != nil {
			return "", err
		}
		if len(b.CAFiles()) == len(binaries.CAHostOnly) {
			return "", nil // prepare-ca installs them
		}
	}
	how := "put cfssl and cfssljson (1.6 or later) in the binaries folder with install: binaries, or install them there yourself (Debian 12's golang-cfssl is 1.2, too old for cfssl serve -disable)"
	if p.inv.CA.OS == "illumos" {
		how = "install cfssl and cfssljson (1.6 or later) there: fleet uploads binaries to a Linux CA host only"
	}
	return fmt.Sprintf("%s missing: %s", strings.Join(missing, " and "), how), nil
}

// dropPrefixed removes the lines that start with prefix.
func dropPrefixed(out, prefix string) string {
	var keep []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, prefix) {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

// leftAsideScript names the control-plane manifests a cut-short certs
// renew or restore left outside the kubelet's folder (shell builtins
// only: it runs in every preflight).
const leftAsideScript = `for f in ` + restartDir + `/*.yaml; do [ -e "$f" ] && echo "${f##*/}"; done; :`

// stateMarker separates the facts from the state in preflight's answer.
const stateMarker = "--- fleet state ---"

// problemsOf judges one host's facts and state; nil when it may proceed.
func problemsOf(h *inventory.Host, f facts.Facts, st hostState, inv *inventory.Inventory, maxSkew time.Duration, now time.Time) error {
	var problems []string
	need := map[inventory.Role][]string{
		inventory.RoleLoadBalancer: {"nginx"},
		inventory.RoleMaster:       {"kubeadm", "kubelet", "kubectl"},
		inventory.RoleWorker:       {"kubeadm", "kubelet"},
	}[h.Role]
	if h.Role == inventory.RoleWorker && inv.JoinModeOf(h) == inventory.JoinTLSBootstrap {
		need = []string{"kubelet"} // no kubeadm on a TLS-bootstrapped worker
	}
	if h.Role == inventory.RoleWorker && inv.JoinModeOf(h) == inventory.JoinCFSSL {
		need = []string{"kubelet"} // the CA host signs its certificate
	}
	if inv.Installs() && (h.Role == inventory.RoleMaster || h.Role == inventory.RoleWorker) {
		need = nil // the prepare steps install them; installProblems judges
	}
	if h.Role == inventory.RoleLoadBalancer && inv.NginxRunAs() == inventory.NginxContainer {
		need = []string{"docker"} // nginx comes with the image
	}
	if h.Role == inventory.RoleLoadBalancer && inv.VIP != nil {
		need = append(need, "keepalived")
	}
	if inv.Cluster.NodeLocalProxy && len(nodeProxyHosts(inv, []string{h.Name})) > 0 && h.Role != inventory.RoleLoadBalancer && h.Role != inventory.RoleCA &&
		!(inv.Installs() && nodeprep.Family(f.ID, f.IDLike) != "") { // else prepare-node-proxy installs it
		need = append(need, "nginx") // the node-local proxy, with its stream module
	}
	if h.Role == inventory.RoleLoadBalancer && inv.Installs() && installsLB(inv, nodeprep.Family(f.ID, f.IDLike)) {
		need = nil // prepare-loadbalancer installs it
	}
	for _, tool := range need {
		if !f.Has(tool) {
			problems = append(problems, tool+" is not installed")
		}
	}
	wantOS := "Linux"
	if h.Role == inventory.RoleCA && h.OS == "illumos" {
		wantOS = "SunOS"
	}
	if f.OS != wantOS {
		problems = append(problems, "OS is "+f.OS+", want "+wantOS)
	}
	if skew := now.Sub(st.clock).Abs(); skew > maxSkew {
		problems = append(problems, fmt.Sprintf("clock is %s off this machine's (limit %s)", skew.Round(time.Second), maxSkew))
	}
	// A node fleet prepares gets swap turned off by the kernel step,
	// unless the inventory lets the kubelets have it.
	if h.Role != inventory.RoleLoadBalancer && st.swaps != 0 && !(inv.Installs() && h.Role != inventory.RoleCA) &&
		!(inv.Cluster.AllowSwap && h.Role != inventory.RoleCA) {
		problems = append(problems, "swap is on (the kubelet refuses it): swapoff -a, or cluster.allowSwap: true")
	}
	if p := cgroupProblem(h, f, inv); p != "" {
		problems = append(problems, p)
	}
	var busy []string
	switch h.Role {
	case inventory.RoleLoadBalancer: // nginx may hold its own port
		// A published container port is docker-proxy's (with the
		// userland proxy) or nobody's (iptables only).
		busy = taken(st.listeners, watchedPorts(h, inv), "nginx", "docker-proxy")
	case inventory.RoleCA: // a running API holds its own
		busy = taken(st.listeners, watchedPorts(h, inv), "cfssl")
	case inventory.RoleMaster, inventory.RoleWorker:
		switch st.node {
		case joinedNode: // it holds its own
		case partialJoin: // kubeadm's own are cleared before the join
			busy = taken(st.listeners, nodePorts[h.Role], kubeadmComponents...)
		default:
			busy = taken(st.listeners, nodePorts[h.Role])
		}
	}
	if len(busy) > 0 {
		problems = append(problems, "ports in use by something else: "+strings.Join(busy, ", "))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return nil
}
