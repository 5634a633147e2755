package playbooks

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"testing"

	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
)

func nodeCSR(t *testing.T, cn, user, signer string) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn, Organization: []string{"system:nodes"}}}, key)
	if err != nil {
		t.Fatal(err)
	}
	return &certificatesv1.CertificateSigningRequest{Spec: certificatesv1.CertificateSigningRequestSpec{
		Request: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), Username: user, SignerName: signer}}
}

func TestCSRFor(t *testing.T) {
	const kubelet = certificatesv1.KubeAPIServerClientKubeletSignerName
	for _, tc := range []struct {
		name string
		csr  *certificatesv1.CertificateSigningRequest
		want bool
	}{
		{"the node's, with the run's token", nodeCSR(t, "system:node:worker0", "system:bootstrap:abcdef", kubelet), true},
		{"another node", nodeCSR(t, "system:node:worker1", "system:bootstrap:abcdef", kubelet), false},
		{"another token", nodeCSR(t, "system:node:worker0", "system:bootstrap:zzzzzz", kubelet), false},
		{"a serving certificate", nodeCSR(t, "system:node:worker0", "system:bootstrap:abcdef", certificatesv1.KubeletServingSignerName), false},
	} {
		if got := csrFor(tc.csr, "worker0", "abcdef"); got != tc.want {
			t.Errorf("%s: got %v", tc.name, got)
		}
	}
}

func TestCSRState(t *testing.T) {
	approved := certificatesv1.CertificateSigningRequestCondition{Type: certificatesv1.CertificateApproved, Status: corev1.ConditionTrue}
	denied := certificatesv1.CertificateSigningRequestCondition{Type: certificatesv1.CertificateDenied, Status: corev1.ConditionTrue}
	for _, tc := range []struct {
		name   string
		status certificatesv1.CertificateSigningRequestStatus
		want   string
	}{
		{"new", certificatesv1.CertificateSigningRequestStatus{}, "Pending"},
		{"approved", certificatesv1.CertificateSigningRequestStatus{Conditions: []certificatesv1.CertificateSigningRequestCondition{approved}}, "Approved"},
		{"issued", certificatesv1.CertificateSigningRequestStatus{Conditions: []certificatesv1.CertificateSigningRequestCondition{approved}, Certificate: []byte("x")}, "Approved,Issued"},
		{"denied", certificatesv1.CertificateSigningRequestStatus{Conditions: []certificatesv1.CertificateSigningRequestCondition{denied}}, "Denied"},
	} {
		if got := csrState(&certificatesv1.CertificateSigningRequest{Status: tc.status}); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}
