package playbooks

import (
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

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// certPEM is a self-signed client certificate that ends at notAfter.
func certPEM(t *testing.T, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes-admin"},
		NotBefore: notAfter.Add(-time.Hour), NotAfter: notAfter, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestClientCertExpiry(t *testing.T) {
	soon := time.Date(2027, 3, 1, 0, 0, 0, 0, time.UTC)
	later := soon.AddDate(1, 0, 0)
	for _, tc := range []struct {
		name    string
		users   map[string][]byte // user -> client-certificate-data
		want    time.Time
		wantErr string
	}{
		{"one admin certificate", map[string][]byte{"admin": certPEM(t, later)}, later, ""},
		{"the earliest of two", map[string][]byte{"a": certPEM(t, later), "b": certPEM(t, soon)}, soon, ""},
		{"no certificate (a token user)", map[string][]byte{"bot": nil}, time.Time{}, ""},
		{"not PEM", map[string][]byte{"admin": []byte("garbage")}, time.Time{}, "user admin: client-certificate-data is not PEM"},
		{"PEM but no certificate", map[string][]byte{"admin": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2}})}, time.Time{}, "user admin:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := clientcmdapi.NewConfig()
			for name, data := range tc.users {
				cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: data, Token: "t"}
			}
			raw, err := clientcmd.Write(*cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := clientCertExpiry(raw)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Errorf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
