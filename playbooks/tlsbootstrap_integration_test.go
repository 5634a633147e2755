package playbooks_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/sim"
)

// TestTLSBootstrapJoin: a worker with no kubeadm at all joins by TLS
// bootstrapping (seed 003): its kubelet's CSR is approved and issued
// through fleet's RBAC bindings, the node is Ready, the bootstrap
// kubeconfig (which holds the token) is gone afterwards, and a second
// apply changes nothing and leaves exactly one set of bindings.
func TestTLSBootstrapJoin(t *testing.T) {
	sim.Need(t, cluster)
	topo := sim.Sized("tb", 23, 4, 1) // lb, master0, worker0; worker1 joins later by cloud-init
	c := upWithNodeBinaries(t, topo)
	if _, err := c.Exec("worker0", "rm", "-f", "/usr/bin/kubeadm"); err != nil {
		t.Fatal(err)
	}
	if out, _ := c.Exec("worker0", "sh", "-c", "command -v kubeadm || echo none"); strings.TrimSpace(string(out)) != "none" {
		t.Fatalf("kubeadm still on worker0: %s", out)
	}
	w1 := "  - name: worker1\n    address: " + c.Host("worker1").Address + "\n"
	inv := editInventory(t, c.Inventory, nil, [2]string{"\ncluster:\n", "\ncluster:\n  joinMode: tls-bootstrap\n"},
		[2]string{w1, w1 + "    joinMode: kubeadm\n"}) // a per-worker override
	if inv.JoinModeOf(&inv.Workers[0]) != inventory.JoinTLSBootstrap {
		t.Fatal("the inventory edit did not take")
	}
	opts := playbooks.DefaultApplyOptions()
	opts.Kubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	opts.Exclude = []string{"worker1"}
	apply := func() *steps.Report { // runApply fails the test on a secret in the output
		t.Helper()
		report, _, shown, err := runApply(t, inv, opts, nil)
		if err != nil {
			t.Fatalf("apply: %v\n%s", err, shown)
		}
		return report
	}

	report := apply()
	ran := changedSteps(report)
	if !ran["join-workers/worker0"] || !ran["bootstrap-rbac/"] {
		t.Errorf("changes %v: want worker0 joined and the bindings made", ran)
	}
	client := clientFor(t, opts.Kubeconfig)
	ctx := context.Background()
	csrs, err := client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var issued int
	for _, csr := range csrs.Items {
		if !strings.HasPrefix(csr.Spec.Username, "system:bootstrap:") || csr.Spec.SignerName != certificatesv1.KubeAPIServerClientKubeletSignerName {
			continue
		}
		approved := false
		for _, cond := range csr.Status.Conditions {
			approved = approved || (cond.Type == certificatesv1.CertificateApproved && cond.Status == corev1.ConditionTrue)
		}
		if approved && len(csr.Status.Certificate) > 0 {
			issued++
		}
	}
	if issued != 1 {
		t.Errorf("%d bootstrap CSRs Approved,Issued, want worker0's one", issued)
	}
	node, err := client.CoreV1().Nodes().Get(ctx, "worker0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ready := false
	for _, cond := range node.Status.Conditions {
		ready = ready || (cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue)
	}
	if !ready {
		t.Errorf("worker0 not Ready: %+v", node.Status.Conditions)
	}
	w := c.Host("worker0").Dir
	if _, err := os.Stat(filepath.Join(w, "etc/kubernetes/bootstrap-kubelet.conf")); !os.IsNotExist(err) {
		t.Errorf("the bootstrap kubeconfig (it holds the token) is still on worker0: %v", err)
	}
	if st, err := os.Stat(filepath.Join(w, "etc/kubernetes/kubelet.conf")); err != nil || st.Mode().Perm()&0o077 != 0 {
		t.Errorf("kubelet.conf: %v %v, want it written by the kubelet, private", st, err)
	}

	report = apply()
	if report.Changed() {
		t.Errorf("second apply changed: %+v", report.Changes())
	}
	bindings, err := client.RbacV1().ClusterRoleBindings().List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=fleet"})
	if err != nil {
		t.Fatal(err)
	}
	if len(bindings.Items) != 3 {
		t.Errorf("%d fleet ClusterRoleBindings after two applies, want 3", len(bindings.Items))
	}

	t.Run("a worker without kubeadm is removed, then joins again", func(t *testing.T) {
		// fleet remove must not need kubeadm on a node fleet joined without it.
		s, err := playbooks.NewSession(inv, playbooks.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := playbooks.Remove(ctx, s, []string{"worker0"}, playbooks.DefaultRemoveOptions()); err != nil {
			t.Fatalf("remove worker0 (no kubeadm on it): %v", err)
		}
		for _, f := range []string{"etc/kubernetes/kubelet.conf", "etc/kubernetes/pki/ca.crt", "var/lib/kubelet/config.yaml",
			"var/lib/kubelet/kubeadm-flags.env", "var/lib/kubelet/pki", "etc/systemd/system/kubelet.service.d/20-fleet-bootstrap.conf"} {
			if _, err := os.Stat(filepath.Join(w, f)); !os.IsNotExist(err) {
				t.Errorf("%s still on worker0 after remove: %v", f, err)
			}
		}
		if out, err := c.Exec("worker0", "ss", "-Hltn", "sport = :10248"); err != nil || strings.TrimSpace(string(out)) != "" {
			t.Errorf("a kubelet still listens on worker0 after remove: %q %v", out, err)
		}
		if _, err := client.CoreV1().Nodes().Get(ctx, "worker0", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("Node worker0 after remove: %v, want it gone", err)
		}
		if ran := changedSteps(apply()); !ran["join-workers/worker0"] {
			t.Errorf("the apply after remove changed %v: want worker0 joined again", ran)
		}
		if _, err := client.CoreV1().Nodes().Get(ctx, "worker0", metav1.GetOptions{}); err != nil {
			t.Errorf("Node worker0 after it joined again: %v", err)
		}
	})

	t.Run("cloud-init user-data joins a fresh worker with kubeadm", func(t *testing.T) {
		if inv.JoinModeOf(inv.Host("worker1")) != inventory.JoinKubeadm {
			t.Fatal("the worker1 override did not take")
		}
		doc := cloudInitJoins(t, c, inv, opts.Kubeconfig, "worker1")
		if !strings.Contains(string(doc), "kubeadm") || !strings.Contains(string(doc), "caCertHashes") {
			t.Errorf("a kubeadm-mode user-data without a kubeadm join pinned by the CA hash:\n%s", doc)
		}
		if _, err := os.Stat(filepath.Join(c.Host("worker1").Dir, "etc/kubernetes/fleet-join.yaml")); !os.IsNotExist(err) {
			t.Errorf("the join configuration (it holds the token) is still on worker1: %v", err)
		}
	})
}
