// Package certs reads certificate expiry from what the hosts hold:
// kubeadm's own report (kubeadm certs check-expiration -o json) and PEM
// certificates. Pure functions: the playbooks fetch the bytes, never a
// private key.
package certs

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"time"
)

// Cert is one certificate's expiry, where it lives.
type Cert struct {
	Host    string    `json:"host"`
	Name    string    `json:"name"`   // kubeadm's name (apiserver, admin.conf…) or fleet's (kubelet-client…)
	Source  string    `json:"source"` // kubeadm, kubelet, ca-host
	CA      bool      `json:"ca"`
	Expires time.Time `json:"expires"`
	Missing bool      `json:"missing,omitempty"`
}

// DaysLeft is how many whole days remain at now (negative once expired).
func (c Cert) DaysLeft(now time.Time) int {
	return int(c.Expires.Sub(now).Hours() / 24)
}

// kubeadmReport is output.kubeadm.k8s.io/v1alpha3 CertificateExpirationInfo.
type kubeadmReport struct {
	Certificates           []kubeadmCert `json:"certificates"`
	CertificateAuthorities []kubeadmCert `json:"certificateAuthorities"`
}

type kubeadmCert struct {
	Name           string    `json:"name"`
	ExpirationDate time.Time `json:"expirationDate"`
	Missing        bool      `json:"missing"`
}

// FromKubeadm reads kubeadm certs check-expiration -o json.
func FromKubeadm(host string, report []byte) ([]Cert, error) {
	var r kubeadmReport
	if err := json.Unmarshal(report, &r); err != nil {
		return nil, fmt.Errorf("%s: kubeadm certs check-expiration: %w", host, err)
	}
	var out []Cert
	for _, list := range []struct {
		certs []kubeadmCert
		ca    bool
	}{{r.Certificates, false}, {r.CertificateAuthorities, true}} {
		for _, c := range list.certs {
			out = append(out, Cert{Host: host, Name: c.Name, Source: "kubeadm", CA: list.ca, Expires: c.ExpirationDate, Missing: c.Missing})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: kubeadm certs check-expiration listed no certificate", host)
	}
	return out, nil
}

// FromPEM reads the first certificate of a PEM file (a kubelet's
// kubelet-client-current.pem holds its key too: the caller sends only the
// certificate block). Empty input is a missing certificate.
func FromPEM(host, name, source string, data []byte) (Cert, error) {
	c := Cert{Host: host, Name: name, Source: source}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			c.Missing = true
			return c, nil
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		x, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return c, fmt.Errorf("%s: %s: %w", host, name, err)
		}
		c.Expires, c.CA = x.NotAfter, x.IsCA
		return c, nil
	}
}

// Verdict says how a certificate stands against the thresholds: "" when
// fine, else why it needs attention.
func Verdict(c Cert, now time.Time, warnDays int) string {
	switch days := c.DaysLeft(now); {
	case c.Missing:
		return "missing"
	case days < 0:
		return "EXPIRED"
	case days < warnDays:
		return fmt.Sprintf("expires within %d days", warnDays)
	}
	return ""
}

// Under lists the certificates (present ones) with fewer than days left.
func Under(all []Cert, now time.Time, days int) []Cert {
	var out []Cert
	for _, c := range all {
		if !c.Missing && c.DaysLeft(now) < days {
			out = append(out, c)
		}
	}
	return out
}
