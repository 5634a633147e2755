package playbooks

import (
	"context"
	"time"

	"github.com/fleetops/fleet/internal/kubeadm"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// joinInputs are the outputs every join step consumes: the cluster, the
// run's credentials and what the credentials step found joined.
type joinInputs struct {
	joinedCheck
	timeout time.Duration // bounds each kubeadm join
	access  *steps.Output[*clusterAccess]
	creds   *steps.Output[*joinCredentials]
}

func (j joinInputs) slots() []steps.Slot { return []steps.Slot{j.access, j.creds, j.joined} }

func (j joinInputs) get(ctx context.Context) (*clusterAccess, *joinCredentials, error) {
	access, err := j.access.Get(ctx)
	if err != nil {
		return nil, nil, err
	}
	creds, err := j.creds.Get(ctx)
	return access, creds, err
}

// joinMastersPhase joins a master with kubeadm join --control-plane: the
// graph runs the masters one at a time, each growing etcd by one.
type joinMastersPhase struct{ joinInputs }

func (p *joinMastersPhase) run(ctx context.Context, r remote, host string) error {
	access, creds, err := p.get(ctx)
	if err != nil {
		return err
	}
	if _, err := clearCutJoin(ctx, r, p.inv, access, host); err != nil {
		return err
	}
	key, err := creds.certKey.uploaded(ctx, r, access.client)
	if err != nil {
		return err
	}
	tok, err := creds.token.valid(ctx, r.probe, access.client)
	if err != nil {
		return err
	}
	m := p.inv.Host(host)
	cfg, err := kubeadm.JoinConfig(clusterOf(p.inv), nodeOf(p.inv, m.Name), tok, creds.caHash, key)
	if err != nil {
		return err
	}
	if _, err := runKubeadm(ctx, r, host, joinConfigName, p.timeout, cfg, "join"); err != nil {
		return joinError("kubeadm join --control-plane", host, err)
	}
	return enterUpstream(ctx, r, p.inv, host, p.timeout)
}

// distributeCAPhase puts the cluster CA where the seed flow has it before
// a worker joins; kubeadm join verifies discovery against the hash, not
// this file.
type distributeCAPhase struct {
	joinedCheck
	creds *steps.Output[*joinCredentials]
}

func (p *distributeCAPhase) run(ctx context.Context, r remote, host string) error {
	creds, err := p.creds.Get(ctx)
	if err != nil {
		return err
	}
	return distributeCA(ctx, r, host, creds.caPEM)
}

func distributeCA(ctx context.Context, r remote, host string, caPEM []byte) error {
	if err := r.ensureDir(ctx, host, "/etc/kubernetes/pki", 0o755); err != nil {
		return err
	}
	return r.upload(ctx, host, caCert, caPEM, 0o644)
}

// workersOf keeps the workers among hosts that join in mode.
func workersOf(inv *inventory.Inventory, hosts []string, mode string) []string {
	var out []string
	for _, h := range hosts {
		if host := inv.Host(h); host != nil && host.Role == inventory.RoleWorker && inv.JoinModeOf(host) == mode {
			out = append(out, h)
		}
	}
	return out
}
