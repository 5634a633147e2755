package tlsboot

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	certsv1 "k8s.io/api/certificates/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/clientcmd"
)

const bootstrapConf = `apiVersion: v1
kind: Config
clusters:
- name: kubernetes
  cluster: {server: "https://198.18.0.10:6443", certificate-authority-data: ""}
contexts:
- name: tls-bootstrap-token-user@kubernetes
  context: {cluster: kubernetes, user: tls-bootstrap-token-user}
current-context: tls-bootstrap-token-user@kubernetes
users:
- name: tls-bootstrap-token-user
  user: {token: abcdef.0123456789abcdef}
`

// signer plays the controller-manager: it signs every CSR it sees, the way
// csrsigning does once csrapproving has approved it.
func signer(t *testing.T, client *fake.Clientset, stop <-chan struct{}) {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"}, IsCA: true,
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	for {
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
		list, _ := client.CertificatesV1().CertificateSigningRequests().List(context.Background(), metav1.ListOptions{})
		for _, csr := range list.Items {
			if len(csr.Status.Certificate) > 0 {
				continue
			}
			block, _ := pem.Decode(csr.Spec.Request)
			req, err := x509.ParseCertificateRequest(block.Bytes)
			if err != nil {
				t.Error(err)
				return
			}
			tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: req.Subject, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
				ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
			der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca, req.PublicKey, caKey)
			csr.Status.Conditions = []certsv1.CertificateSigningRequestCondition{{Type: certsv1.CertificateApproved, Status: "True"}}
			csr.Status.Certificate = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
			client.CertificatesV1().CertificateSigningRequests().UpdateStatus(context.Background(), &csr, metav1.UpdateOptions{})
		}
	}
}

func TestBootstrapRetriesUntilTheAPIAnswersThenWritesCredentials(t *testing.T) {
	dir := t.TempDir()
	boot := filepath.Join(dir, "bootstrap-kubelet.conf")
	os.WriteFile(boot, []byte(bootstrapConf), 0o600)
	client := fake.NewClientset()
	var creates atomic.Int32
	// The API server is not up for the first two attempts.
	client.PrependReactor("create", "certificatesigningrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if creates.Add(1) <= 2 {
			return true, nil, errors.New("connection refused")
		}
		obj := a.(k8stesting.CreateAction).GetObject().(*certsv1.CertificateSigningRequest)
		obj.Name = "csr-test"
		return false, nil, nil
	})
	stop := make(chan struct{})
	defer close(stop)
	go signer(t, client, stop)

	req := Request{NodeName: "worker0", Bootstrap: boot, Kubeconfig: filepath.Join(dir, "kubelet.conf"),
		CertDir: filepath.Join(dir, "pki"), Retry: 10 * time.Millisecond, Client: client}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Run(ctx, req); err != nil {
		t.Fatal(err)
	}
	if n := creates.Load(); n != 3 {
		t.Errorf("%d CSR creates, want 3 (two failures, one success)", n)
	}

	csr, err := client.CertificatesV1().CertificateSigningRequests().Get(ctx, "csr-test", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if csr.Spec.SignerName != Signer {
		t.Errorf("signer %q", csr.Spec.SignerName)
	}
	block, _ := pem.Decode(csr.Spec.Request)
	parsed, _ := x509.ParseCertificateRequest(block.Bytes)
	if parsed.Subject.CommonName != "system:node:worker0" || len(parsed.Subject.Organization) != 1 || parsed.Subject.Organization[0] != "system:nodes" {
		t.Errorf("subject %v", parsed.Subject)
	}

	cfg, err := clientcmd.LoadFromFile(req.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	auth := cfg.AuthInfos[cfg.Contexts[cfg.CurrentContext].AuthInfo]
	if auth.Token != "" || auth.ClientCertificate != filepath.Join(dir, "pki/kubelet-client-current.pem") {
		t.Errorf("kubelet.conf auth %+v: want the issued certificate, no token", auth)
	}
	if cfg.Clusters[cfg.Contexts[cfg.CurrentContext].Cluster].Server != "https://198.18.0.10:6443" {
		t.Error("server not carried over from the bootstrap kubeconfig")
	}
	pair, err := os.ReadFile(auth.ClientCertificate)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(auth.ClientCertificate)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v", st.Mode().Perm())
	}
	certBlock, rest := pem.Decode(pair)
	keyBlock, _ := pem.Decode(rest)
	if certBlock == nil || keyBlock == nil || keyBlock.Type != "EC PRIVATE KEY" {
		t.Fatal("want certificate then key in kubelet-client-current.pem")
	}
}

func TestDeniedCSRWritesNoKubeconfig(t *testing.T) {
	dir := t.TempDir()
	boot := filepath.Join(dir, "bootstrap-kubelet.conf")
	os.WriteFile(boot, []byte(bootstrapConf), 0o600)
	client := fake.NewClientset()
	client.PrependReactor("get", "certificatesigningrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, &certsv1.CertificateSigningRequest{Status: certsv1.CertificateSigningRequestStatus{
			Conditions: []certsv1.CertificateSigningRequestCondition{{Type: certsv1.CertificateDenied, Message: "not a node"}}}}, nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := Run(ctx, Request{NodeName: "w", Bootstrap: boot, Kubeconfig: filepath.Join(dir, "k"), CertDir: dir, Retry: 50 * time.Millisecond, Client: client})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if _, statErr := os.Stat(filepath.Join(dir, "k")); statErr == nil {
		t.Error("wrote a kubeconfig for a denied CSR")
	}
}
