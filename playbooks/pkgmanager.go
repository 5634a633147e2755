package playbooks

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/nodeprep"
	"github.com/fleetops/fleet/inventory"
)

// packageManager is how install: packages works on a host's distribution
// family: apt on Debian and Ubuntu, dnf on RHEL, Rocky, Alma and Fedora.
// Both install the same packages from the Kubernetes project's repository
// of the cluster's minor (or a site's mirror of it), whose key fleet pins
// by fingerprint and writes on the host for that repository only, and
// both hold the Kubernetes packages so an unattended upgrade cannot move
// them.
type packageManager struct {
	name       string // apt, dnf
	repo       string // the repository's URL, ending in /
	keyURL     string // where the repository serves its key
	keyFile    string // the pinned key on the host
	sourceFile string // the repository's definition on the host
	source     string // its content
	// installScript installs the packages after $1, the version prefix
	// (1.34.4-): the Kubernetes ones at the repository's revision of it.
	installScript string
	// plainInstallScript installs "$@" as the distribution's sources have
	// them (the load balancer's packages).
	plainInstallScript string
	// installedQuery, with package names after it, prints "<name> <status>"
	// per package, the status's second letter i when it is installed
	// (dpkg's "ii"; rpm prints "-i" for it).
	installedQuery []string
	hold, unhold   []string // commands that take the package names after them
}

// Where the repositories are configured on a host.
const (
	aptKeyFile      = "/etc/apt/keyrings/fleet-kubernetes.asc"
	aptListFile     = "/etc/apt/sources.list.d/fleet-kubernetes.list"
	dnfKeyFile      = "/etc/pki/rpm-gpg/fleet-kubernetes.asc"
	dnfRepoFile     = "/etc/yum.repos.d/fleet-kubernetes.repo"
	versionlockList = "/etc/dnf/plugins/versionlock.list" // dnf's holds
	// versionlockConf is there when dnf's versionlock plugin is: its
	// package is not on a minimal RHEL-family host.
	versionlockConf   = "/etc/dnf/plugins/versionlock.conf"
	versionlockPlugin = "python3-dnf-plugin-versionlock"
)

// managerFor is the package manager of a distribution family
// (nodeprep.FamilyDebian or FamilyRHEL).
func managerFor(inv *inventory.Inventory, family string) packageManager {
	if family == nodeprep.FamilyRHEL {
		repo := inv.RPMPackageRepository()
		return packageManager{
			name: "dnf", repo: repo, keyURL: repo + "repodata/repomd.xml.key",
			keyFile: dnfKeyFile, sourceFile: dnfRepoFile, source: dnfRepo(repo),
			installScript: dnfInstallScript, plainInstallScript: `dnf -y -q install "$@"`,
			installedQuery: []string{"rpm", "-q", "--qf", "%{NAME} -i\\n"},
			hold:           []string{"dnf", "-q", "versionlock", "add"},
			unhold:         []string{"dnf", "-q", "versionlock", "delete"},
		}
	}
	repo := inv.PackageRepository()
	return packageManager{
		name: "apt", repo: repo, keyURL: repo + "Release.key",
		keyFile: aptKeyFile, sourceFile: aptListFile, source: aptList(repo),
		installScript: aptInstallScript, plainInstallScript: aptPlainInstallScript,
		installedQuery: []string{"dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\\n"},
		hold:           []string{"apt-mark", "hold"},
		unhold:         []string{"apt-mark", "unhold"},
	}
}

// aptPlainInstallScript installs "$@" from the distribution's sources.
const aptPlainInstallScript = `set -e
export DEBIAN_FRONTEND=noninteractive
apt-get -q update >/dev/null
apt-get -q install -y --no-install-recommends "$@"`

func aptList(repo string) string {
	return "# written by fleet: the Kubernetes packages of this cluster's minor\ndeb [signed-by=" + aptKeyFile + "] " + repo + " /\n"
}

// dnfRepo checks the packages' signatures and the repository's metadata
// signature (repo_gpgcheck) against the pinned key only.
func dnfRepo(repo string) string {
	return "# written by fleet: the Kubernetes packages of this cluster's minor\n[fleet-kubernetes]\nname=Kubernetes\nbaseurl=" + repo +
		"\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file://" + dnfKeyFile + "\n"
}

// aptInstallScript updates the package lists, picks the repository's
// revision of the version for each Kubernetes package (1.34.4-1.1), and
// installs them with the others.
const aptInstallScript = `set -e
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

// dnfInstallScript asks dnf for name-version of each Kubernetes package
// (kubeadm-1.34.4: the repository's newest revision of it).
const dnfInstallScript = `set -e
want=${1%-}; shift
args=
for p; do
	case $p in
	kube*) args="$args $p-$want";;
	*) args="$args $p";;
	esac
done
dnf -y -q install $args`

// sourceFiles are the repository's files (its key, its definition) that
// the host lacks or has otherwise.
func (m packageManager) sourceFiles(st packagesState, key []byte) []remoteFile {
	var files []remoteFile
	if string(st.files[m.keyFile]) != string(key) {
		files = append(files, remoteFile{m.keyFile, key, 0o644})
	}
	if string(st.files[m.sourceFile]) != m.source {
		files = append(files, remoteFile{m.sourceFile, []byte(m.source), 0o644})
	}
	return files
}

// tools are the packages the manager itself needs before it can hold:
// dnf's versionlock plugin.
func (m packageManager) tools(st packagesState) []string {
	if m.name == "dnf" && st.files[versionlockConf] == nil {
		return []string{versionlockPlugin}
	}
	return nil
}

func (m packageManager) installCommand(version string, packages []string) string {
	return exec.Command(append([]string{"sh", "-c", m.installScript, "fleet-install", debVersion(version)}, packages...)...)
}

func (m packageManager) holdCommand(names []string) string {
	return exec.Command(append(append([]string{}, m.hold...), names...)...) + " >/dev/null"
}

func (m packageManager) unholdCommand(names []string) string {
	return exec.Command(append(append([]string{}, m.unhold...), names...)...) + " >/dev/null"
}

// packageSources names the repositories of install: packages, for a
// step's description.
func packageSources(inv *inventory.Inventory) string {
	return inv.PackageRepository() + " (apt) or " + inv.RPMPackageRepository() + " (dnf)"
}

// packagesOn is what a packages step reads before it judges or acts on
// host: its package manager, the repository's pinned key and the host's
// package state, the one kept (by preflight, or by the step's check) if
// there is one, else (or with kept nil) read now.
func packagesOn(ctx context.Context, p probe, host string, kept *seen[packagesState]) (packageManager, []byte, packagesState, error) {
	m, err := p.s.managerOf(host)
	if err != nil {
		return packageManager{}, nil, packagesState{}, err
	}
	key, err := p.s.PackageKey(ctx, m)
	if err != nil {
		return packageManager{}, nil, packagesState{}, err
	}
	if kept != nil {
		if st, ok := kept.take(host); ok {
			return m, key, st, nil
		}
	}
	st, err := readPackagesState(ctx, p, host, m)
	return m, key, st, err
}

// change writes the repository files the host lacks, then runs the
// commands in one remote command.
func (m packageManager) change(ctx context.Context, r remote, host string, files []remoteFile, commands []string) error {
	if err := r.uploadAll(ctx, host, files); err != nil {
		return err
	}
	if len(commands) == 0 {
		return nil
	}
	if _, err := r.run(ctx, host, strings.Join(commands, " && ")); err != nil {
		return fmt.Errorf("%s: %w", m.name, err)
	}
	return nil
}

// managerOf is the package manager of host, by the family preflight read.
func (s *Session) managerOf(host string) (packageManager, error) {
	family, ok := s.family.Load(host)
	if !ok || family.(string) == "" {
		return packageManager{}, fmt.Errorf("%s: no distribution family known (preflight did not read it)", host)
	}
	return managerFor(s.Inv, family.(string)), nil
}

// packageKeys fetches each repository's signing key once per run and
// checks it against the pinned fingerprint.
type packageKeys struct {
	mu    sync.Mutex
	byURL map[string]*packageKey
}

type packageKey struct {
	once sync.Once
	key  []byte
	err  error
}

// PackageKey is the signing key of m's repository, checked against the
// pinned fingerprint: the inventory's key file, or the key the repository
// serves.
func (s *Session) PackageKey(ctx context.Context, m packageManager) ([]byte, error) {
	from := m.keyURL
	if p := s.Inv.Cluster.Packages; p != nil && p.Key != "" {
		from = p.Key
	}
	s.pkgKeys.mu.Lock()
	if s.pkgKeys.byURL == nil {
		s.pkgKeys.byURL = map[string]*packageKey{}
	}
	k := s.pkgKeys.byURL[from]
	if k == nil {
		k = &packageKey{}
		s.pkgKeys.byURL[from] = k
	}
	s.pkgKeys.mu.Unlock()
	k.once.Do(func() {
		var data []byte
		if from == m.keyURL {
			data, k.err = fetch(ctx, http.DefaultClient, from, 1<<20)
		} else {
			data, k.err = readLimited(from, 1<<20)
		}
		if k.err == nil {
			k.key, k.err = nodeprep.PinnedKey(data, s.Inv.PackageKeyFingerprint())
		}
		if k.err != nil {
			k.err = &BinariesError{Field: "cluster.packages", Err: fmt.Errorf("signing key %s: %w", from, k.err)}
		}
	})
	return k.key, k.err
}

// holdsOf reads dnf's versionlock list: a package is held when a line
// locks name-[epoch:]version.
func holdsOf(list []byte) map[string]bool {
	held := map[string]bool{}
	for _, line := range strings.Split(string(list), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == '!' {
			continue
		}
		for _, name := range append(append([]string{}, kubePackages...), runtimePackage) {
			if rest, ok := strings.CutPrefix(line, name+"-"); ok && rest != "" && rest[0] >= '0' && rest[0] <= '9' {
				held[name] = true
			}
		}
	}
	return held
}
