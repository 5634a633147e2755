package playbooks

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fleetops/fleet/internal/kubeadm"
	"github.com/fleetops/fleet/inventory"
)

// workerJoinParallelism bounds concurrent worker joins: each join makes the
// API server issue a certificate and the new kubelet list everything.
const workerJoinParallelism = 10

// joinWorkersPhase joins a worker the way the inventory says: kubeadm
// join, TLS bootstrapping, or a certificate from the CA host. The graph
// runs the workers in parallel.
type joinWorkersPhase struct{ joinInputs }

// run joins once the API answers through the load balancer: a join
// against a dead endpoint would only fail after kubeadm's minutes of
// discovery retries.
func (p *joinWorkersPhase) run(ctx context.Context, r remote, host string) error {
	endpoint := p.inv.Cluster.ControlPlaneEndpoint
	lbHint := func(err error) error {
		return fmt.Errorf("not joined: %w; check nginx on %s (the next fleet apply starts it again)", err, strings.Join(p.inv.LoadBalancerNames(), ", "))
	}
	if err := waitTCP(ctx, endpoint, 10*time.Second); err != nil {
		return lbHint(err)
	}
	access, creds, err := p.get(ctx)
	if err != nil {
		return err
	}
	switch p.inv.JoinModeOf(p.inv.Host(host)) {
	case inventory.JoinTLSBootstrap:
		err = tlsBootstrapWorker(ctx, r, p.inv, access, creds, host)
	case inventory.JoinCFSSL:
		err = cfsslWorker(ctx, r, p.inv, access, host)
	default:
		err = p.kubeadmJoin(ctx, r, access, creds, host)
	}
	// The endpoint may have died during the join: say so, not only what
	// the join tripped over.
	if err != nil && ctx.Err() == nil {
		if down := waitTCP(ctx, endpoint, time.Second); down != nil {
			return lbHint(fmt.Errorf("%w (and now: %v)", err, down))
		}
	}
	return err
}

// kubeadmJoin joins a worker with kubeadm join, the token and the CA hash.
func (p *joinWorkersPhase) kubeadmJoin(ctx context.Context, r remote, access *clusterAccess, creds *joinCredentials, host string) error {
	if cleared, err := clearCutJoin(ctx, r, p.inv, access, host); err != nil {
		return err
	} else if cleared {
		// kubeadm reset took the CA fleet had copied.
		if err := distributeCA(ctx, r, host, creds.caPEM); err != nil {
			return err
		}
	}
	tok, err := creds.token.valid(ctx, r.probe, access.client)
	if err != nil {
		return err
	}
	w := p.inv.Host(host)
	cfg, err := kubeadm.JoinConfig(clusterOf(p.inv), nodeOf(p.inv, w.Name), tok, creds.caHash, "")
	if err != nil {
		return err
	}
	// The CA fleet copied is the one the hash pins; kubeadm's preflight
	// would otherwise refuse a ca.crt that is already there.
	if _, err := runKubeadm(ctx, r, host, joinConfigName, p.timeout, cfg, "join",
		"--ignore-preflight-errors=FileAvailable--etc-kubernetes-pki-ca.crt"); err != nil {
		return joinError("kubeadm join", host, err)
	}
	return nil
}
