package playbooks

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"
	"strings"
	"time"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/kubeadm"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// TLS bootstrapping (join mode tls-bootstrap, seed 003): the worker runs
// no kubeadm. fleet writes the kubelet's bootstrap kubeconfig (the run's
// short-lived token, the CA), its config and flags, and starts it; the
// kubelet asks for its certificate with a CSR that the controller manager
// approves because of fleet's RBAC bindings.

// Files of a kubelet that fleet starts itself. The flags go where
// kubeadm's kubelet drop-in reads them, so the stock unit starts it; the
// drop-in fleet adds does the same for a kubelet installed without it.
const (
	bootstrapKubeconfig = "/etc/kubernetes/bootstrap-kubelet.conf"
	kubeletConfigFile   = "/var/lib/kubelet/config.yaml"
	kubeletFlagsFile    = "/var/lib/kubelet/kubeadm-flags.env"
	kubeletDropIn       = "/etc/systemd/system/kubelet.service.d/20-fleet-bootstrap.conf"
)

// kubeletUnitDropIn starts the kubelet with the bootstrap kubeconfig on
// hosts run by systemd, whatever drop-in the kubelet package brought.
const kubeletUnitDropIn = `# Managed by fleet: the kubelet of a node joined by TLS bootstrapping.
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=` + bootstrapKubeconfig + ` --kubeconfig=` + kubeletConf + `"
Environment="KUBELET_CONFIG_ARGS=--config=` + kubeletConfigFile + `"
EnvironmentFile=-` + kubeletFlagsFile + `
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`

// startKubelet (re)starts the kubelet through systemd where it runs; a
// host without systemd supervises the kubelet itself and picks the files up.
const startKubelet = `if [ -d /run/systemd/system ]; then systemctl daemon-reload && systemctl enable kubelet && systemctl restart kubelet; fi`

// tlsBootstrapJoinTimeout bounds the wait for the kubelet's certificate.
const tlsBootstrapJoinTimeout = 3 * time.Minute

// bootstrapRBACPhase makes fleet's three ClusterRoleBindings for kubelet
// TLS bootstrapping and CSR auto-approval.
type bootstrapRBACPhase struct {
	access *steps.Output[*clusterAccess]
}

// check: fleet's three bindings exist.
func (p *bootstrapRBACPhase) check(ctx context.Context, _ probe, _ string) (bool, string, error) {
	access, err := p.access.Get(ctx)
	if err != nil {
		return false, "", err
	}
	for _, b := range kubeadm.BootstrapBindings() {
		_, err := access.client.RbacV1().ClusterRoleBindings().Get(ctx, b.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, "", nil
		}
		if err != nil {
			return false, "", fmt.Errorf("look up ClusterRoleBinding %s: %w", b.Name, err)
		}
	}
	return true, "the TLS-bootstrap ClusterRoleBindings exist", nil
}

// run creates the bindings that are missing.
func (p *bootstrapRBACPhase) run(ctx context.Context, _ remote, _ string) error {
	access, err := p.access.Get(ctx)
	if err != nil {
		return err
	}
	return createBootstrapRBAC(ctx, access.client)
}

func createBootstrapRBAC(ctx context.Context, client kubernetes.Interface) error {
	for _, b := range kubeadm.BootstrapBindings() {
		_, err := client.RbacV1().ClusterRoleBindings().Create(ctx, b, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create ClusterRoleBinding %s: %w", b.Name, err)
		}
	}
	return nil
}

// tlsBootstrapWorker writes the kubelet's files, starts it, and waits until
// its CSR is approved and issued and the certificate is in place; then the
// bootstrap kubeconfig, which holds the token, goes.
func tlsBootstrapWorker(ctx context.Context, r remote, inv *inventory.Inventory, access *clusterAccess, creds *joinCredentials, host string) error {
	tok, err := creds.token.valid(ctx, r.probe, access.client)
	if err != nil {
		return err
	}
	boot, err := kubeadm.BootstrapKubeconfig("https://"+inv.Cluster.ControlPlaneEndpoint, creds.caPEM, tok)
	if err != nil {
		return err
	}
	files, err := kubeletFiles(inv, inv.Host(host), nil, bootstrapKubeconfig, boot)
	if err != nil {
		return err
	}
	if err := startKubeletWith(ctx, r, host, files); err != nil {
		return err
	}
	if err := waitNodeCertificate(ctx, r.probe, access.client, host, tok.ID); err != nil {
		return err
	}
	_, err = r.run(ctx, host, exec.Command("rm", "-f", bootstrapKubeconfig))
	return err
}

// kubeletFiles are the files of a kubelet fleet starts itself (join modes
// tls-bootstrap and cfssl): ca.crt when given, its config (x509 client CA
// authentication), flags and systemd drop-in, and last the kubeconfig it
// starts on (the bootstrap one, or its own), 0600.
func kubeletFiles(inv *inventory.Inventory, w *inventory.Host, caPEM []byte, kubeconfigPath string, kubeconfig []byte) ([]remoteFile, error) {
	dns, err := clusterDNS(inv.Cluster.ServiceSubnet)
	if err != nil {
		return nil, err
	}
	kcfg, err := kubeadm.KubeletConfig(caCert, dns, "cluster.local", clusterOf(inv))
	if err != nil {
		return nil, err
	}
	flags := fmt.Sprintf("KUBELET_KUBEADM_ARGS=%s\n", exec.Quote("--node-ip="+w.Address+" --hostname-override="+w.Name))
	var files []remoteFile
	if caPEM != nil {
		files = append(files, remoteFile{caCert, caPEM, 0o644})
	}
	return append(files,
		remoteFile{kubeletConfigFile, kcfg, 0o644},
		remoteFile{kubeletFlagsFile, []byte(flags), 0o644},
		remoteFile{kubeletDropIn, []byte(kubeletUnitDropIn), 0o644},
		remoteFile{kubeconfigPath, kubeconfig, 0o600}, // last: the kubelet starts on it
	), nil
}

// startKubeletWith writes the kubelet's files and (re)starts it.
func startKubeletWith(ctx context.Context, r remote, host string, files []remoteFile) error {
	if err := r.uploadAll(ctx, host, files); err != nil {
		return err
	}
	if _, err := r.run(ctx, host, startKubelet); err != nil {
		return fmt.Errorf("start the kubelet: %w", err)
	}
	return nil
}

// waitNodeCertificate waits until the node's CSR, made with this run's
// token, is Approved and Issued and the kubelet wrote kubelet.conf.
func waitNodeCertificate(ctx context.Context, p probe, client kubernetes.Interface, host, tokenID string) error {
	state := "no CSR from the node's kubelet yet"
	err := pollUntil(ctx, 500*time.Millisecond, tlsBootstrapJoinTimeout, func(ctx context.Context) (bool, error) {
		csrs, err := client.CertificatesV1().CertificateSigningRequests().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil // the API may be busy: ask again
		}
		state = "no CSR from the node's kubelet yet"
		for i := range csrs.Items {
			if csrFor(&csrs.Items[i], host, tokenID) {
				state = csrState(&csrs.Items[i])
			}
		}
		switch {
		case strings.HasPrefix(state, "Denied") || strings.HasPrefix(state, "Failed"):
			return false, fmt.Errorf("the kubelet's certificate request was %s", state)
		case state != "Approved,Issued":
			return false, nil
		}
		if ok, err := p.allExist(ctx, host, kubeletConf); err == nil && ok {
			return true, nil
		}
		state = "certificate issued, kubelet.conf not written yet"
		return false, nil
	})
	if err == errPollTimeout {
		return fmt.Errorf("TLS bootstrap did not finish in %s (%s): see the kubelet's log on %s", tlsBootstrapJoinTimeout, state, host)
	}
	return err
}

// csrFor: the CSR is the node client certificate request of host's
// kubelet, sent with the bootstrap token tokenID.
func csrFor(csr *certificatesv1.CertificateSigningRequest, host, tokenID string) bool {
	if csr.Spec.SignerName != certificatesv1.KubeAPIServerClientKubeletSignerName || csr.Spec.Username != "system:bootstrap:"+tokenID {
		return false
	}
	block, _ := pem.Decode(csr.Spec.Request)
	if block == nil {
		return false
	}
	req, err := x509.ParseCertificateRequest(block.Bytes)
	return err == nil && req.Subject.CommonName == "system:node:"+host
}

// csrState is the CONDITION column of kubectl get csr: Approved,Issued etc.
func csrState(csr *certificatesv1.CertificateSigningRequest) string {
	var parts []string
	for _, c := range csr.Status.Conditions {
		if c.Status == corev1.ConditionTrue || c.Status == "" {
			parts = append(parts, string(c.Type))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "Pending")
	}
	if len(csr.Status.Certificate) > 0 {
		parts = append(parts, "Issued")
	}
	return strings.Join(parts, ",")
}

// clusterDNS is the address kubeadm gives the cluster DNS service: the
// tenth of the service subnet.
func clusterDNS(serviceSubnet string) (string, error) {
	p, err := netip.ParsePrefix(serviceSubnet)
	if err != nil {
		return "", fmt.Errorf("service subnet %q: %w", serviceSubnet, err)
	}
	a := p.Masked().Addr()
	for range 10 {
		a = a.Next()
	}
	if !p.Contains(a) {
		return "", fmt.Errorf("service subnet %s is too small for the cluster DNS address", serviceSubnet)
	}
	return a.String(), nil
}
