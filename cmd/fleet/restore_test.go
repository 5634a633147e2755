package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testRestore: after the backup, the probe namespace is deleted and
// master2 loses its service-account keys (its API server cannot start
// without them). A backup of another cluster and a "no" at the prompt
// change nothing; fleet restore --yes brings the namespace back, puts the
// keys back from the backup (0600), leaves three etcd members and every
// node Ready, and keeps each master's etcd data from before aside. A
// manifest left aside as by a cut-short run makes plan refuse, and the
// restore finishes it.
func testRestore(t *testing.T, all *bytes.Buffer, backup string) {
	t.Helper()
	if out, err := kubectl("delete", "namespace", restoreProbe, "--wait=true", "--timeout=90s"); err != nil {
		t.Fatalf("kubectl delete namespace: %v: %s", err, out)
	}
	if out, err := kubectl("get", "namespace", restoreProbe); err == nil {
		t.Fatalf("the namespace is still there after its deletion:\n%s", out)
	}
	saKeys := []string{"/etc/kubernetes/pki/sa.key", "/etc/kubernetes/pki/sa.pub"}
	if out, err := cluster.Exec("master2", append([]string{"rm"}, saKeys...)...); err != nil {
		t.Fatalf("rm the service-account keys on master2: %v: %s", err, out)
	}

	// As a restore cut short after it stopped master1's API server leaves
	// it: apply and plan refuse to start over it, restore finishes it.
	if out, err := cluster.Exec("master1", "sh", "-c", "mkdir -p /etc/kubernetes/fleet-restart && mv /etc/kubernetes/manifests/kube-apiserver.yaml /etc/kubernetes/fleet-restart/"); err != nil {
		t.Fatalf("move master1's API server aside: %v: %s", err, out)
	}
	code, out, errs := fleet("plan", "-i", cluster.Inventory)
	all.WriteString(out + errs)
	if code != exitRefused || !strings.Contains(errs, "kube-apiserver.yaml waits in /etc/kubernetes/fleet-restart") {
		t.Errorf("plan with a manifest left aside: exit %d, want %d and why\n%s%s", code, exitRefused, out, errs)
	}

	other := copyBackupAs(t, backup, "another-cluster")
	code, out, errs = fleet("restore", "-i", cluster.Inventory, "--yes", other)
	all.WriteString(out + errs)
	if code != exitRefused || !strings.Contains(errs, `is a backup of cluster "another-cluster"`) {
		t.Errorf("restore of another cluster's backup: exit %d, want %d and the reason\n%s%s", code, exitRefused, out, errs)
	}
	var o, e bytes.Buffer
	code = runWithInput([]string{"restore", "-i", cluster.Inventory, backup}, strings.NewReader("no\n"), &o, &e)
	all.WriteString(o.String() + e.String())
	if code == 0 || !strings.Contains(e.String(), "master2 lacks sa.key, sa.pub: put back from the backup") || !strings.Contains(e.String(), "not confirmed") {
		t.Errorf("restore answered no: exit %d\n%s%s", code, o.String(), e.String())
	}
	if out, err := cluster.Exec("master2", "ls", saKeys[0]); err == nil {
		t.Fatalf("a refused restore changed master2: %s", out)
	}

	code, out, errs = fleet("restore", "-i", cluster.Inventory, "--yes", backup)
	all.WriteString(out + errs)
	if code != 0 || !strings.Contains(out, "3 etcd members, every control plane healthy, every node Ready") {
		t.Fatalf("restore: exit %d\n%s%s", code, out, errs)
	}
	t.Logf("%s", out)
	if n := strings.Count(out, "kept in /var/lib/fleet/restore/etcd-before-"); n != 3 {
		t.Errorf("%d masters say where their old etcd data is, want 3:\n%s", n, out)
	}
	if state, err := kubectl("-n", restoreProbe, "get", "configmap", restoreProbe, "-o", "jsonpath={.data.state}"); err != nil || state != "backed-up" {
		t.Errorf("the ConfigMap after the restore: %v: %q, want backed-up", err, state)
	}
	for path, mode := range map[string]string{saKeys[0]: "600", saKeys[1]: "644"} {
		if got, err := cluster.Exec("master2", "stat", "-c", "%a", path); err != nil || strings.TrimSpace(string(got)) != mode {
			t.Errorf("master2:%s after the restore: %v %s, want mode %s", path, err, got, mode)
		}
	}
	// Ready as the API says it, not only as fleet waited for it.
	ready, err := kubectl("get", "nodes", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}`)
	if err != nil || strings.Count(ready, "=True") != 5 {
		t.Errorf("nodes after the restore: %v: %s", err, ready)
	}
}

// copyBackupAs copies a backup folder, its manifest naming another cluster.
func copyBackupAs(t *testing.T, backup, clusterName string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), clusterName)
	if err := os.CopyFS(dir, os.DirFS(backup)); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "backup.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	m["cluster"] = clusterName
	if data, err = json.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}
