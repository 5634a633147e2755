package cfssl

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// The root stays on the operator's machine: fleet makes it there (or the
// user supplies it), and signs the cluster CA's request, made on the CA
// host, with it. Only certificates travel; the root's key never does.

// RootLifetime and CALifetime are how long fleet's root and the cluster
// CA it signs are valid (as the seed's CSRs say: 10 and 5 years).
const (
	RootLifetime = 87600 * time.Hour
	CALifetime   = 43800 * time.Hour
)

// NewRoot makes a self-signed root CA for a cluster: ECDSA P-384, as the
// seed's root-csr.json asks.
func NewRoot(cluster string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "fleet root CA " + cluster, Organization: []string{"fleet"}, OrganizationalUnit: []string{cluster}},
		NotBefore:    now.Add(-5 * time.Minute), NotAfter: now.Add(RootLifetime),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 1,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pemCert(der), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// SignCA signs the cluster CA's certificate request with the root: a CA
// that signs leaves only (path length 0), for CALifetime or until the
// root expires, with the request's subject and key.
func SignCA(csrPEM, rootCertPEM, rootKeyPEM []byte, now time.Time) ([]byte, error) {
	b, _ := pem.Decode(csrPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("the cluster CA's request is not a PEM certificate request")
	}
	csr, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("the cluster CA's request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("the cluster CA's request: %w", err)
	}
	root, err := parseCert(rootCertPEM)
	if err != nil {
		return nil, fmt.Errorf("the root certificate: %w", err)
	}
	signer, err := parseKey(rootKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("the root key: %w", err)
	}
	if k, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(root.PublicKey) {
		return nil, fmt.Errorf("the root key is not the root certificate's")
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(CALifetime)
	if notAfter.After(root.NotAfter) {
		notAfter = root.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: csr.Subject,
		NotBefore: now.Add(-5 * time.Minute), NotAfter: notAfter,
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 0, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, csr.PublicKey, signer)
	if err != nil {
		return nil, err
	}
	return pemCert(der), nil
}

func parseKey(p []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(p)
	if b == nil {
		return nil, fmt.Errorf("no PEM key")
	}
	if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not an EC, RSA or PKCS#8 private key")
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("a key that cannot sign")
	}
	return s, nil
}

// serialNumber is a random 128-bit serial, as RFC 5280 allows.
func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}
