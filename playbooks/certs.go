package playbooks

import (
	"context"
	"encoding/base64"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/fleetops/fleet/internal/certs"
	"github.com/fleetops/fleet/internal/cfssl"
	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// Cert is one certificate's expiry on one host, for `fleet certs check`.
type Cert = certs.Cert

// CertVerdict says "" for a certificate with warnDays or more left, else
// why it needs attention (expires soon, EXPIRED, missing).
func CertVerdict(c Cert, now time.Time, warnDays int) string { return certs.Verdict(c, now, warnDays) }

// CertsUnder lists the certificates with fewer than days left.
func CertsUnder(all []Cert, now time.Time, days int) []Cert { return certs.Under(all, now, days) }

// kubeletClientCert prints only the certificate of the kubelet's client
// pair (kubelet-client-current.pem holds the key too), or, for a kubelet
// fleet gave a certificate itself (cfssl join), the one in kubelet.conf:
// no private key leaves the host.
const kubeletClientCert = `f=/var/lib/kubelet/pki/kubelet-client-current.pem
if [ -r "$f" ]; then sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' "$f"
elif [ -r ` + kubeletConf + ` ]; then sed -n 's/^ *client-certificate-data: *//p' ` + kubeletConf + ` | head -n 1
fi`

// CertsCheck reads, on every host in parallel, the certificates fleet's
// cluster depends on: kubeadm's report on each master (its certificates,
// kubeconfigs and CAs), each node's kubelet client certificate, and the CA
// host's root, cluster CA and OCSP signer. It changes nothing.
func CertsCheck(ctx context.Context, s *Session) ([]Cert, error) {
	var mu sync.Mutex
	var all []Cert
	add := func(c ...Cert) {
		mu.Lock()
		defer mu.Unlock()
		all = append(all, c...)
	}
	var hosts []string
	for _, h := range s.Inv.Hosts() {
		if h.Role == inventory.RoleMaster || h.Role == inventory.RoleWorker || h.Role == inventory.RoleCA {
			hosts = append(hosts, h.Name)
		}
	}
	g := steps.New()
	g.MustAdd(steps.Step{Name: "certs", Description: "read the certificates' expiry: kubeadm's report, the kubelet's client certificate, the CA host's",
		Hosts: hosts, ReadOnly: true, Run: func(ctx context.Context, host string) error {
			found, err := hostCerts(ctx, s, s.Inv.Host(host))
			add(found...)
			return err
		}})
	_, err := s.Run(ctx, g)
	sort.Slice(all, func(i, j int) bool {
		if all[i].Host != all[j].Host {
			return all[i].Host < all[j].Host
		}
		return all[i].Name < all[j].Name
	})
	return all, err
}

func hostCerts(ctx context.Context, s *Session, h *inventory.Host) ([]Cert, error) {
	var out []Cert
	var errs *multierror.Error
	switch h.Role {
	case inventory.RoleCA:
		p, err := s.caPlatform(ctx)
		if err != nil {
			return nil, err
		}
		for _, f := range []struct{ name, file string }{{"root", cfssl.RootCert}, {"cluster-ca", cfssl.CACert}, {"ocsp-signer", cfssl.OCSPCert}} {
			res, err := s.run(ctx, h.Name, exec.Command("cat", p.Path(f.file))+" 2>/dev/null || true")
			if err != nil {
				return out, err
			}
			c, err := certs.FromPEM(h.Name, f.name, "ca-host", []byte(res.Stdout))
			errs = multierror.Append(errs, err)
			out = append(out, c)
		}
		return out, errs.ErrorOrNil()
	case inventory.RoleMaster:
		ok, err := s.probe().allExist(ctx, h.Name, adminConf)
		if err != nil {
			return nil, err
		}
		if ok {
			res, err := s.run(ctx, h.Name, exec.Command("kubeadm", "certs", "check-expiration", "-o", "json"))
			if err != nil {
				return nil, fmt.Errorf("kubeadm certs check-expiration: %w", err)
			}
			found, err := certs.FromKubeadm(h.Name, []byte(res.Stdout))
			if err != nil {
				return nil, err
			}
			out = append(out, found...)
		}
	}
	res, err := s.run(ctx, h.Name, kubeletClientCert)
	if err != nil {
		return out, err
	}
	data := []byte(res.Stdout)
	if b64 := strings.TrimSpace(res.Stdout); b64 != "" && !strings.HasPrefix(b64, "-----") {
		if data, err = base64.StdEncoding.DecodeString(b64); err != nil {
			return out, fmt.Errorf("%s: kubelet.conf's client certificate: %w", h.Name, err)
		}
	}
	c, err := certs.FromPEM(h.Name, "kubelet-client", "kubelet", data)
	if err != nil {
		return out, err
	}
	return append(out, c), nil
}
