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
	"github.com/fleetops/fleet/inventory"
)

// The prepare phases make a bare host a node kubeadm can run on
// (cluster.install: binaries): the kernel set up, the binaries of the
// operator's folder uploaded where packages would put them, the units
// written, containerd configured. Each checks first, so a prepared host
// costs two round trips and uploads nothing.

// bundleOnce loads the inventory's binaries folder once per session: its
// sums are checked before the first upload, and every host shares it.
type bundleOnce struct {
	once   sync.Once
	bundle *binaries.Bundle
	err    error
}

// Bundle is the inventory's checked binaries folder (install: binaries),
// nil when the hosts come prepared. A file whose sum differs from its
// SHA256SUMS line is an error here, before any host is touched.
func (s *Session) Bundle() (*binaries.Bundle, error) {
	if !s.Inv.Installs() {
		return nil, nil
	}
	s.bundle.once.Do(func() {
		s.bundle.bundle, s.bundle.err = binaries.Load(s.Inv.Cluster.Binaries)
		if s.bundle.err != nil {
			s.bundle.err = &BinariesError{Err: s.bundle.err}
		}
	})
	return s.bundle.bundle, s.bundle.err
}

// BinariesError is a binaries folder fleet refuses to install from (a sum
// that differs, a file missing): bad input, found before any upload.
type BinariesError struct{ Err error }

func (e *BinariesError) Error() string { return "cluster.binaries: " + e.Err.Error() }
func (e *BinariesError) Unwrap() error { return e.Err }

// runsSystemd reports what preflight saw of host: systemd runs it.
func (s *Session) runsSystemd(host string) bool {
	v, _ := s.systemd.Load(host)
	b, _ := v.(bool)
	return b
}

// Uploaded is how many bytes of binaries this session sent to hosts.
func (s *Session) Uploaded() int64 { return s.uploaded.Load() }

// kernelPhase loads overlay and br_netfilter, sets the networking sysctls
// and turns swap off, now and after a reboot (the kubelet refuses swap).
type kernelPhase struct{ seen seen[kernelState] }

// kernelStateScript prints module.NAME=0|1, sysctl.KEY=VALUE and swaps=N.
// br_netfilter counts as loaded when its sysctls exist (built in).
var kernelStateScript = func() string {
	var b strings.Builder
	for _, m := range nodeprep.Modules {
		test := exec.Command("test", "-d", "/sys/module/"+m)
		if m == "br_netfilter" {
			test += " || " + exec.Command("test", "-d", "/proc/sys/net/bridge")
		}
		fmt.Fprintf(&b, "if %s; then echo module.%s=1; else echo module.%s=0; fi\n", test, m, m)
	}
	// Builtins only (read, not cat; a loop, not tail | wc): every process
	// started costs, times every host.
	for _, s := range nodeprep.Sysctls {
		fmt.Fprintf(&b, "v=; read -r v < %s 2>/dev/null; echo \"sysctl.%s=$v\"\n", exec.Quote(nodeprep.SysctlPath(s.Key)), s.Key)
	}
	b.WriteString("n=-1; while read -r _; do n=$((n+1)); done < /proc/swaps; echo swaps=$((n < 0 ? 0 : n))\n")
	return b.String()
}()

// kernelState is what kernelStateScript saw, and the files it persists in.
type kernelState struct {
	modules map[string]bool
	sysctls map[string]string
	swaps   int
	files   map[string][]byte // ModulesFile, SysctlFile, /etc/fstab; absent if missing
}

const fstab = "/etc/fstab"

func readKernelState(ctx context.Context, p probe, host string) (kernelState, error) {
	files := []string{nodeprep.ModulesFile, nodeprep.SysctlFile, fstab}
	res, err := p.query(ctx, host, kernelStateScript+"echo "+filesMarker+"\n"+
		exec.Command(append([]string{"sh", "-c", readFilesScript, "fleet-read"}, files...)...))
	if err != nil {
		return kernelState{}, err
	}
	values, contents, ok := strings.Cut(res.Stdout, filesMarker+"\n")
	if !ok {
		return kernelState{}, fmt.Errorf("unexpected answer %q", res.Stdout)
	}
	st := kernelState{modules: map[string]bool{}, sysctls: map[string]string{}}
	for _, line := range strings.Split(strings.TrimSpace(values), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch {
		case strings.HasPrefix(k, "module."):
			st.modules[strings.TrimPrefix(k, "module.")] = v == "1"
		case strings.HasPrefix(k, "sysctl."):
			st.sysctls[strings.TrimPrefix(k, "sysctl.")] = strings.TrimSpace(v)
		case k == "swaps":
			st.swaps, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	st.files, err = parseFiles(contents, files)
	return st, err
}

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

// kernelTodo lists what is left to do, in the order run does it.
func kernelTodo(st kernelState) []string {
	var todo []string
	for _, m := range nodeprep.Modules {
		if !st.modules[m] {
			todo = append(todo, "load "+m)
		}
	}
	if string(st.files[nodeprep.ModulesFile]) != nodeprep.ModulesConf() {
		todo = append(todo, "write "+nodeprep.ModulesFile)
	}
	for _, s := range nodeprep.Sysctls {
		if st.sysctls[s.Key] != s.Value {
			todo = append(todo, "set "+s.Key+"="+s.Value)
		}
	}
	if string(st.files[nodeprep.SysctlFile]) != nodeprep.SysctlConf() {
		todo = append(todo, "write "+nodeprep.SysctlFile)
	}
	if st.swaps > 0 {
		todo = append(todo, fmt.Sprintf("turn swap off (%d devices)", st.swaps))
	}
	if _, changed := nodeprep.CommentSwap(string(st.files[fstab])); changed {
		todo = append(todo, "comment swap out of "+fstab)
	}
	return todo
}

func (k *kernelPhase) check(ctx context.Context, p probe, host string) (bool, string, error) {
	st, err := readKernelState(ctx, p, host)
	if err != nil {
		return false, "", err
	}
	k.seen.keep(host, st)
	if todo := kernelTodo(st); len(todo) > 0 {
		return false, strings.Join(todo, "; "), nil
	}
	return true, "overlay and br_netfilter loaded, forwarding and bridge sysctls set and persisted, swap off", nil
}

func (k *kernelPhase) run(ctx context.Context, r remote, host string) error {
	st, ok := k.seen.take(host)
	if !ok {
		var err error
		if st, err = readKernelState(ctx, r.probe, host); err != nil {
			return err
		}
	}
	var script []string
	for _, m := range nodeprep.Modules {
		if !st.modules[m] {
			script = append(script, exec.Command("modprobe", m))
		}
	}
	for _, s := range nodeprep.Sysctls {
		if st.sysctls[s.Key] != s.Value {
			script = append(script, "echo "+s.Value+" > "+exec.Quote(nodeprep.SysctlPath(s.Key)))
		}
	}
	if st.swaps > 0 {
		script = append(script, "swapoff -a")
	}
	files := []remoteFile{
		{nodeprep.ModulesFile, []byte(nodeprep.ModulesConf()), 0o644},
		{nodeprep.SysctlFile, []byte(nodeprep.SysctlConf()), 0o644},
	}
	if newTab, changed := nodeprep.CommentSwap(string(st.files[fstab])); changed {
		// The original stays beside it, as the user had it.
		script = append(script, exec.Command("cp", "-p", fstab, fstab+".fleet-bak"))
		files = append(files, remoteFile{fstab, []byte(newTab), 0o644})
	}
	if len(script) > 0 {
		if _, err := r.run(ctx, host, "set -e\n"+strings.Join(script, "\n")); err != nil {
			return fmt.Errorf("kernel: %w", err)
		}
	}
	var changed []remoteFile
	for _, f := range files {
		if string(st.files[f.path]) != string(f.data) {
			changed = append(changed, f)
		}
	}
	return r.uploadAll(ctx, host, changed)
}

// binariesPhase puts the folder's binaries where packages would, and
// writes the units that start them.
type binariesPhase struct {
	version string // cluster.kubernetesVersion: what kubeadm, kubelet and kubectl must say
	seen    seen[binariesState]
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
// ($@) that exists, a marker, then the stamp and the units as
// readFilesScript does: one round trip.
const binariesStateScript = `stat -c '%s %Y %n' "$@" 2>/dev/null
echo ` + filesMarker

const filesMarker = "--- fleet files ---"

// binariesState is what a host has of the folder.
type binariesState struct {
	stat   map[string]stamp // path -> size and mtime now
	stamps map[string]stamp // path -> what fleet recorded
	units  map[string][]byte
}

func readBinariesState(ctx context.Context, p probe, host string, b *binaries.Bundle) (binariesState, error) {
	args := []string{"sh", "-c", binariesStateScript, "fleet-stat"}
	for _, f := range b.Files {
		args = append(args, f.Dest)
	}
	files := append([]string{stampFile}, unitPaths(b)...)
	res, err := p.query(ctx, host, exec.Command(args...)+"\n"+exec.Command(append([]string{"sh", "-c", readFilesScript, "fleet-read"}, files...)...))
	if err != nil {
		return binariesState{}, err
	}
	stats, contents, ok := strings.Cut(res.Stdout, filesMarker+"\n")
	if !ok {
		return binariesState{}, fmt.Errorf("unexpected answer %q", res.Stdout)
	}
	st := binariesState{stat: map[string]stamp{}}
	for _, line := range strings.Split(strings.TrimSpace(stats), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			size, _ := strconv.ParseInt(f[0], 10, 64)
			mtime, _ := strconv.ParseInt(f[1], 10, 64)
			st.stat[f[2]] = stamp{size: size, mtime: mtime}
		}
	}
	read, err := parseFiles(contents, files)
	if err != nil {
		return binariesState{}, err
	}
	st.stamps = parseStamps(string(read[stampFile]))
	delete(read, stampFile)
	st.units = read
	return st, nil
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

func unitPaths(b *binaries.Bundle) []string {
	var paths []string
	for _, u := range units(b) {
		paths = append(paths, u.path)
	}
	return paths
}

// binariesTodo lists the files the host lacks, and the units that differ.
func binariesTodo(st binariesState, b *binaries.Bundle) (missing []binaries.File, staleUnits []remoteFile) {
	for _, f := range b.Files {
		if !st.installed(f) {
			missing = append(missing, f)
		}
	}
	for _, u := range units(b) {
		if string(st.units[u.path]) != string(u.data) {
			staleUnits = append(staleUnits, u)
		}
	}
	return missing, staleUnits
}

func (p *binariesPhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	b, err := pr.s.Bundle()
	if err != nil {
		return false, "", err
	}
	st, err := readBinariesState(ctx, pr, host, b)
	if err != nil {
		return false, "", err
	}
	p.seen.keep(host, st)
	missing, stale := binariesTodo(st, b)
	if len(missing)+len(stale) == 0 {
		return true, fmt.Sprintf("%d binaries of %s installed with their sums, units written", len(b.Files), p.version), nil
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
	b, err := r.s.Bundle()
	if err != nil {
		return err
	}
	st, ok := p.seen.take(host)
	if !ok {
		if st, err = readBinariesState(ctx, r.probe, host, b); err != nil {
			return err
		}
	}
	missing, stale := binariesTodo(st, b)
	// Units first: the finish, which makes the binaries live, enables them.
	if len(stale) > 0 {
		if err := r.uploadAll(ctx, host, stale); err != nil {
			return err
		}
	}
	enable := ""
	if r.s.runsSystemd(host) {
		// A host run by another init starts its services its own way,
		// from the same binaries.
		enable = "systemctl daemon-reload && " + exec.Command("systemctl", "enable", "kubelet")
		if _, ok := b.File("containerd"); ok {
			enable += " && " + exec.Command("systemctl", "enable", "--now", "containerd")
		}
	}
	if len(missing) > 0 {
		return p.install(ctx, r, host, b, st, missing, enable)
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
func (p *binariesPhase) install(ctx context.Context, r remote, host string, b *binaries.Bundle, st binariesState, missing []binaries.File, enable string) error {
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
	for _, f := range missing {
		if there[f.Dest] == f.SHA256 {
			staged[f.Dest] = f.Dest
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
	}
	if sent > 0 {
		took := time.Since(began)
		r.note("prepare-binaries", host, fmt.Sprintf("sent %s in %s (%s/s)", megabytes(sent), took.Round(time.Millisecond),
			megabytes(int64(float64(sent)/max(took.Seconds(), 0.001)))))
	}
	versions := map[string]string{}
	for _, f := range missing {
		if versionArgs(f.Name) == nil {
			continue
		}
		v, err := r.s.binaryVersion(ctx, host, f, staged[f.Dest])
		if err != nil {
			return err
		}
		if v != p.version {
			r.run(ctx, host, exec.Command(append([]string{"rm", "-f"}, stagedOnly(staged)...)...))
			return fmt.Errorf("%s of %s is %s, the inventory's kubernetesVersion is %s", f.Name, f.Path, orUnknown(v), p.version)
		}
		versions[f.Dest] = v
	}
	// Move, stamp every file of the folder with its stat now, enable.
	script := finishScript
	if enable != "" {
		script += "\n" + enable
	}
	args := []string{"sh", "-c", script, "fleet-finish"}
	for _, f := range b.Files {
		from, moving := staged[f.Dest]
		if !moving {
			from = "-"
		}
		v := versions[f.Dest]
		if !moving {
			v = st.stamps[f.Dest].version
		}
		args = append(args, from, f.Dest, f.SHA256, orDash(v))
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
// for all, and the other hosts are spared starting a large program.
type versionOnce struct {
	once    sync.Once
	version string
	pause   string // kubeadm only: the pause image of the cluster's version
	err     error
}

// binaryVersion is the version of f, at path on host (asked there only if
// no host of this run has been asked yet).
// kubeadm is asked in the same command for the pause image of the
// cluster's version, which containerd's config names (prepare-runtime).
func (s *Session) binaryVersion(ctx context.Context, host string, f binaries.File, path string) (string, error) {
	v, _ := s.versions.LoadOrStore(f.SHA256, &versionOnce{})
	vo := v.(*versionOnce)
	vo.once.Do(func() {
		cmd := versionCommand(f.Name, path)
		if f.Name == "kubeadm" {
			cmd += " && " + exec.Command(path, "config", "images", "list", "--kubernetes-version", s.Inv.Cluster.KubernetesVersion)
		}
		res, err := s.run(ctx, host, cmd)
		if err != nil {
			vo.err = fmt.Errorf("ask %s its version: %w", f.Name, err)
			return
		}
		vo.version = parseVersion(f.Name, res.Stdout)
		if f.Name == "kubeadm" {
			vo.pause, _ = nodeprep.PauseImage(res.Stdout)
		}
	})
	return vo.version, vo.err
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

// runtimePhase writes containerd's configuration for the kubelet and
// restarts containerd when it changed.
type runtimePhase struct {
	version string
	mirrors map[string][]string
	asked   sync.Map // kubeadm's sum (or the host) -> *pauseOnce
	seen    seen[runtimeView]
}

// runtimeView is what the runtime check saw of a host.
type runtimeView struct {
	want, have, pause string
	ok                bool
}

// askPause asks the host's kubeadm which pause image its version uses,
// once per run for every host with the same kubeadm (key: its sum in the
// stamp; the binaries folder gives them all the same one): starting kubeadm
// on every host would cost more than the rest of the step.
func (p *runtimePhase) askPause(ctx context.Context, pr probe, host, key string) (string, bool, error) {
	if v, ok := pr.s.versions.Load(key); ok { // prepare-binaries asked this kubeadm
		if vo := v.(*versionOnce); vo.pause != "" {
			return vo.pause, true, nil
		}
	}
	v, _ := p.asked.LoadOrStore(key, &pauseOnce{})
	po := v.(*pauseOnce)
	po.once.Do(func() {
		res, err := pr.query(ctx, host, "command -v kubeadm >/dev/null && "+exec.Command("kubeadm", "config", "images", "list", "--kubernetes-version", p.version)+" || :")
		if err != nil {
			po.err = err
			return
		}
		if strings.TrimSpace(res.Stdout) == "" {
			return // no kubeadm yet (a plan on a bare host)
		}
		po.image, po.err = nodeprep.PauseImage(res.Stdout)
	})
	if po.image == "" && po.err == nil {
		p.asked.Delete(key) // ask again once kubeadm is there
	}
	return po.image, po.image != "", po.err
}

// pauseOnce is one kubeadm's answer.
type pauseOnce struct {
	once  sync.Once
	image string
	err   error
}

// pauseFile remembers the pause image kubeadm named for a version
// ("<version> <image>"): asking kubeadm starts a large program.
const pauseFile = "/var/lib/fleet/pause-image"

// wantConfig is containerd's config for this host, from the pause image
// its kubeadm names, and the config it has; ok is false while kubeadm is
// not installed (a plan on a bare host).
func (p *runtimePhase) wantConfig(ctx context.Context, pr probe, host string) (want, have, pause string, ok bool, err error) {
	files, err := pr.readFiles(ctx, host, nodeprep.ContainerdConfigFile, pauseFile, stampFile)
	if err != nil {
		return "", "", "", false, err
	}
	have = string(files[nodeprep.ContainerdConfigFile])
	if v, image, _ := strings.Cut(strings.TrimSpace(string(files[pauseFile])), " "); v == p.version && image != "" {
		return nodeprep.ContainerdConfig(image, p.mirrors), have, image, true, nil
	}
	key := host
	if st, ok := parseStamps(string(files[stampFile]))["/usr/bin/kubeadm"]; ok {
		key = st.sum
	}
	pause, ok, err = p.askPause(ctx, pr, host, key)
	if err != nil || !ok {
		return "", have, "", false, err
	}
	return nodeprep.ContainerdConfig(pause, p.mirrors), have, pause, true, nil
}

func (p *runtimePhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	want, have, pause, ok, err := p.wantConfig(ctx, pr, host)
	if err == nil {
		p.seen.keep(host, runtimeView{want, have, pause, ok})
	}
	if err != nil || !ok {
		return false, "write " + nodeprep.ContainerdConfigFile + " (the pause image of kubeadm " + p.version + ", SystemdCgroup)", err
	}
	if have != want {
		return false, "write " + nodeprep.ContainerdConfigFile + " (SystemdCgroup, pause image), restart containerd", nil
	}
	return true, "containerd configured (SystemdCgroup, the pause image of " + p.version + ")", nil
}

func (p *runtimePhase) run(ctx context.Context, r remote, host string) error {
	v, seen := p.seen.take(host)
	if !seen {
		var err error
		if v.want, v.have, v.pause, v.ok, err = p.wantConfig(ctx, r.probe, host); err != nil {
			return err
		}
	}
	want, have, pause := v.want, v.have, v.pause
	if !v.ok {
		return fmt.Errorf("kubeadm is not installed: cannot tell containerd's pause image")
	}
	files := []remoteFile{{pauseFile, []byte(p.version + " " + pause + "\n"), 0o644}}
	if have != want {
		files = append(files, remoteFile{nodeprep.ContainerdConfigFile, []byte(want), 0o644})
	}
	if err := r.uploadAll(ctx, host, files); err != nil {
		return err
	}
	if have == want || !r.s.runsSystemd(host) {
		return nil
	}
	_, err := r.run(ctx, host, "systemctl restart containerd")
	return err
}

// installProblems is what preflight finds wrong with a node that fleet is
// to prepare: a distribution or architecture it does not install for, a
// Kubernetes binary of another version already there, no container
// runtime and none in the folder.
func installProblems(h *inventory.Host, f hostFacts, b *binaries.Bundle, version string) []string {
	if h.Role != inventory.RoleMaster && h.Role != inventory.RoleWorker {
		return nil
	}
	var problems []string
	if f.family == "" {
		problems = append(problems, fmt.Sprintf("%s (ID=%s) is not a distribution fleet prepares: Debian, Ubuntu, RHEL, Rocky, Alma or Fedora", f.distro, orUnknown(f.id)))
	}
	if arch := binaries.UnameArch(f.arch); arch != b.Arch {
		problems = append(problems, fmt.Sprintf("the host is %s, the binaries of %s are for %s", f.arch, b.Dir, b.Arch))
	}
	for _, name := range []string{"kubeadm", "kubelet"} {
		if got := f.versions[name]; got != "" && got != version {
			problems = append(problems, fmt.Sprintf("%s %s is installed, the inventory wants %s: fleet installs only where the version matches or none is; change versions with an upgrade, not by replacing binaries", name, got, version))
		}
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
		fmt.Fprintf(&b, `if p=$(command -v %s); then
	s=$(stat -c '%%s %%Y' "$p"); v=$(awk -v s="$s" -v p="$p" '$2" "$3 == s && $4 == p && $5 != "-" {print $5}' %s 2>/dev/null)
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
