package playbooks

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

func certExpiring(t *testing.T, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kube-apiserver"},
		NotBefore: notAfter.Add(-365 * 24 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestExpiringSoon: preflight warns of a master's certificates with
// fewer than 30 days left, names each, and is quiet otherwise.
func TestExpiringSoon(t *testing.T) {
	now := time.Now()
	day := 24 * time.Hour
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{"a new master", map[string][]byte{"/etc/kubernetes/pki/apiserver.crt": certExpiring(t, now.Add(365*day))}, ""},
		{"no certificates yet", map[string][]byte{}, ""},
		{"not PEM", map[string][]byte{"/etc/kubernetes/pki/apiserver.crt": []byte("junk")}, ""},
		{"two soon", map[string][]byte{
			"/etc/kubernetes/pki/apiserver.crt":   certExpiring(t, now.Add(9*day+time.Hour)),
			"/etc/kubernetes/pki/etcd/server.crt": certExpiring(t, now.Add(29*day+time.Hour)),
			"/etc/kubernetes/pki/etcd/peer.crt":   certExpiring(t, now.Add(31*day)),
		}, "certificates expire within 30 days: apiserver (9 days), etcd/server (29 days): run fleet certs renew"},
		{"expired", map[string][]byte{"/etc/kubernetes/pki/front-proxy-client.crt": certExpiring(t, now.Add(-2*day-time.Hour))},
			"certificates expire within 30 days: front-proxy-client (-2 days): run fleet certs renew"},
	} {
		if got := expiringSoon("master0", tc.files, now); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
