package playbooks

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/fleetops/fleet/internal/etcd"
	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/kubeadm"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// sharedPKI are the files every master of a kubeadm cluster has alike (the
// ones `kubeadm join --control-plane` copies): what a restore puts back
// on a master that lost them. The others are the master's own (its
// addresses are in them) and kubeadm makes them from these.
var sharedPKI = []string{
	"ca.crt", "ca.key", "sa.key", "sa.pub", "front-proxy-ca.crt", "front-proxy-ca.key", "etcd/ca.crt", "etcd/ca.key",
}

const (
	pkiDir = "/etc/kubernetes/pki"
	// The snapshot waits here on each master while it is restored.
	restoreStage = "/var/lib/fleet/restore"
	// etcdutl raises the restored revision by this much and marks it
	// compacted, so that every watcher (kubelets, controllers) relists
	// instead of missing or replaying what happened after the snapshot,
	// as Kubernetes' etcd restore guide asks.
	restoreBumpRevision = 1_000_000_000
)

// EtcdMember is one master's etcd as kubeadm set it up: what etcdutl
// restores its data with.
type EtcdMember struct {
	Host    string
	Name    string
	PeerURL string
	DataDir string
}

// RestorePlan is what `fleet restore` would do, found before any host
// changes: the backup checked, every master's etcd member read from its
// manifest, the PKI files each master lacks.
type RestorePlan struct {
	Backup     string
	Manifest   BackupManifest
	Members    []EtcdMember        // the masters, in inventory order
	MissingPKI map[string][]string // master → shared PKI files the backup puts back
	pki        map[string][]byte   // sharedPKI, as the backup holds them
}

// RestoreOptions tune Restore.
type RestoreOptions struct {
	PodTimeout   time.Duration // per control-plane pod: to stop, then to answer healthy
	ReadyTimeout time.Duration // for every node to be Ready after
}

// RestoreResult is what Restore did.
type RestoreResult struct {
	Report  *steps.Report
	Members int               // etcd members after the restore
	Aside   map[string]string // master → where its etcd data before the restore was kept
}

// PlanRestore checks a backup against the cluster and reads what its
// restore needs from every master, changing nothing. It refuses a backup
// of another cluster (name, or a master's CA differs from the backup's), a
// master without an etcd member or without etcdutl.
func PlanRestore(ctx context.Context, s *Session, backup string) (*RestorePlan, error) {
	m, err := CheckBackup(backup)
	if err != nil {
		return nil, refused("restore: %v", err)
	}
	if m.Cluster != s.Inv.Cluster.Name {
		return nil, refused("restore: %s is a backup of cluster %q, %s describes %q", backup, m.Cluster, s.Inv.Path, s.Inv.Cluster.Name)
	}
	pki, err := readSharedPKI(filepath.Join(backup, backupPKI))
	if err != nil {
		return nil, refused("restore: %v", err)
	}
	if hash, err := kubeadm.CAHash(pki["ca.crt"]); err != nil || hash != m.CAHash {
		return nil, refused("restore: %s: its ca.crt (%s, %v) is not the CA %s names (%s)", filepath.Join(backup, backupPKI), hash, err, backupManifest, m.CAHash)
	}
	for name, data := range pki {
		if strings.HasSuffix(name, ".key") {
			s.addSecretPEM(data)
		}
	}
	plan := &RestorePlan{Backup: backup, Manifest: m, MissingPKI: map[string][]string{}, pki: pki}
	masters := namesWithRole(s.Inv, inventory.RoleMaster)
	s.Connect(ctx, masters)
	found, errs := onEach(masters, 0, func(host string) (restoreView, error) {
		return readRestoreView(ctx, s.probe(), host)
	})
	var unreachable, problems *multierror.Error
	for i, host := range masters {
		if errs[i] != nil {
			unreachable = multierror.Append(unreachable, fmt.Errorf("%s: %w", host, errs[i]))
			continue
		}
		member, missing, err := found[i].judge(s.Inv.Host(host), m.CAHash)
		if err != nil {
			problems = multierror.Append(problems, fmt.Errorf("%s: %w", host, err))
			continue
		}
		plan.Members = append(plan.Members, member)
		if len(missing) > 0 {
			plan.MissingPKI[host] = missing
		}
	}
	if err := unreachable.ErrorOrNil(); err != nil {
		return nil, fmt.Errorf("restore: every master must answer, nothing changed: %w", err)
	}
	if err := problems.ErrorOrNil(); err != nil {
		return nil, refused("restore refused before any change: %v", err)
	}
	return plan, nil
}

// restoreView is what one master holds that a restore depends on.
type restoreView struct {
	ca           []byte // nil when missing
	etcdManifest []byte // from the kubelet's folder, or where a cut-short run left it
	missing      []string
	etcdutl      bool
}

func readRestoreView(ctx context.Context, p probe, host string) (restoreView, error) {
	var script strings.Builder
	for _, f := range sharedPKI {
		fmt.Fprintf(&script, "[ -e %s ] || echo missing %s\n", exec.Quote(pkiDir+"/"+f), exec.Quote(f))
	}
	script.WriteString("command -v etcdutl >/dev/null && echo etcdutl\n")
	out, files, err := p.queryWithFiles(ctx, host, script.String(), caCert, manifestsDir+"/etcd.yaml", restartDir+"/etcd.yaml")
	if err != nil {
		return restoreView{}, err
	}
	v := restoreView{ca: files[caCert], etcdManifest: files[manifestsDir+"/etcd.yaml"]}
	if v.etcdManifest == nil {
		v.etcdManifest = files[restartDir+"/etcd.yaml"]
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		switch f := strings.Fields(l); {
		case len(f) == 2 && f[0] == "missing":
			v.missing = append(v.missing, f[1])
		case l == "etcdutl":
			v.etcdutl = true
		}
	}
	return v, nil
}

// judge says what restoring onto this master takes, or why it cannot be.
func (v restoreView) judge(h *inventory.Host, caHash string) (EtcdMember, []string, error) {
	if v.ca != nil {
		hash, err := kubeadm.CAHash(v.ca)
		if err != nil {
			return EtcdMember{}, nil, fmt.Errorf("%s: %w", caCert, err)
		}
		if hash != caHash {
			return EtcdMember{}, nil, fmt.Errorf("its cluster CA (%s) is not the backup's (%s): the backup is of another cluster", hash, caHash)
		}
	}
	if v.etcdManifest == nil {
		return EtcdMember{}, nil, fmt.Errorf("no etcd manifest (%s/etcd.yaml): it is no etcd member; run fleet apply, or take it out of the inventory", manifestsDir)
	}
	member, err := etcdMemberOf(v.etcdManifest)
	if err != nil {
		return EtcdMember{}, nil, fmt.Errorf("%s/etcd.yaml: %w", manifestsDir, err)
	}
	member.Host = h.Name
	if want := etcd.PeerURL(h.Address); member.PeerURL != want {
		return EtcdMember{}, nil, fmt.Errorf("its etcd advertises %s, the inventory's address gives %s", member.PeerURL, want)
	}
	if !v.etcdutl {
		return EtcdMember{}, nil, fmt.Errorf("no etcdutl on the PATH: the restore runs etcd's own etcdutl on each master (etcd's release, the version of the cluster's etcd, in /usr/local/bin)")
	}
	return member, v.missing, nil
}

// etcdMemberOf reads the member name, peer URL and data folder from
// kubeadm's etcd static pod manifest.
func etcdMemberOf(manifest []byte) (EtcdMember, error) {
	var pod corev1.Pod
	if err := yaml.Unmarshal(manifest, &pod); err != nil {
		return EtcdMember{}, err
	}
	var etcdCmd []string
	for _, c := range pod.Spec.Containers {
		if len(c.Command) > 0 && path.Base(c.Command[0]) == "etcd" {
			etcdCmd = c.Command
		}
	}
	if etcdCmd == nil {
		return EtcdMember{}, errors.New("no container runs etcd")
	}
	flags := map[string]string{"data-dir": etcdDataDir} // kubeadm always sets it; etcd's own default differs
	for _, arg := range etcdCmd[1:] {
		if k, v, ok := strings.Cut(strings.TrimPrefix(arg, "--"), "="); ok {
			flags[k] = v
		}
	}
	m := EtcdMember{Name: flags["name"], PeerURL: flags["initial-advertise-peer-urls"], DataDir: flags["data-dir"]}
	switch {
	case m.Name == "":
		return m, errors.New("etcd has no --name")
	case m.PeerURL == "" || strings.Contains(m.PeerURL, ","):
		return m, fmt.Errorf("etcd advertises %q, want one peer URL", m.PeerURL)
	case !path.IsAbs(m.DataDir) || path.Clean(m.DataDir) == "/":
		return m, fmt.Errorf("etcd's --data-dir %q", m.DataDir)
	}
	return m, nil
}

// readSharedPKI returns sharedPKI's files from a backup's archive.
func readSharedPKI(archive string) (map[string][]byte, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", archive, err)
	}
	files := map[string][]byte{}
	tr := tar.NewReader(z)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", archive, err)
		}
		name := strings.TrimPrefix(path.Clean(h.Name), "pki/")
		if h.Typeflag != tar.TypeReg || !slices.Contains(sharedPKI, name) {
			continue
		}
		if files[name], err = io.ReadAll(io.LimitReader(tr, 1<<20)); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", archive, h.Name, err)
		}
	}
	for _, name := range sharedPKI {
		if files[name] == nil {
			return nil, fmt.Errorf("%s has no pki/%s", archive, name)
		}
	}
	return files, nil
}

// InitialCluster is etcd's --initial-cluster for the members.
func (p *RestorePlan) InitialCluster() string {
	var parts []string
	for _, m := range p.Members {
		parts = append(parts, m.Name+"="+m.PeerURL)
	}
	return strings.Join(parts, ",")
}

// Restore puts the plan's snapshot back as the etcd of every master:
// each master's control plane stopped (its static pod manifests moved
// aside) before any etcd is restored; on each, its etcd data kept aside
// and `etcdutl snapshot restore` run with the member names and peer URLs
// kubeadm gave them and a new cluster token; etcd started everywhere and
// its quorum awaited; then the API servers, controller managers and
// schedulers, each healthy; then every node Ready. A run cut short is
// finished by running it again: manifests left aside are found there.
func Restore(ctx context.Context, s *Session, plan *RestorePlan, opts RestoreOptions) (*RestoreResult, error) {
	if opts.PodTimeout == 0 {
		opts.PodTimeout = 3 * time.Minute
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 5 * time.Minute
	}
	token := make([]byte, 8)
	rand.Read(token)
	r := &restoreRun{plan: plan, timeout: opts.PodTimeout, token: "fleet-restore-" + hex.EncodeToString(token),
		stamp: time.Now().UTC().Format("20060102T150405Z"), aside: map[string]string{}}
	masters := namesWithRole(s.Inv, inventory.RoleMaster)
	return locked(ctx, s, "restore", func() (*RestoreResult, error) {
		g := steps.New()
		g.MustAdd(s.step(steps.Step{Name: "restore-stage", Hosts: masters,
			Description: "upload the snapshot (checked by its SHA-256 on the host) and the shared PKI files a master lacks"}, restorePhase(r.stage)))
		g.MustAdd(s.step(steps.Step{Name: "restore-stop", Hosts: masters, After: []string{"restore-stage"},
			Description: "stop kube-apiserver, kube-controller-manager, kube-scheduler and etcd (manifests moved to " + restartDir + ")"}, restorePhase(r.stop)))
		g.MustAdd(steps.Step{Name: "masters-stopped", After: []string{"restore-stop"}, ReadOnly: true,
			Description: "every master's control plane down before any etcd is restored",
			Run:         func(context.Context, string) error { return nil }})
		g.MustAdd(s.step(steps.Step{Name: "restore-etcd", Hosts: masters, After: []string{"masters-stopped"},
			Description: "etcd data kept aside, etcdutl snapshot restore (names, peer URLs, a new cluster token), etcd started"}, restorePhase(r.restoreEtcd)))
		g.MustAdd(steps.Step{Name: "etcd-quorum", After: []string{"restore-etcd"},
			Description: fmt.Sprintf("every etcd healthy, %d members", len(plan.Members)),
			Run:         func(ctx context.Context, _ string) error { return r.quorum(ctx, s.probe(), masters) }})
		g.MustAdd(s.step(steps.Step{Name: "restore-control-plane", Hosts: masters, After: []string{"etcd-quorum"},
			Description: "kube-apiserver, kube-controller-manager and kube-scheduler started, each healthy; the staged snapshot removed"}, restorePhase(r.start)))
		report, err := s.Run(ctx, g)
		res := &RestoreResult{Report: report, Members: r.members, Aside: r.aside}
		if err != nil {
			return res, err
		}
		return res, waitNodesReady(ctx, s, opts.ReadyTimeout)
	})
}

// restoreRun is one restore's shared state across its steps.
type restoreRun struct {
	plan    *RestorePlan
	timeout time.Duration
	token   string // etcd's new --initial-cluster-token: not a secret, only a name
	stamp   string // names the folder each master's old etcd data is kept in
	members int
	mu      sync.Mutex        // guards aside: restore-etcd runs on the masters at once
	aside   map[string]string // master → its etcd data before the restore
}

// restorePhase adapts a restoreRun method to a phase.
type restorePhase func(ctx context.Context, r remote, host string) error

func (f restorePhase) run(ctx context.Context, r remote, host string) error { return f(ctx, r, host) }

func (r *restoreRun) member(host string) EtcdMember {
	for _, m := range r.plan.Members {
		if m.Host == host {
			return m
		}
	}
	panic("restore: no member for " + host) // PlanRestore made one per master
}

func (r *restoreRun) stagedSnapshot() string { return restoreStage + "/" + backupSnapshot }

// stage uploads the snapshot and checks it on the host, and puts back the
// shared PKI files the master lacks.
func (r *restoreRun) stage(ctx context.Context, rm remote, host string) error {
	if err := rm.ensureDir(ctx, host, restoreStage, 0o700); err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(r.plan.Backup, backupSnapshot))
	if err != nil {
		return err
	}
	defer f.Close()
	conn, err := rm.s.Conn(ctx, host)
	if err != nil {
		return err
	}
	if err := conn.UploadFrom(ctx, r.stagedSnapshot(), f, r.plan.Manifest.Size, 0o600, nil); err != nil {
		return fmt.Errorf("upload the snapshot: %w", err)
	}
	sum, err := rm.run(ctx, host, exec.Command("sha256sum", r.stagedSnapshot()))
	if err != nil {
		return err
	}
	if got := strings.Fields(sum.Stdout); len(got) == 0 || got[0] != r.plan.Manifest.SnapshotSHA {
		return fmt.Errorf("the snapshot on the host has SHA-256 %q, the backup's is %s", sum.Stdout, r.plan.Manifest.SnapshotSHA)
	}
	var files []remoteFile
	for _, name := range r.plan.MissingPKI[host] {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".key") {
			mode = 0o600
		}
		files = append(files, remoteFile{pkiDir + "/" + name, r.plan.pki[name], mode})
	}
	if len(files) > 0 {
		rm.note("restore-stage", host, "put back from the backup: "+strings.Join(r.plan.MissingPKI[host], ", "))
	}
	return rm.uploadAll(ctx, host, files)
}

// stop moves every control-plane manifest aside, the API server first (no
// more writes), and waits for each process to be gone.
func (r *restoreRun) stop(ctx context.Context, rm remote, host string) error {
	dial, err := rm.probe.dialer(ctx, host)
	if err != nil {
		return err
	}
	order := []staticPod{controlPlanePods[1], controlPlanePods[2], controlPlanePods[3], controlPlanePods[0]}
	for _, pod := range order {
		manifest := manifestsDir + "/" + pod.name + ".yaml"
		// Already aside after a run cut short: nothing to move.
		if _, err := rm.run(ctx, host, exec.Command("mkdir", "-p", restartDir)+" && { [ ! -e "+exec.Quote(manifest)+" ] || "+
			exec.Command("mv", manifest, restartDir+"/")+"; }"); err != nil {
			return err
		}
		if err := waitGone(ctx, dial, pod, r.timeout); err != nil {
			return fmt.Errorf("stop %s: %w", pod.name, err)
		}
	}
	// etcd closes its ports first and writes its WAL until it exits: its
	// data folder is moved aside only once the process is gone.
	if err := waitEtcdGone(ctx, rm, host, r.timeout); err != nil {
		return fmt.Errorf("stop etcd: %w", err)
	}
	return nil
}

// waitEtcdGone waits, at most limit, until the host runs no etcd process:
// etcd closes its ports before it stops writing its data folder.
func waitEtcdGone(ctx context.Context, r remote, host string, limit time.Duration) error {
	tenths := strconv.Itoa(int(limit / (100 * time.Millisecond)))
	_, err := r.run(ctx, host, exec.Command("sh", "-c", processGoneScript, "fleet-wait", "etcd", tenths))
	return err
}

// processGoneScript waits until no process named $1 runs in the shell's
// network namespace (a static pod shares the host's), for at most $2
// tenths of a second.
const processGoneScript = `i=0
while pgrep --ns $$ --nslist net -x "$1" >/dev/null; do
	i=$((i+1)); if [ $i -ge "$2" ]; then echo "$1 still runs after its pod was stopped" >&2; exit 1; fi
	sleep 0.1
done`

// restoreEtcd keeps the master's etcd data aside (its member folder), restores the snapshot
// in its place and starts etcd on it. The data folder is often a mount
// of its own (a disk for etcd): what is moved is its member/ folder, not
// the folder itself, and etcdutl restores beside it first.
func (r *restoreRun) restoreEtcd(ctx context.Context, rm remote, host string) error {
	m := r.member(host)
	// Beside the snapshot in fleet's own folder: never a new folder next
	// to the operator's data folder.
	aside := restoreStage + "/etcd-before-" + r.stamp
	staging := restoreStage + "/etcd-data"
	restore := exec.Command("etcdutl", "snapshot", "restore", r.stagedSnapshot(),
		"--name", m.Name, "--initial-cluster", r.plan.InitialCluster(), "--initial-cluster-token", r.token,
		"--initial-advertise-peer-urls", m.PeerURL, "--data-dir", staging,
		"--bump-revision", strconv.Itoa(restoreBumpRevision), "--mark-compacted")
	member := m.DataDir + "/member"
	script := "set -e\n" +
		"if [ -e " + exec.Quote(member) + " ]; then " + exec.Command("mkdir", "-p", aside) + "; " + exec.Command("mv", member, aside+"/") + "; echo aside; fi\n" +
		exec.Command("rm", "-rf", staging) + "\n" + restore + " >/dev/null\n" +
		exec.Command("mkdir", "-p", m.DataDir) + "\n" + exec.Command("chmod", "700", m.DataDir) + "\n" +
		exec.Command("mv", staging+"/member", m.DataDir+"/") + "\n" + exec.Command("rm", "-rf", staging) + "\n" +
		exec.Command("mv", restartDir+"/etcd.yaml", manifestsDir+"/etcd.yaml")
	res, err := rm.run(ctx, host, script)
	if err != nil {
		return fmt.Errorf("etcdutl snapshot restore: %w", err)
	}
	if strings.Contains(res.Stdout, "aside") {
		r.mu.Lock()
		r.aside[host] = aside
		r.mu.Unlock()
	}
	return nil
}

// quorum waits for every master's etcd to answer healthy (which needs a
// leader, so a quorum), then counts the members.
func (r *restoreRun) quorum(ctx context.Context, p probe, masters []string) error {
	for _, host := range masters {
		dial, err := p.dialer(ctx, host)
		if err != nil {
			return err
		}
		if err := waitHealthy(ctx, dial, controlPlanePods[0], r.timeout); err != nil {
			return fmt.Errorf("%s: etcd: %w", host, err)
		}
	}
	c, err := etcdOn(ctx, p, masters[0])
	if err != nil {
		return err
	}
	defer c.Close()
	members, err := c.Members(ctx)
	if err != nil {
		return err
	}
	if r.members = len(members); r.members != len(r.plan.Members) {
		return fmt.Errorf("etcd has %d members after the restore, want %d", len(members), len(r.plan.Members))
	}
	return nil
}

// start puts the API server, controller manager and scheduler back, each
// healthy before the next, and removes the staged snapshot.
func (r *restoreRun) start(ctx context.Context, rm remote, host string) error {
	dial, err := rm.probe.dialer(ctx, host)
	if err != nil {
		return err
	}
	for _, pod := range controlPlanePods[1:] {
		aside := restartDir + "/" + pod.name + ".yaml"
		if _, err := rm.run(ctx, host, "[ ! -e "+exec.Quote(aside)+" ] || "+exec.Command("mv", aside, manifestsDir+"/")); err != nil {
			return err
		}
		if err := waitHealthy(ctx, dial, pod, r.timeout); err != nil {
			return fmt.Errorf("start %s: %w", pod.name, err)
		}
	}
	_, err = rm.run(ctx, host, exec.Command("rm", "-f", r.stagedSnapshot()))
	return err
}
