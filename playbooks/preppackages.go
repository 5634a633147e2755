package playbooks

import (
	"context"
	"fmt"
	"strings"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/nodeprep"
)

// packagesPhase installs containerd from the distribution's packages and
// kubeadm, kubelet and kubectl from the Kubernetes repository at exactly
// the cluster's version, and holds those three so an unattended upgrade
// cannot move them. apt only: preflight refuses other package managers.
type packagesPhase struct {
	version string // v1.34.4
	repo    string // the repository's URL, ending in /
	seen    seen[packagesState]
}

// Where the repository is configured on a host: its key by signed-by, so
// it vouches for this repository only.
const (
	aptKeyFile  = "/etc/apt/keyrings/fleet-kubernetes.asc"
	aptListFile = "/etc/apt/sources.list.d/fleet-kubernetes.list"
)

// kubePackages are held at the cluster's version; containerd is not (the
// distribution's security updates should reach it).
var kubePackages = []string{"kubeadm", "kubelet", "kubectl"}

const runtimePackage = "containerd"

func aptList(repo string) string {
	return "# written by fleet: the Kubernetes packages of this cluster's minor\ndeb [signed-by=" + aptKeyFile + "] " + repo + " /\n"
}

// packagesState is what dpkg and apt-mark say, and fleet's two files.
type packagesState struct {
	installed map[string]string // package -> version, installed ones only
	held      map[string]bool
	files     map[string][]byte
}

// packagesStateScript prints "<package> <version> <status>" per package
// dpkg knows of, a marker, then the held packages.
var packagesStateScript = exec.Command(append([]string{"dpkg-query", "-W", "-f", "${Package} ${Version} ${db:Status-Abbrev}\\n"},
	append(append([]string{}, kubePackages...), runtimePackage)...)...) + " 2>/dev/null\necho " + heldMarker + "\napt-mark showhold 2>/dev/null; :"

const heldMarker = "--- held ---"

// packagesRead is the packages check's question.
var packagesRead = hostRead{packagesStateScript, []string{aptKeyFile, aptListFile}}

func readPackagesState(ctx context.Context, p probe, host string) (packagesState, error) {
	out, files, err := p.queryWithFiles(ctx, host, packagesRead.script, packagesRead.files...)
	if err != nil {
		return packagesState{}, err
	}
	return parsePackagesState(out, files)
}

// parsePackagesState reads packagesStateScript's answer.
func parsePackagesState(out string, files map[string][]byte) (packagesState, error) {
	installed, held, ok := strings.Cut(out, heldMarker+"\n")
	if !ok {
		return packagesState{}, fmt.Errorf("unexpected answer %q", out)
	}
	st := packagesState{installed: map[string]string{}, held: map[string]bool{}, files: files}
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

// aptSourceFiles are the repository's files (its key, its list) that the
// host lacks or has otherwise.
func aptSourceFiles(st packagesState, key []byte, repo string) []remoteFile {
	var files []remoteFile
	if string(st.files[aptKeyFile]) != string(key) {
		files = append(files, remoteFile{aptKeyFile, key, 0o644})
	}
	if string(st.files[aptListFile]) != aptList(repo) {
		files = append(files, remoteFile{aptListFile, []byte(aptList(repo)), 0o644})
	}
	return files
}

// packagesTodo lists what is left to do, in the order run does it.
func packagesTodo(st packagesState, key []byte, repo, version string) []string {
	var todo []string
	for _, f := range aptSourceFiles(st, key, repo) {
		todo = append(todo, "write "+f.path)
	}
	for _, name := range kubePackages {
		if !strings.HasPrefix(st.installed[name], debVersion(version)) {
			todo = append(todo, "install "+name+" "+strings.TrimSuffix(debVersion(version), "-"))
		}
	}
	if _, ok := st.installed[runtimePackage]; !ok {
		todo = append(todo, "install "+runtimePackage)
	}
	for _, name := range kubePackages {
		if !st.held[name] {
			todo = append(todo, "hold "+name)
		}
	}
	return todo
}

func (p *packagesPhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	key, err := pr.s.PackageKey(ctx)
	if err != nil {
		return false, "", err
	}
	st, ok := pr.s.prep.packages.take(host)
	if !ok {
		if st, err = readPackagesState(ctx, pr, host); err != nil {
			return false, "", err
		}
	}
	p.seen.keep(host, st)
	if todo := packagesTodo(st, key, p.repo, p.version); len(todo) > 0 {
		return false, strings.Join(todo, "; "), nil
	}
	return true, fmt.Sprintf("kubeadm, kubelet, kubectl %s installed from %s and held; containerd %s", st.installed["kubeadm"], p.repo, st.installed[runtimePackage]), nil
}

// installScript updates the package lists, picks the repository's
// revision of the version for each Kubernetes package (1.34.4-1.1), and
// installs them with containerd. $1 is the Debian version prefix, then
// the packages to install.
const installScript = `set -e
export DEBIAN_FRONTEND=noninteractive
want=$1; shift
apt-get -q update >/dev/null
args=
for p; do
	case $p in
	kube*)
		v=$(apt-cache madison "$p" | awk -F'|' -v want="$want" '{gsub(/ /, "", $2); if (index($2, want) == 1) {print $2; exit}}')
		[ -n "$v" ] || { echo "the repository has no $p $want*" >&2; exit 1; }
		args="$args $p=$v";;
	*) args="$args $p";;
	esac
done
apt-get -q install -y --no-install-recommends $args`

func (p *packagesPhase) run(ctx context.Context, r remote, host string) error {
	// Installing containerd's package may write its config: the runtime
	// check must look again.
	r.s.prep.runtime.take(host)
	key, err := r.s.PackageKey(ctx)
	if err != nil {
		return err
	}
	st, ok := p.seen.take(host)
	if !ok {
		if st, err = readPackagesState(ctx, r.probe, host); err != nil {
			return err
		}
	}
	if err := r.uploadAll(ctx, host, aptSourceFiles(st, key, p.repo)); err != nil {
		return err
	}
	var install []string
	for _, name := range kubePackages {
		if !strings.HasPrefix(st.installed[name], debVersion(p.version)) {
			install = append(install, name)
		}
	}
	if _, ok := st.installed[runtimePackage]; !ok {
		install = append(install, runtimePackage)
	}
	var script []string
	if len(install) > 0 {
		script = append(script, exec.Command(append([]string{"sh", "-c", installScript, "fleet-install", debVersion(p.version)}, install...)...))
	}
	var unheld []string
	for _, name := range kubePackages {
		if !st.held[name] {
			unheld = append(unheld, name)
		}
	}
	if len(unheld) > 0 {
		script = append(script, exec.Command(append([]string{"apt-mark", "hold"}, unheld...)...)+" >/dev/null")
	}
	if len(script) == 0 {
		return nil
	}
	if _, err := r.run(ctx, host, strings.Join(script, " && ")); err != nil {
		return fmt.Errorf("apt: %w", err)
	}
	return nil
}

// packagesFamilyProblem is what preflight says of a distribution whose
// package manager install: packages does not drive yet.
func packagesFamilyProblem(family string) string {
	if family == nodeprep.FamilyRHEL {
		return "install: packages drives apt only so far; for this dnf host use install: binaries"
	}
	return ""
}
