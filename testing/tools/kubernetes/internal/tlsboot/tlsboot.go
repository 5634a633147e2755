// Package tlsboot does the kubelet's TLS bootstrap: with the bootstrap
// token's kubeconfig it submits a CertificateSigningRequest for
// system:node:<name>, waits until the controller-manager has approved and
// signed it, and writes the key, the certificate and a kubeconfig that uses
// them. kubeadm join waits for exactly that kubeconfig.
package tlsboot

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"time"

	certsv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Signer is the signer of kubelet client certificates.
const Signer = "kubernetes.io/kube-apiserver-client-kubelet"

// Request describes one bootstrap.
type Request struct {
	NodeName   string
	Bootstrap  string // bootstrap-kubelet.conf
	Kubeconfig string // kubelet.conf to write
	CertDir    string // /var/lib/kubelet/pki
	// Retry is the first delay between failed attempts; it doubles up to 10s.
	Retry time.Duration
	// Client overrides the client built from Bootstrap (tests).
	Client kubernetes.Interface
	Logf   func(format string, args ...any)
}

// Run bootstraps, retrying every failure until ctx ends.
func Run(ctx context.Context, r Request) error {
	delay := r.Retry
	if delay == 0 {
		delay = 500 * time.Millisecond
	}
	for {
		err := once(ctx, r)
		if err == nil {
			return nil
		}
		if r.Logf != nil {
			r.Logf("tls bootstrap: %v (retrying in %s)", err, delay)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("tls bootstrap: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
}

func once(ctx context.Context, r Request) error {
	boot, err := clientcmd.LoadFromFile(r.Bootstrap)
	if err != nil {
		return err
	}
	client := r.Client
	if client == nil {
		cfg, err := clientcmd.NewDefaultClientConfig(*boot, nil).ClientConfig()
		if err != nil {
			return err
		}
		if client, err = kubernetes.NewForConfig(cfg); err != nil {
			return err
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	csrDER, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "system:node:" + r.NodeName, Organization: []string{"system:nodes"}},
	}, key)
	if err != nil {
		return err
	}
	csr := &certsv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "csr-"},
		Spec: certsv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}),
			SignerName: Signer,
			Usages:     []certsv1.KeyUsage{certsv1.UsageDigitalSignature, certsv1.UsageClientAuth},
		},
	}
	created, err := client.CertificatesV1().CertificateSigningRequests().Create(ctx, csr, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create CSR: %w", err)
	}
	cert, err := waitIssued(ctx, client, created.Name)
	if err != nil {
		return err
	}
	return write(r, boot, key, cert)
}

// waitIssued polls the CSR until it carries a certificate, or was denied.
func waitIssued(ctx context.Context, client kubernetes.Interface, name string) ([]byte, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		csr, err := client.CertificatesV1().CertificateSigningRequests().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("get CSR %s: %w", name, err)
		}
		for _, c := range csr.Status.Conditions {
			if c.Type == certsv1.CertificateDenied || c.Type == certsv1.CertificateFailed {
				return nil, fmt.Errorf("CSR %s %s: %s", name, c.Type, c.Message)
			}
		}
		if len(csr.Status.Certificate) > 0 {
			return csr.Status.Certificate, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("CSR %s not issued after 2m", name)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// write stores key and certificate in one file, as the kubelet does
// (kubelet-client-current.pem), and a kubeconfig that points at it.
func write(r Request, boot *clientcmdapi.Config, key *ecdsa.PrivateKey, cert []byte) error {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(r.CertDir, 0o700); err != nil {
		return err
	}
	pair := append(append([]byte{}, cert...), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})...)
	stamped := filepath.Join(r.CertDir, "kubelet-client-"+time.Now().Format("2006-01-02-15-04-05")+".pem")
	if err := writeAtomic(stamped, pair, 0o600); err != nil {
		return err
	}
	current := filepath.Join(r.CertDir, "kubelet-client-current.pem")
	tmp := current + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(stamped, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, current); err != nil {
		return err
	}

	ctxName := boot.CurrentContext
	cluster := boot.Clusters[boot.Contexts[ctxName].Cluster]
	out := clientcmdapi.NewConfig()
	out.Clusters["default-cluster"] = cluster
	out.AuthInfos["default-auth"] = &clientcmdapi.AuthInfo{ClientCertificate: current, ClientKey: current}
	out.Contexts["default-context"] = &clientcmdapi.Context{Cluster: "default-cluster", AuthInfo: "default-auth", Namespace: "default"}
	out.CurrentContext = "default-context"
	data, err := clientcmd.Write(*out)
	if err != nil {
		return err
	}
	return writeAtomic(r.Kubeconfig, data, 0o600)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
