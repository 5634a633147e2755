package playbooks

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetops/fleet/internal/kubeadm"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// initCredentials are what kubeadm init made along with the cluster: its
// bootstrap token, and the certificate key it uploaded the control-plane
// certificates under. Set only when init ran in this run.
type initCredentials struct {
	token   kubeadm.Token
	certKey string
}

// initPhase runs kubeadm init --upload-certs on the first master, unless
// a control plane is there already. Either way it produces the access to
// the cluster (its admin.conf) that every later step of apply uses.
type initPhase struct {
	inv      *inventory.Inventory
	tokenTTL time.Duration
	timeout  time.Duration
	access   *steps.Output[*clusterAccess]
	made     *steps.Output[initCredentials]
}

func (p *initPhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	access, err := accessVia(ctx, pr, p.inv, host)
	if err != nil || access == nil {
		return false, "", err
	}
	return true, initialisedReason, p.access.Set(ctx, access)
}

func (p *initPhase) run(ctx context.Context, r remote, host string) error {
	m := p.inv.Host(host)
	creds, err := newInitCredentials(r.probe)
	if err != nil {
		return err
	}
	cfg, err := kubeadm.InitConfig(clusterOf(p.inv), nodeOf(p.inv, m.Name),
		creds.token, p.tokenTTL.String(), creds.certKey)
	if err != nil {
		return err
	}
	if _, err := runKubeadm(ctx, r, host, "kubeadm-init.yaml", p.timeout, cfg, "init", "--upload-certs"); err != nil {
		return fmt.Errorf("kubeadm init: %w", err)
	}
	if err := p.made.Set(ctx, creds); err != nil {
		return err
	}
	access, err := accessVia(ctx, r.probe, p.inv, host)
	if err == nil && access == nil {
		err = fmt.Errorf("kubeadm init left no admin.conf or kube-apiserver manifest")
	}
	if err != nil {
		return err
	}
	return p.access.Set(ctx, access)
}

// newInitCredentials makes a token and a certificate key and registers
// them with the redactor before anything can print them.
func newInitCredentials(p probe) (initCredentials, error) {
	tok, err := newToken(p)
	if err != nil {
		return initCredentials{}, err
	}
	key, err := newCertificateKey(p)
	return initCredentials{token: tok, certKey: key}, err
}

// newToken makes a bootstrap token, already kept out of every output.
func newToken(p probe) (kubeadm.Token, error) {
	tok, err := kubeadm.NewToken()
	if err == nil {
		p.redact(tok.Secret, tok.String())
	}
	return tok, err
}

// newCertificateKey makes a certificate key, already kept out of every output.
func newCertificateKey(p probe) (string, error) {
	key, err := kubeadm.NewCertificateKey()
	if err == nil {
		p.redact(key)
	}
	return key, err
}
