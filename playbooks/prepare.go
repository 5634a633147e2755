package playbooks

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/fleetops/fleet/internal/binaries"
	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// The prepare phases make a bare host a node kubeadm can run on
// (cluster.install: packages or binaries): the kernel set up, the
// Kubernetes software installed (from the repository, or the operator's
// folder uploaded where packages would put them), containerd configured.
// Each checks first in one remote command, whose view its run reuses, so
// a prepared host costs one command per phase and installs nothing.

// bundleOnce loads the inventory's binaries folder once per session: its
// sums are checked before the first upload, and every host shares it.
type bundleOnce struct {
	once   sync.Once
	bundle *binaries.Bundle
	err    error
}

// Bundle is the inventory's checked binaries folder (install: binaries),
// nil for the other install sources. A file whose sum differs from its
// SHA256SUMS line is an error here, before any host is touched.
func (s *Session) Bundle(ctx context.Context) (*binaries.Bundle, error) {
	if s.Inv.Cluster.Install != inventory.InstallBinaries {
		return nil, nil
	}
	s.bundle.once.Do(func() {
		c := s.Inv.Cluster
		if c.BinariesURL != "" {
			s.bundle.err = binaries.Fill(ctx, http.DefaultClient, c.Binaries, binaries.Release{URL: c.BinariesURL, Version: c.KubernetesVersion})
		}
		if s.bundle.err == nil {
			s.bundle.bundle, s.bundle.err = binaries.Load(c.Binaries)
		}
		if s.bundle.err != nil {
			s.bundle.err = &BinariesError{Err: s.bundle.err}
		}
	})
	return s.bundle.bundle, s.bundle.err
}

// checkInstallSource loads what install: binaries installs from, before
// any host is changed: the folder's sums. (install: packages' keys are
// checked in preflight, which knows each host's package manager.)
func (s *Session) checkInstallSource(ctx context.Context) error {
	if s.Inv.Cluster.Install == inventory.InstallBinaries {
		_, err := s.Bundle(ctx)
		return err
	}
	return nil
}

// connectChecking starts dialling hosts and checks the install source
// meanwhile (the folder's sums take a while); it returns once the source
// is checked, without waiting for the dials: the pool dials each host
// once and a step waits only for its own host's connection, so preflight
// starts on the first hosts up while the last ones still shake hands. A
// bad source stops the run before any host is changed, the dials cut
// short. end waits for the dials: call it before the session closes.
func (s *Session) connectChecking(ctx context.Context, hosts []string) (end func(), err error) {
	dialCtx, cancel := context.WithCancel(ctx)
	dialed := make(chan struct{})
	go func() {
		defer close(dialed)
		s.Connect(dialCtx, hosts)
	}()
	end = func() {
		cancel()
		<-dialed
	}
	if err := s.checkInstallSource(ctx); err != nil {
		end()
		return nil, err
	}
	return end, nil
}

// BinariesError is an install source fleet refuses (a folder file whose
// sum differs, a repository key that is not the pinned one): bad input,
// found before any host is changed.
type BinariesError struct {
	Field string // "" for cluster.binaries
	Err   error
}

func (e *BinariesError) Error() string {
	if e.Field == "" {
		return "cluster.binaries: " + e.Err.Error()
	}
	return e.Field + ": " + e.Err.Error()
}
func (e *BinariesError) Unwrap() error { return e.Err }

// runsSystemd reports what preflight saw of host: systemd runs it.
func (s *Session) runsSystemd(host string) bool {
	v, _ := s.systemd.Load(host)
	b, _ := v.(bool)
	return b
}

// Uploaded is how many bytes of binaries this session sent to hosts.
func (s *Session) Uploaded() int64 { return s.uploaded.Load() }

// seen hands what a check read to the run right after it on the same
// host, so the run does not ask the host again: on a busy host every
// remote command costs more than the bytes it moves.
type seen[T any] struct{ m sync.Map }

func (s *seen[T]) keep(host string, v T) { s.m.Store(host, v) }

// take returns what the check kept for host, once.
func (s *seen[T]) take(host string) (T, bool) {
	v, ok := s.m.LoadAndDelete(host)
	if !ok {
		var zero T
		return zero, false
	}
	return v.(T), true
}

// installProblems is what preflight finds wrong with a node that fleet is
// to prepare: a distribution or architecture it does not install for, a
// Kubernetes binary of another version already there, no container
// runtime and none in the folder.
// b is the binaries folder, nil for install: packages.
func installProblems(h *inventory.Host, f hostFacts, b *binaries.Bundle, version string) []string {
	if h.Role != inventory.RoleMaster && h.Role != inventory.RoleWorker {
		return nil
	}
	var problems []string
	if f.family == "" {
		problems = append(problems, fmt.Sprintf("%s (ID=%s) is not a distribution fleet prepares: Debian, Ubuntu, RHEL, Rocky, Alma or Fedora", f.distro, orUnknown(f.id)))
	}
	if arch := binaries.UnameArch(f.arch); b != nil && arch != b.Arch {
		problems = append(problems, fmt.Sprintf("the host is %s, the binaries of %s are for %s", f.arch, b.Dir, b.Arch))
	}
	for _, name := range []string{"kubeadm", "kubelet"} {
		if got := f.versions[name]; got != "" && version != "" && got != version {
			problems = append(problems, fmt.Sprintf("%s %s is installed, the inventory wants %s: fleet installs only where the version matches or none is; change versions with fleet upgrade, not by replacing binaries", name, got, version))
		}
	}
	if b == nil {
		slices.Sort(problems)
		return problems // the distribution's containerd comes with the packages
	}
	if _, ok := b.File("containerd"); !ok && !f.containerd {
		problems = append(problems, "containerd is not installed and "+b.Dir+" has none: add it to the folder (and SHA256SUMS) or install it")
	}
	slices.Sort(problems)
	return problems
}

// hostFacts is what installProblems needs of preflight's facts.
type hostFacts struct {
	distro, id, arch string
	family           string
	containerd       bool
	versions         map[string]string // kubeadm, kubelet -> installed version
}

// versionsScript prints version.NAME=... for the Kubernetes binaries a
// host has: from fleet's stamp when the file is the one fleet put there
// (same size and mtime), else by asking the binary.
var versionsScript = func() string {
	var b strings.Builder
	for _, name := range []string{"kubeadm", "kubelet"} {
		// The stamp is read with builtins: no process per line.
		fmt.Fprintf(&b, `if p=$(command -v %s); then
	s=$(stat -c '%%s %%Y' "$p"); v=
	while read -r _ size mtime path ver; do
		[ "$size $mtime" = "$s" ] && [ "$path" = "$p" ] && [ "$ver" != - ] && v=$ver
	done < %s 2>/dev/null
	[ -n "$v" ] || v=$(%s 2>/dev/null | head -n 1)
	echo "version.%s=$v"
fi
`, name, stampFile, `"$p" `+exec.Command(versionArgs(name)...), name)
	}
	return b.String()
}()

func parseVersions(out string) map[string]string {
	v := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, val, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && strings.HasPrefix(k, "version.") {
			name := strings.TrimPrefix(k, "version.")
			v[name] = parseVersion(name, val)
		}
	}
	return v
}

// addPrepare adds, when fleet installs the node software itself
// (cluster.install: binaries), the steps that make bare hosts nodes, after
// the gate; it returns the steps kubeadm must wait for.
func addPrepare(s *Session, g *steps.Graph, nodes []string) []string {
	if !s.Inv.Installs() {
		return nil
	}
	version := s.Inv.Cluster.KubernetesVersion
	kernel := "load overlay and br_netfilter, set forwarding and bridge sysctls, swap off; persisted"
	if s.Inv.Cluster.AllowSwap {
		kernel = "load overlay and br_netfilter, set forwarding and bridge sysctls; persisted (swap allowed: left as it is)"
	}
	g.MustAdd(s.step(steps.Step{Name: "prepare-kernel", Description: kernel,
		Hosts: nodes, After: []string{"gate"}}, &kernelPhase{allowSwap: s.Inv.Cluster.AllowSwap}))
	install := "prepare-binaries"
	if s.Inv.Cluster.Install == inventory.InstallPackages {
		install = "prepare-packages"
		g.MustAdd(s.step(steps.Step{Name: install, Description: "containerd from the distribution, kubeadm, kubelet and kubectl " + version + " from " + packageSources(s.Inv) + " (key pinned by fingerprint), held",
			Hosts: nodes, After: []string{"gate"}}, &packagesPhase{version: version}))
	} else {
		g.MustAdd(s.step(steps.Step{Name: install, Description: "upload the binaries folder (each sent once, its version checked, stamped), kubelet and containerd units",
			Hosts: nodes, After: []string{"gate"}}, &binariesPhase{step: install, version: version, kit: nodeKit(version)}))
	}
	g.MustAdd(s.step(steps.Step{Name: "prepare-runtime", Description: "containerd's config: SystemdCgroup, kubeadm's pause image, registry mirrors",
		Hosts: nodes, After: []string{install}}, &runtimePhase{version: version, mirrors: s.Inv.Cluster.RegistryMirrors}))
	return []string{"prepare-kernel", "prepare-runtime"}
}

// addPrepareCA adds, with install: binaries and a Linux CA host, the step
// that installs the folder's cfssl and cfssljson there; it returns the
// steps the CA host's service must wait for.
func addPrepareCA(s *Session, g *steps.Graph) []string {
	inv := s.Inv
	if inv.CA == nil || inv.Cluster.Install != inventory.InstallBinaries || inv.CA.OS == "illumos" {
		return nil
	}
	g.MustAdd(s.step(steps.Step{Name: "prepare-ca", Description: "the binaries folder's cfssl and cfssljson on the CA host (each sent once, stamped)",
		Hosts: []string{inv.CA.Name}, After: []string{"gate"}}, &binariesPhase{step: "prepare-ca", version: inv.Cluster.KubernetesVersion, kit: caKit}))
	return []string{"prepare-ca"}
}

// Prepare runs preflight and the prepare steps only: bare hosts become
// hosts kubeadm can run on (and the load balancer gets its nginx), and
// nothing joins a cluster.
func Prepare(ctx context.Context, s *Session, opts ApplyOptions) (*Report, error) {
	if !s.Inv.Installs() {
		return nil, fmt.Errorf("%s: cluster.install is %s: fleet prepares hosts with install: binaries or packages", s.Inv.Path, s.Inv.Cluster.Install)
	}
	if err := checkExclude(s.Inv, opts.Exclude); err != nil {
		return nil, err
	}
	nodes := without(append(namesWithRole(s.Inv, inventory.RoleMaster), namesWithRole(s.Inv, inventory.RoleWorker)...), opts.Exclude)
	hosts := append(s.Inv.LoadBalancerNames(), nodes...)
	if s.Inv.CA != nil {
		hosts = append(hosts, s.Inv.CA.Name)
	}
	end, err := s.connectChecking(ctx, hosts)
	if err != nil {
		return nil, err
	}
	defer end()
	g := steps.New()
	g.MustAdd(s.step(steps.Step{Name: "preflight", Description: "reach every host; check OS, architecture, installed versions, clock skew",
		Hosts: hosts, ReadOnly: true}, &preflightPhase{inv: s.Inv, maxSkew: opts.MaxClockSkew}))
	g.MustAdd(steps.Step{Name: "gate", Description: "stop here unless every host passed preflight",
		After: []string{"preflight"}, ReadOnly: true, Run: func(context.Context, string) error { return nil }})
	addPrepareLB(s, g)
	addPrepare(s, g, nodes)
	addPrepareCA(s, g)
	return locked(ctx, s, "prepare", func() (*Report, error) { return s.Run(ctx, g) })
}
