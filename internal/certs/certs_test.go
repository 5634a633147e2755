package certs

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

var now = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

func TestFromKubeadm(t *testing.T) {
	report := `{"kind":"CertificateExpirationInfo","apiVersion":"output.kubeadm.k8s.io/v1alpha3",
"certificates":[{"name":"apiserver","expirationDate":"2027-12-05T11:00:00Z","residualTime":31532400,"caName":"ca","missing":false},
{"name":"super-admin.conf","expirationDate":"0001-01-01T00:00:00Z","residualTime":0,"missing":true}],
"certificateAuthorities":[{"name":"ca","expirationDate":"2036-12-02T11:00:00Z","residualTime":315000000,"missing":false}]}`
	got, err := FromKubeadm("master0", []byte(report))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Name != "apiserver" || got[0].CA || got[0].DaysLeft(now) != 364 ||
		!got[1].Missing || got[2].Name != "ca" || !got[2].CA || got[2].Host != "master0" {
		t.Errorf("%+v", got)
	}
	if _, err := FromKubeadm("master0", []byte(`{"certificates":[]}`)); err == nil {
		t.Error("an empty report was accepted")
	}
	if _, err := FromKubeadm("master0", []byte("Error: not a report")); err == nil {
		t.Error("garbage was accepted")
	}
}

func certPEM(t *testing.T, notAfter time.Time, ca bool) []byte {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "x"}, NotBefore: now.Add(-time.Hour), NotAfter: notAfter,
		IsCA: ca, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	// As kubelet-client-current.pem: certificate, then key.
	return append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})...)
}

func TestFromPEMAndVerdicts(t *testing.T) {
	cases := []struct {
		name     string
		data     []byte
		wantDays int
		missing  bool
		verdict  string
	}{
		{"a year left", certPEM(t, now.Add(365*24*time.Hour+time.Hour), false), 365, false, ""},
		{"nine days left", certPEM(t, now.Add(9*24*time.Hour+time.Hour), false), 9, false, "expires within 30 days"},
		{"expired", certPEM(t, now.Add(-49*time.Hour), false), -2, false, "EXPIRED"},
		{"no file", nil, 0, true, "missing"},
	}
	var all []Cert
	for _, c := range cases {
		got, err := FromPEM("worker0", "kubelet-client", "kubelet", c.data)
		if err != nil {
			t.Fatal(err)
		}
		if got.Missing != c.missing || (!c.missing && got.DaysLeft(now) != c.wantDays) {
			t.Errorf("%s: %+v, days %d", c.name, got, got.DaysLeft(now))
		}
		if v := Verdict(got, now, 30); v != c.verdict {
			t.Errorf("%s: verdict %q, want %q", c.name, v, c.verdict)
		}
		all = append(all, got)
	}
	if under := Under(all, now, 10); len(under) != 2 {
		t.Errorf("under 10 days: %+v, want the nine-day and the expired one", under)
	}
	if under := Under(all, now, 400); len(under) != 3 {
		t.Errorf("under 400 days: %d, want the three present ones", len(under))
	}
	if ca, _ := FromPEM("ca", "root", "ca-host", certPEM(t, now.Add(time.Hour), true)); !ca.CA {
		t.Error("a CA certificate not marked CA")
	}
}
