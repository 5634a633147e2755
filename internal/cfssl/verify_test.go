package cfssl

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newIssuer(t *testing.T, name string) issuer {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return issuer{cert: cert, key: key, pem: pemCert(der)}
}

func (ca issuer) sign(t *testing.T, cn string, orgs []string, pub crypto.PublicKey, notAfter time.Time, usage x509.ExtKeyUsage) []byte {
	t.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn, Organization: orgs},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter, ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return pemCert(der)
}

func TestVerifyNodeCert(t *testing.T) {
	ca, rogue := newIssuer(t, "cluster-ca"), newIssuer(t, "rogue")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	later := time.Now().Add(time.Hour)
	nodes := []string{"system:nodes"}
	cases := []struct {
		name    string
		cert    []byte
		wantErr string
	}{
		{"as asked", ca.sign(t, "system:node:w0", nodes, &key.PublicKey, later, x509.ExtKeyUsageClientAuth), ""},
		{"from another CA", rogue.sign(t, "system:node:w0", nodes, &key.PublicKey, later, x509.ExtKeyUsageClientAuth), "does not verify"},
		{"for another node", ca.sign(t, "system:node:w1", nodes, &key.PublicKey, later, x509.ExtKeyUsageClientAuth), "not CN=system:node:w0"},
		{"in system:masters", ca.sign(t, "system:node:w0", []string{"system:nodes", "system:masters"}, &key.PublicKey, later, x509.ExtKeyUsageClientAuth), "O=[system:nodes system:masters]"},
		{"for another key", ca.sign(t, "system:node:w0", nodes, &other.PublicKey, later, x509.ExtKeyUsageClientAuth), "not for the key"},
		{"server auth only", ca.sign(t, "system:node:w0", nodes, &key.PublicKey, later, x509.ExtKeyUsageServerAuth), "does not verify"},
		{"expired", ca.sign(t, "system:node:w0", nodes, &key.PublicKey, time.Now().Add(-time.Minute), x509.ExtKeyUsageClientAuth), "does not verify"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := VerifyNodeCert(c.cert, ca.pem, "w0", &key.PublicKey, time.Now())
			if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
				t.Errorf("err = %v, want %q", err, c.wantErr)
			}
		})
	}
}

func TestSameCA(t *testing.T) {
	ca, rogue := newIssuer(t, "cluster-ca"), newIssuer(t, "rogue")
	if err := SameCA(append(ca.pem, '\n'), ca.pem); err != nil {
		t.Errorf("the same CA: %v", err)
	}
	if err := SameCA(rogue.pem, ca.pem); err == nil || !strings.Contains(err.Error(), "not the CA host's ca.pem") {
		t.Errorf("a swapped CA: %v", err)
	}
}

func TestSignCA(t *testing.T) {
	now := time.Now()
	rootPEM, rootKey, err := NewRoot("prod", now)
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, _ := NewRoot("other", now)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "kubernetes"}}, key)
	csr := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})

	caPEM, err := SignCA(csr, rootPEM, rootKey, now)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := parseCert(rootPEM)
	ca, _ := parseCert(caPEM)
	if ca.CheckSignatureFrom(root) != nil || !ca.IsCA || !ca.MaxPathLenZero || ca.Subject.CommonName != "kubernetes" || ca.NotAfter.After(root.NotAfter) {
		t.Errorf("cluster CA: CA %v, path zero %v, CN %q, until %v (root until %v)", ca.IsCA, ca.MaxPathLenZero, ca.Subject.CommonName, ca.NotAfter, root.NotAfter)
	}
	if _, err := SignCA(csr, rootPEM, otherKey, now); err == nil || !strings.Contains(err.Error(), "not the root certificate's") {
		t.Errorf("another root's key: %v", err)
	}
	if _, err := SignCA([]byte("not a request"), rootPEM, rootKey, now); err == nil {
		t.Error("signed garbage")
	}
}
