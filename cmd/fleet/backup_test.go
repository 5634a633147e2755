package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetops/fleet/playbooks"
)

// testBackup: a ConfigMap made just before is in the snapshot; two backups
// with --keep 1 leave the newer; every file is 0600, the snapshot matches
// the SHA-256 beside it, the PKI archive holds the CA's key, and the
// manifest names the cluster's CA.
// It returns the backup's folder; its snapshot also holds the namespace
// restoreProbe and a ConfigMap in it.
func testBackup(t *testing.T, all *bytes.Buffer) string {
	t.Helper()
	for _, args := range [][]string{{"create", "configmap", "fleet-backup-probe", "--from-literal=state=before"},
		{"create", "namespace", restoreProbe}, {"-n", restoreProbe, "create", "configmap", restoreProbe, "--from-literal=state=backed-up"}} {
		if out, err := kubectl(args...); err != nil {
			t.Fatalf("kubectl %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	dir := filepath.Join(t.TempDir(), "backups")
	var first string
	for i := range 2 {
		code, out, errs := fleet("backup", "-i", cluster.Inventory, "-o", dir, "--keep", "1")
		all.WriteString(out + errs)
		if code != 0 || !strings.HasPrefix(out, "backup "+dir) {
			t.Fatalf("backup %d: exit %d\n%s%s", i, code, out, errs)
		}
		if i == 0 {
			first = strings.Fields(out)[1]
		} else if !strings.Contains(out, "removed "+first) {
			t.Errorf("the second backup did not prune the first:\n%s", out)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("%d entries in the backup folder, want the newest backup only", len(entries))
	}
	path := filepath.Join(dir, entries[0].Name())
	m, err := playbooks.CheckBackup(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"etcd.db", "etcd.db.sha256", "pki.tar.gz", "inventory.yaml", "backup.json"} {
		if st, err := os.Stat(filepath.Join(path, name)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, want a 0600 file", name, err)
		}
	}
	// etcdutl, as an operator would use it on the file.
	status, err := osexec.Command(filepath.Join(simLayer(), "local/bin/etcdutl"), "snapshot", "status", filepath.Join(path, "etcd.db"), "-w", "json").CombinedOutput()
	var st struct {
		TotalKey  int `json:"totalKey"`
		TotalSize int `json:"totalSize"`
	}
	if err != nil || json.Unmarshal(status, &st) != nil || st.TotalKey < 100 {
		t.Errorf("etcdutl snapshot status: %v: %s", err, status)
	}
	db, _ := os.ReadFile(filepath.Join(path, "etcd.db"))
	if !bytes.Contains(db, []byte("fleet-backup-probe")) || int64(len(db)) != m.Size {
		t.Errorf("the snapshot (%d bytes, manifest %d) lacks the ConfigMap made before it", len(db), m.Size)
	}
	if m.Created.IsZero() || m.Cluster == "" || !strings.HasPrefix(m.From, "master") || !strings.HasPrefix(m.CAHash, "sha256:") {
		t.Errorf("manifest %+v", m)
	}
	if keys := tarNames(t, filepath.Join(path, "pki.tar.gz")); !strings.Contains(keys, "pki/ca.key") || !strings.Contains(keys, "pki/etcd/ca.key") {
		t.Errorf("the PKI archive holds %s", keys)
	}
	return path
}

// restoreProbe names the namespace and ConfigMap a restore brings back.
const restoreProbe = "fleet-restore-probe"

// kubectl runs kubectl as the cluster's admin on master0.
func kubectl(args ...string) (string, error) {
	out, err := cluster.Exec("master0", append([]string{"kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf"}, args...)...)
	return string(out), err
}

func tarNames(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(z)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	return strings.Join(names, " ")
}
