package playbooks

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fleetops/fleet/internal/kubeadm"
)

// BackupOptions tune `fleet backup`.
type BackupOptions struct {
	Dir  string // where backups go: one folder each
	Keep int    // backups of this cluster kept in Dir, newest first; 0 keeps all
}

// BackupManifest is backup.json, beside the files of one backup: what a
// restore checks before it touches a host.
type BackupManifest struct {
	Cluster     string    `json:"cluster"`
	Created     time.Time `json:"created"`
	From        string    `json:"from"`           // the master whose etcd (the leader) made the snapshot
	EtcdVersion string    `json:"etcdVersion"`    //
	SnapshotSHA string    `json:"snapshotSHA256"` // of the file etcd.db, as sha256sum prints it
	Size        int64     `json:"snapshotBytes"`
	CAHash      string    `json:"caHash"` // sha256:<SPKI hash> of the cluster CA, as kubeadm join takes it
}

// BackupResult is what Backup wrote and removed.
type BackupResult struct {
	Path     string
	Manifest BackupManifest
	Pruned   []string
}

// Files of one backup folder.
const (
	backupSnapshot = "etcd.db"
	backupPKI      = "pki.tar.gz"
	backupManifest = "backup.json"
)

// Backup takes an etcd snapshot from the leader (a member that lost touch
// with the others could hand out an old view), streamed through the SSH
// connection to its master and checked against the hash etcd appends;
// with it the cluster's PKI (/etc/kubernetes/pki) and the inventory. All
// go into a folder of their own under opts.Dir, every file 0600, the
// folder renamed into place only once whole: a backup cut short leaves
// nothing that looks like one. It changes nothing on the hosts.
func Backup(ctx context.Context, s *Session, opts BackupOptions) (*BackupResult, error) {
	access, err := connectCluster(ctx, s)
	if err != nil {
		return nil, err
	}
	leader, err := etcdLeader(ctx, s, access.master)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, err
	}
	created := time.Now().UTC()
	// Milliseconds: two backups in one second are two folders.
	final := filepath.Join(opts.Dir, s.Inv.Cluster.Name+"-"+created.Format("20060102T150405.000Z"))
	partial, err := os.MkdirTemp(opts.Dir, ".partial-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(partial) // gone once renamed; a failed backup leaves nothing

	m := BackupManifest{Cluster: s.Inv.Cluster.Name, Created: created, From: leader}
	if err := snapshotTo(ctx, s, leader, filepath.Join(partial, backupSnapshot), &m); err != nil {
		return nil, err
	}
	ca, err := s.readFile(ctx, leader, caCert)
	if err != nil {
		return nil, fmt.Errorf("backup: the cluster CA on %s: %w", leader, err)
	}
	if m.CAHash, err = kubeadm.CAHash(ca); err != nil {
		return nil, fmt.Errorf("backup: the cluster CA on %s: %w", leader, err)
	}
	pki, err := s.run(ctx, leader, "tar czf - -C /etc/kubernetes pki")
	if err != nil {
		return nil, fmt.Errorf("backup: the PKI of %s: %w", leader, err)
	}
	inv, err := os.ReadFile(s.Inv.Path)
	if err != nil {
		return nil, err
	}
	manifest, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{
		backupPKI: []byte(pki.Stdout), "inventory.yaml": inv, backupManifest: append(manifest, '\n'),
		backupSnapshot + ".sha256": []byte(m.SnapshotSHA + "  " + backupSnapshot + "\n"),
	} {
		if err := os.WriteFile(filepath.Join(partial, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(partial, final); err != nil {
		return nil, err
	}
	pruned, err := pruneBackups(opts.Dir, s.Inv.Cluster.Name, opts.Keep)
	return &BackupResult{Path: final, Manifest: m, Pruned: pruned}, err
}

// etcdLeader is the master whose etcd member leads, asked through the
// etcd on via.
func etcdLeader(ctx context.Context, s *Session, via string) (string, error) {
	c, err := etcdOn(ctx, s.probe(), via)
	if err != nil {
		return "", err
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return "", err
	}
	members, err := c.Members(ctx)
	if err != nil {
		return "", err
	}
	for _, m := range members {
		if m.ID == st.Leader && m.Name != "" && s.Inv.Host(m.Name) != nil {
			return m.Name, nil
		}
	}
	return "", fmt.Errorf("backup: etcd on %s names leader %x, which is no master of %s (no leader elected, or members outside the inventory)", via, st.Leader, s.Inv.Path)
}

// snapshotTo streams the etcd snapshot of master into path (0600) and
// records its size, hash and version in m.
func snapshotTo(ctx context.Context, s *Session, master, path string, m *BackupManifest) error {
	c, err := etcdOn(ctx, s.probe(), master)
	if err != nil {
		return err
	}
	defer c.Close()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	file := sha256.New()
	info, err := c.Snapshot(ctx, io.MultiWriter(f, file))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup from %s: %w", master, err)
	}
	m.EtcdVersion, m.Size, m.SnapshotSHA = info.Version, info.Size, hex.EncodeToString(file.Sum(nil))
	return nil
}

// pruneBackups removes this cluster's backups in dir past the newest keep.
func pruneBackups(dir, cluster string, keep int) ([]string, error) {
	if keep <= 0 {
		return nil, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var mine []string
	for _, e := range entries {
		if e.IsDir() && strings.HasPrefix(e.Name(), cluster+"-") {
			if _, err := os.Stat(filepath.Join(dir, e.Name(), backupManifest)); err == nil {
				mine = append(mine, e.Name())
			}
		}
	}
	slices.Sort(mine) // the names end in a UTC time: oldest first
	var pruned []string
	for _, name := range mine[:max(0, len(mine)-keep)] {
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return pruned, err
		}
		pruned = append(pruned, filepath.Join(dir, name))
	}
	return pruned, nil
}

// CheckBackup reads a backup folder and checks its snapshot against the
// SHA-256 recorded with it.
func CheckBackup(path string) (BackupManifest, error) {
	var m BackupManifest
	data, err := os.ReadFile(filepath.Join(path, backupManifest))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("%s: %w", filepath.Join(path, backupManifest), err)
	}
	f, err := os.Open(filepath.Join(path, backupSnapshot))
	if err != nil {
		return m, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := f.WriteTo(h); err != nil {
		return m, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != m.SnapshotSHA {
		return m, fmt.Errorf("%s: SHA-256 %s, the backup recorded %s", filepath.Join(path, backupSnapshot), got, m.SnapshotSHA)
	}
	return m, nil
}
