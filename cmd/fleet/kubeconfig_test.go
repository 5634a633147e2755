package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// testKubeconfigCommand: fleet kubeconfig writes a working admin
// kubeconfig through the load balancer (0600), changes nothing the second
// time, mends a widened mode, gets one from master1 while master0's sshd is
// down, and prints one on stdout with -o - (and a warning on stderr). What
// it prints but that stdout goes into all, for the secrets search.
func testKubeconfigCommand(t *testing.T, all *bytes.Buffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.kubeconfig")
	run := func(want string, args ...string) string {
		t.Helper()
		code, out, errs := fleet(append([]string{"kubeconfig", "-i", cluster.Inventory}, args...)...)
		if args[len(args)-1] != "-" {
			all.WriteString(out)
		}
		all.WriteString(errs)
		if code != 0 || !strings.Contains(out+errs, want) {
			t.Fatalf("fleet kubeconfig %s: exit %d, want %q in\n%s%s", strings.Join(args, " "), code, want, out, errs)
		}
		return out
	}
	out := run("wrote "+path+" (0600)", "-o", path)
	if !strings.Contains(out, "admin credentials from master0; its client certificate is valid until ") ||
		!strings.Contains(out, "the API answers through the load balancer "+cluster.Host("lb").Address+":6443: Kubernetes v1.") {
		t.Errorf("fleet kubeconfig said:\n%s", out)
	}
	nodesThrough(t, path, 5)
	first, _ := os.ReadFile(path)

	run("no changes: "+path+" already holds it", "-o", path)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	run("no changes", "-o", path)
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig %v %v after a run over a 0644 file: want 0600 again", st, err)
	}

	// master0 unreachable: the credentials of the next master, still
	// through the load balancer.
	if err := cluster.StopSSHD("master0"); err != nil {
		t.Fatal(err)
	}
	out = run("admin credentials from master1", "-o", path)
	if err := cluster.StartSSHD(context.Background(), "master0"); err != nil {
		t.Fatal(err)
	}
	if second, _ := os.ReadFile(path); !strings.Contains(out, "wrote "+path) || bytes.Equal(first, second) {
		t.Errorf("with master0 down: want master1's own admin.conf written:\n%s", out)
	}
	nodesThrough(t, path, 5)

	code, doc, errs := fleet("kubeconfig", "-i", cluster.Inventory, "-o", "-")
	all.WriteString(errs)
	if code != 0 || !strings.Contains(errs, "warning: the kubeconfig below holds the cluster admin's private key") {
		t.Fatalf("fleet kubeconfig -o -: exit %d\n%s", code, errs)
	}
	if cfg, err := clientcmd.Load([]byte(doc)); err != nil || len(cfg.AuthInfos) != 1 {
		t.Errorf("stdout of -o - is not a kubeconfig with one user: %v", err)
	}
}

// nodesThrough lists the Nodes with a kubeconfig and wants n of them.
func nodesThrough(t *testing.T, kubeconfig string, n int) {
	t.Helper()
	rest, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if want := "https://" + cluster.Host("lb").Address + ":6443"; rest.Host != want {
		t.Errorf("kubeconfig server %s, want the load balancer %s", rest.Host, want)
	}
	nodes, err := kubernetes.NewForConfigOrDie(rest).CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil || len(nodes.Items) != n {
		t.Errorf("nodes through %s: %v; want %d", kubeconfig, err, n)
	}
}
