package cfssl

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"slices"
	"time"
)

// SameCA says whether the CA the API answered with is the CA host's own
// ca.pem (read over SSH): the API's answer is not authenticated, the file
// is.
func SameCA(answered, onHost []byte) error {
	a, err := parseCert(bytes.TrimSpace(answered))
	if err != nil {
		return fmt.Errorf("the CFSSL API's CA: %w", err)
	}
	h, err := parseCert(bytes.TrimSpace(onHost))
	if err != nil {
		return fmt.Errorf("the CA host's ca.pem: %w", err)
	}
	if !a.Equal(h) {
		return fmt.Errorf("the CFSSL API answered with a CA (%s, serial %s) that is not the CA host's ca.pem (%s, serial %s): refused",
			a.Subject, a.SerialNumber, h.Subject, h.SerialNumber)
	}
	return nil
}

// VerifyNodeCert checks a kubelet certificate the API signed before it is
// written to a node: issued by ca, valid now, for client auth, for exactly
// system:node:<node> in system:nodes, and for the key fleet made.
func VerifyNodeCert(certPEM, caPEM []byte, node string, key crypto.PublicKey, now time.Time) error {
	cert, err := parseCert(certPEM)
	if err != nil {
		return fmt.Errorf("the signed certificate: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("no CA certificate to verify with")
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("the signed certificate does not verify with the CA host's ca.pem: %w", err)
	}
	if want := "system:node:" + node; cert.Subject.CommonName != want || !slices.Equal(cert.Subject.Organization, []string{"system:nodes"}) {
		return fmt.Errorf("the signed certificate is for CN=%s O=%v, not CN=%s O=[system:nodes]", cert.Subject.CommonName, cert.Subject.Organization, want)
	}
	if k, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); !ok || !k.Equal(key) {
		return fmt.Errorf("the signed certificate is not for the key fleet made")
	}
	return nil
}

// pemCert encodes a DER certificate.
func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
