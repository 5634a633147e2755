package playbooks

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/fleetops/fleet/internal/exec"
)

// packagesPhase installs containerd from the distribution's packages and
// kubeadm, kubelet and kubectl from the Kubernetes repository at exactly
// the cluster's version, and holds those three so an unattended upgrade
// cannot move them: with apt or dnf, by the host's family.
type packagesPhase struct {
	version string // v1.34.4
	seen    seen[packagesState]
}

// kubePackages are held at the cluster's version; containerd is not (the
// distribution's security updates should reach it).
var kubePackages = []string{"kubeadm", "kubelet", "kubectl"}

const runtimePackage = "containerd"

// packagesState is what the package manager says, and the repository
// files of both managers.
type packagesState struct {
	installed map[string]string // package -> version, installed ones only
	held      map[string]bool
	files     map[string][]byte
}

// packagesStateScript prints, for apt, "<package> <version> <status>" per
// package dpkg knows of, a marker, then the held packages; then a marker
// and, for dnf, "<package> <version-release>" per installed package (what
// provides containerd: Docker's is containerd.io). A host answers the part
// of its manager; dnf's holds are a file.
var packagesStateScript = exec.Command(append([]string{"dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\\n"},
	append(append([]string{}, kubePackages...), runtimePackage)...)...) + " 2>/dev/null\necho " + heldMarker + "\napt-mark showhold 2>/dev/null\necho " + rpmMarker + "\n" +
	exec.Command(append([]string{"rpm", "-q", "--whatprovides", "--qf", "%{NAME} %{VERSION}-%{RELEASE}\\n"}, append(append([]string{}, kubePackages...), runtimePackage)...)...) + " 2>/dev/null; :"

const (
	heldMarker = "--- held ---"
	rpmMarker  = "--- rpm ---"
)

// packagesRead is the packages check's question.
var packagesRead = hostRead{packagesStateScript, []string{aptKeyFile, aptListFile, dnfKeyFile, dnfRepoFile, versionlockList, versionlockConf}}

func readPackagesState(ctx context.Context, p probe, host string, m packageManager) (packagesState, error) {
	out, files, err := p.queryWithFiles(ctx, host, packagesRead.script, packagesRead.files...)
	if err != nil {
		return packagesState{}, err
	}
	return parsePackagesState(out, files, m.name)
}

// parsePackagesState reads packagesStateScript's answer for manager (apt,
// dnf).
func parsePackagesState(out string, files map[string][]byte, manager string) (packagesState, error) {
	apt, rpm, ok := strings.Cut(out, rpmMarker+"\n")
	installed, held, ok2 := strings.Cut(apt, heldMarker+"\n")
	if !ok || !ok2 {
		return packagesState{}, fmt.Errorf("unexpected answer %q", out)
	}
	st := packagesState{installed: map[string]string{}, held: map[string]bool{}, files: files}
	if manager == "dnf" {
		for _, line := range strings.Split(rpm, "\n") {
			// "no package provides kubeadm" has more fields.
			if f := strings.Fields(line); len(f) == 2 {
				st.installed[strings.TrimSuffix(f[0], ".io")] = f[1]
			}
		}
		st.held = holdsOf(files[versionlockList])
		return st, nil
	}
	for _, line := range strings.Split(installed, "\n") {
		// "kubeadm 1.34.4-1.1 hi ": the second letter of the status is
		// the package's state, i for installed (the first is what is
		// wanted: i install, h hold).
		if f := strings.Fields(line); len(f) >= 3 && len(f[2]) >= 2 && f[2][1] == 'i' {
			st.installed[f[0]] = f[1]
		}
	}
	for _, name := range strings.Fields(held) {
		st.held[name] = true
	}
	return st, nil
}

// debVersion is the Debian version prefix of a Kubernetes version:
// v1.34.4 -> "1.34.4-" (the repository's revisions follow: 1.34.4-1.1).
func debVersion(version string) string { return strings.TrimPrefix(version, "v") + "-" }

// packagesWork is what is left on a host: the packages to install (the
// manager's own tools, the Kubernetes ones not at the version, containerd
// when nothing provides it) and the Kubernetes ones to hold.
func packagesWork(st packagesState, m packageManager, version string) (install, hold []string) {
	install = m.tools(st)
	for _, name := range kubePackages {
		if !strings.HasPrefix(st.installed[name], debVersion(version)) {
			install = append(install, name)
		}
	}
	if _, ok := st.installed[runtimePackage]; !ok {
		install = append(install, runtimePackage)
	}
	for _, name := range kubePackages {
		if !st.held[name] {
			hold = append(hold, name)
		}
	}
	return install, hold
}

// packagesTodo lists what is left to do, in the order run does it.
func packagesTodo(st packagesState, m packageManager, key []byte, version string) []string {
	var todo []string
	for _, f := range m.sourceFiles(st, key) {
		todo = append(todo, "write "+f.path)
	}
	install, hold := packagesWork(st, m, version)
	for _, name := range install {
		if slices.Contains(kubePackages, name) {
			name += " " + strings.TrimSuffix(debVersion(version), "-")
		}
		todo = append(todo, "install "+name)
	}
	for _, name := range hold {
		todo = append(todo, "hold "+name)
	}
	return todo
}

func (p *packagesPhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	m, key, st, err := packagesOn(ctx, pr, host, &pr.s.prep.packages)
	if err != nil {
		return false, "", err
	}
	p.seen.keep(host, st)
	if todo := packagesTodo(st, m, key, p.version); len(todo) > 0 {
		return false, strings.Join(todo, "; "), nil
	}
	return true, fmt.Sprintf("kubeadm, kubelet, kubectl %s installed from %s and held; containerd %s", st.installed["kubeadm"], m.repo, st.installed[runtimePackage]), nil
}

func (p *packagesPhase) run(ctx context.Context, r remote, host string) error {
	// Installing containerd's package may write its config: the runtime
	// check must look again.
	r.s.prep.runtime.take(host)
	m, key, st, err := packagesOn(ctx, r.probe, host, &p.seen)
	if err != nil {
		return err
	}
	install, hold := packagesWork(st, m, p.version)
	var commands []string
	if len(install) > 0 {
		commands = append(commands, m.installCommand(p.version, install))
	}
	if len(hold) > 0 {
		commands = append(commands, m.holdCommand(hold))
	}
	return m.change(ctx, r, host, m.sourceFiles(st, key), commands)
}
