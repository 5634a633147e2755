package playbooks

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetops/fleet/internal/binaries"
	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/nodeprep"
)

// binariesPhase puts the folder's binaries where packages would, and
// writes the units that start them: a node's (nodeKit), or the CA host's
// cfssl (caKit).
type binariesPhase struct {
	step    string // for the upload notes
	version string // cluster.kubernetesVersion: what kubeadm, kubelet and kubectl must say
	kit     func(*binaries.Bundle) binaryKit
	seen    seen[binariesState]
}

// binaryKit is what one kind of host gets of the folder: files, and the
// units that start them.
type binaryKit struct {
	what  string // for the check's answer: "binaries of v1.34.4"
	files []binaries.File
	units []remoteFile
	// only, when set, names the files of files this kit installs; the
	// others stay as they are (an upgrade replaces kubeadm before the
	// kubelet, each at its moment).
	only []string
}

// installs says whether the kit installs f.
func (k binaryKit) installs(f binaries.File) bool {
	return k.only == nil || slices.Contains(k.only, f.Name)
}

// nodeKit is a master's or worker's: Kubernetes, the runtime, their units.
func nodeKit(version string) func(*binaries.Bundle) binaryKit {
	return func(b *binaries.Bundle) binaryKit {
		return binaryKit{what: "binaries of " + version, files: b.NodeFiles(), units: units(b)}
	}
}

// caKit is the CA host's: cfssl and cfssljson (the cfssl step writes the
// service).
func caKit(b *binaries.Bundle) binaryKit {
	return binaryKit{what: "cfssl binaries", files: b.CAFiles()}
}

// stampFile records, per installed binary, its sum, what stat said of it
// just after, and its version: a later run that sees the same size and
// mtime trusts them without reading the file or starting it (hashing
// 200 MB and starting three large programs per host would make a
// no-change apply slow).
const stampFile = "/var/lib/fleet/binaries.sha256"

// stamp is one stampFile line: "<sha256> <size> <mtime> <path> <version|->".
type stamp struct {
	sum         string
	size, mtime int64
	version     string // "" for a binary without one (containerd)
}

func parseStamps(data string) map[string]stamp {
	st := map[string]stamp{}
	for _, line := range strings.Split(data, "\n") {
		f := strings.Fields(line)
		if len(f) != 5 {
			continue
		}
		size, err1 := strconv.ParseInt(f[1], 10, 64)
		mtime, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 == nil && err2 == nil {
			st[f[3]] = stamp{f[0], size, mtime, strings.TrimPrefix(f[4], "-")}
		}
	}
	return st
}

// binariesStateScript prints "<size> <mtime> <path>" for each destination
// ($@) that exists.
const binariesStateScript = `stat -c '%s %Y %n' "$@" 2>/dev/null; :`

// binariesState is what a host has of the folder.
type binariesState struct {
	stat   map[string]stamp // path -> size and mtime now
	stamps map[string]stamp // path -> what fleet recorded
	units  map[string][]byte
}

// binariesRead is the binaries check's question: each destination's size
// and mtime, fleet's stamp and the units.
func binariesRead(kit binaryKit) hostRead {
	args := []string{"sh", "-c", binariesStateScript, "fleet-stat"}
	for _, f := range kit.files {
		args = append(args, f.Dest)
	}
	files := []string{stampFile}
	for _, u := range kit.units {
		files = append(files, u.path)
	}
	return hostRead{exec.Command(args...), files}
}

func readBinariesState(ctx context.Context, p probe, host string, kit binaryKit) (binariesState, error) {
	read := binariesRead(kit)
	stats, files, err := p.queryWithFiles(ctx, host, read.script, read.files...)
	if err != nil {
		return binariesState{}, err
	}
	return parseBinariesState(stats, files), nil
}

// parseBinariesState reads binariesRead's answer; files may hold more
// than it asked for (units are compared by path).
func parseBinariesState(stats string, files map[string][]byte) binariesState {
	st := binariesState{stat: map[string]stamp{}}
	for _, line := range strings.Split(strings.TrimSpace(stats), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			size, _ := strconv.ParseInt(f[0], 10, 64)
			mtime, _ := strconv.ParseInt(f[1], 10, 64)
			st.stat[f[2]] = stamp{size: size, mtime: mtime}
		}
	}
	st.stamps = parseStamps(string(files[stampFile]))
	st.units = files
	return st
}

// installed reports whether the host has f as fleet put it there.
func (st binariesState) installed(f binaries.File) bool {
	now, ok := st.stat[f.Dest]
	rec := st.stamps[f.Dest]
	return ok && rec.sum == f.SHA256 && rec.size == now.size && rec.mtime == now.mtime
}

// units are the systemd files that go with the folder's binaries.
func units(b *binaries.Bundle) []remoteFile {
	files := []remoteFile{
		{nodeprep.KubeletUnitFile, []byte(nodeprep.KubeletUnit), 0o644},
		{nodeprep.KubeadmDropIn, []byte(nodeprep.KubeadmDropInConf), 0o644},
	}
	if _, ok := b.File("containerd"); ok {
		files = append(files, remoteFile{nodeprep.ContainerdUnitFile, []byte(nodeprep.ContainerdUnit), 0o644})
	}
	return files
}

// binariesTodo lists the files the host lacks, and the units that differ.
func binariesTodo(st binariesState, kit binaryKit) (missing []binaries.File, staleUnits []remoteFile) {
	for _, f := range kit.files {
		if !st.installed(f) && kit.installs(f) {
			missing = append(missing, f)
		}
	}
	for _, u := range kit.units {
		if string(st.units[u.path]) != string(u.data) {
			staleUnits = append(staleUnits, u)
		}
	}
	return missing, staleUnits
}

func (p *binariesPhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	b, err := pr.s.Bundle(ctx)
	if err != nil {
		return false, "", err
	}
	kit := p.kit(b)
	st, ok := pr.s.prep.binaries.take(host)
	if !ok {
		if st, err = readBinariesState(ctx, pr, host, kit); err != nil {
			return false, "", err
		}
	}
	p.seen.keep(host, st)
	if len(kit.files) == 0 {
		return true, "the binaries folder has no " + kit.what + ": the host's own are used", nil
	}
	missing, stale := binariesTodo(st, kit)
	if len(missing)+len(stale) == 0 {
		n := len(kit.files)
		if kit.only != nil {
			n = len(kit.only)
		}
		if len(kit.units) == 0 {
			return true, fmt.Sprintf("%d %s installed with their sums", n, kit.what), nil
		}
		return true, fmt.Sprintf("%d %s installed with their sums, units written", n, kit.what), nil
	}
	var todo []string
	var size int64
	for _, f := range missing {
		todo = append(todo, f.Name)
		size += f.Size
	}
	for _, u := range stale {
		todo = append(todo, u.path)
	}
	return false, fmt.Sprintf("install %s (up to %s to send)", strings.Join(todo, ", "), megabytes(size)), nil
}

// The run costs a fixed number of round trips whatever the folder holds:
// on a busy network each one counts more than the bytes.
func (p *binariesPhase) run(ctx context.Context, r remote, host string) error {
	b, err := r.s.Bundle(ctx)
	if err != nil {
		return err
	}
	kit := p.kit(b)
	st, ok := p.seen.take(host)
	if !ok {
		if st, err = readBinariesState(ctx, r.probe, host, kit); err != nil {
			return err
		}
	}
	missing, stale := binariesTodo(st, kit)
	// Units first: the finish, which makes the binaries live, enables them.
	if len(stale) > 0 {
		if err := r.uploadAll(ctx, host, stale); err != nil {
			return err
		}
	}
	enable := ""
	if len(kit.units) > 0 && r.s.runsSystemd(host) {
		// A host run by another init starts its services its own way,
		// from the same binaries.
		enable = "systemctl daemon-reload && " + exec.Command("systemctl", "enable", "kubelet")
		if _, ok := b.File("containerd"); ok {
			enable += " && " + exec.Command("systemctl", "enable", "--now", "containerd")
		}
	}
	if len(missing) > 0 {
		return p.install(ctx, r, host, kit, st, missing, enable)
	}
	if enable != "" {
		_, err = r.run(ctx, host, enable)
	}
	return err
}

// install sends the missing files the host does not have already (one
// there with the same sum, put by hand, is kept), asks each Kubernetes
// binary its version before it goes live, and then moves them all into
// place and records the stamp in one command.
func (p *binariesPhase) install(ctx context.Context, r remote, host string, kit binaryKit, st binariesState, missing []binaries.File, enable string) error {
	there, err := sumsOnHost(ctx, r, host, st, missing)
	if err != nil {
		return err
	}
	conn, err := r.s.Conn(ctx, host)
	if err != nil {
		return err
	}
	var sent int64
	began := time.Now()
	staged := map[string]string{} // dest -> the path the file waits at
	// Each Kubernetes binary is asked its version as soon as it is on the
	// host, while the next one is sent.
	asks := map[string]*versionAsk{}
	defer func() {
		for _, a := range asks {
			<-a.done
		}
	}()
	ask := func(f binaries.File, path string) {
		if versionArgs(f.Name) == nil {
			return
		}
		a := &versionAsk{done: make(chan struct{})}
		asks[f.Dest] = a
		go func() {
			defer close(a.done)
			a.version, a.err = r.s.binaryVersion(ctx, host, f, path)
		}()
	}
	for _, f := range missing {
		if there[f.Dest] == f.SHA256 {
			staged[f.Dest] = f.Dest
			ask(f, f.Dest)
			continue
		}
		if err := r.ensureDir(ctx, host, dirOf(f.Dest), 0o755); err != nil {
			return err
		}
		n, err := upload(ctx, r.s, conn, f, f.Dest+".fleet-new")
		sent += n
		if err != nil {
			return fmt.Errorf("send %s: %w", f.Name, err)
		}
		staged[f.Dest] = f.Dest + ".fleet-new"
		ask(f, staged[f.Dest])
	}
	if sent > 0 {
		took := time.Since(began)
		r.note(p.step, host, fmt.Sprintf("sent %s in %s (%s/s)", megabytes(sent), took.Round(time.Millisecond),
			megabytes(int64(float64(sent)/max(took.Seconds(), 0.001)))))
	}
	versions := map[string]string{}
	for _, f := range missing {
		a, ok := asks[f.Dest]
		if !ok {
			continue
		}
		<-a.done
		if a.err != nil {
			return a.err
		}
		if a.version != p.version {
			r.run(ctx, host, exec.Command(append([]string{"rm", "-f"}, stagedOnly(staged)...)...))
			return fmt.Errorf("%s of %s is %s, the inventory's kubernetesVersion is %s", f.Name, f.Path, orUnknown(a.version), p.version)
		}
		versions[f.Dest] = a.version
	}
	// Move, stamp every file of the folder with its stat now, enable.
	script := finishScript
	if enable != "" {
		script += "\n" + enable
	}
	args := []string{"sh", "-c", script, "fleet-finish"}
	for _, f := range kit.files {
		if from, moving := staged[f.Dest]; moving {
			args = append(args, from, f.Dest, f.SHA256, orDash(versions[f.Dest]))
			continue
		}
		// Not moved: its stamp stays what it was, if it still holds (a
		// file the kit leaves alone keeps its own sum and version).
		rec, now := st.stamps[f.Dest], st.stat[f.Dest]
		if rec.sum != "" && rec.size == now.size && rec.mtime == now.mtime {
			args = append(args, "-", f.Dest, rec.sum, orDash(rec.version))
		}
	}
	_, err = r.run(ctx, host, exec.Command(args...))
	return err
}

// finishScript takes quadruples "<staged|-> <dest> <sha256> <version|->":
// every staged file is moved over its destination, then the stamp is
// written (atomically) for every destination that exists.
const finishScript = `set -e
mkdir -p /var/lib/fleet
t=$(mktemp /var/lib/fleet/.binaries.XXXXXX)
trap 'rm -f "$t"' EXIT
while [ $# -ge 4 ]; do
	if [ "$1" != - ] && [ "$1" != "$2" ]; then mv -f "$1" "$2"; fi
	if [ -e "$2" ]; then echo "$3 $(stat -c '%s %Y' "$2") $2 $4" >> "$t"; fi
	shift 4
done
chmod 644 "$t"
mv -f "$t" ` + stampFile + `
trap - EXIT`

// sumsOnHost hashes, on the host, the missing files' destinations that
// exist: a host prepared by hand keeps a file that is already right.
func sumsOnHost(ctx context.Context, r remote, host string, st binariesState, missing []binaries.File) (map[string]string, error) {
	var present []string
	for _, f := range missing {
		if _, ok := st.stat[f.Dest]; ok {
			present = append(present, f.Dest)
		}
	}
	sums := map[string]string{}
	if len(present) == 0 {
		return sums, nil
	}
	res, err := r.run(ctx, host, exec.Command(append([]string{"sha256sum"}, present...)...))
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(strings.TrimSpace(res.Stdout), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			sums[f[1]] = f[0]
		}
	}
	return sums, nil
}

// upload sends f to path on the host, counting the bytes as they go.
func upload(ctx context.Context, s *Session, conn *exec.Conn, f binaries.File, path string) (int64, error) {
	src, err := os.Open(f.Path)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	var sent atomic.Int64
	err = conn.UploadFrom(ctx, path, src, f.Size, 0o755, func(n int) { sent.Add(int64(n)); s.uploaded.Add(int64(n)) })
	return sent.Load(), err
}

// versionOnce is one binary's version, asked on the first host that has
// it: every host gets the same bytes (the same sum), so one answer holds
// for all, and the other hosts are spared starting a large program. A
// failed ask is not kept: the next host asks on its own (one lost host
// must not fail the others).
type versionOnce struct {
	mu      sync.Mutex
	version string
	asked   bool
}

// binaryVersion is the version of f, at path on host (asked there only if
// no host of this run has been answered yet).
// kubeadm is asked in the same command for the pause image of the
// cluster's version, which containerd's config names (prepare-runtime).
func (s *Session) binaryVersion(ctx context.Context, host string, f binaries.File, path string) (string, error) {
	v, _ := s.versions.LoadOrStore(f.SHA256, &versionOnce{})
	vo := v.(*versionOnce)
	vo.mu.Lock() // the others wait for the first answer
	defer vo.mu.Unlock()
	if vo.asked {
		return vo.version, nil
	}
	cmd := versionCommand(f.Name, path)
	if f.Name == "kubeadm" {
		cmd += " && " + exec.Command(path, "config", "images", "list", "--kubernetes-version", s.Inv.Cluster.KubernetesVersion)
	}
	res, err := s.run(ctx, host, cmd)
	if err != nil {
		return "", fmt.Errorf("ask %s its version: %w", f.Name, err)
	}
	vo.version, vo.asked = parseVersion(f.Name, res.Stdout), true
	if f.Name == "kubeadm" {
		if pause, err := nodeprep.PauseImage(res.Stdout); err == nil {
			s.pauses.Store(s.Inv.Cluster.KubernetesVersion, pause)
		}
	}
	return vo.version, nil
}

// versionAsk is one binary's version being asked on a host.
type versionAsk struct {
	done    chan struct{}
	version string
	err     error
}

func stagedOnly(staged map[string]string) []string {
	var paths []string
	for dest, from := range staged {
		if from != dest {
			paths = append(paths, from)
		}
	}
	return paths
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// versionArgs are what a Kubernetes binary is asked its version with; nil
// for the others.
func versionArgs(name string) []string {
	return map[string][]string{
		"kubeadm": {"version", "-o", "short"},
		"kubelet": {"--version"},
		"kubectl": {"version", "--client"},
	}[name]
}

// versionCommand asks the binary at path its version; "" for the others.
func versionCommand(name, path string) string {
	args := versionArgs(name)
	if args == nil {
		return ""
	}
	return exec.Command(append([]string{path}, args...)...)
}

// parseVersion reads versionCommand's answer: "v1.34.4", "Kubernetes
// v1.34.4", "Client Version: v1.34.4\nKustomize Version: ...".
func parseVersion(name, out string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	f := strings.Fields(line)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func dirOf(p string) string { return p[:strings.LastIndexByte(p, '/')] }

func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
