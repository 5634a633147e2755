package playbooks

import (
	"context"
	"fmt"

	"github.com/fleetops/fleet/internal/kubeadm"
)

// distributeCA puts the cluster CA where the seed flow has it before the
// join; kubeadm join verifies discovery against the hash, not this file.
func (a *applyRun) distributeCA(ctx context.Context, host string) error {
	if _, err := a.s.run(ctx, host, "install -d -m 0755 /etc/kubernetes/pki"); err != nil {
		return err
	}
	return a.s.upload(ctx, host, caCert, a.caPEM, 0o644)
}

func (a *applyRun) joinWorker(ctx context.Context, host string) error {
	w := a.s.Inv.Host(host)
	cfg, err := kubeadm.JoinConfig(clusterOf(a.s.Inv), kubeadm.Node{Name: w.Name, AdvertiseAddress: w.Address}, a.token, a.caHash, "")
	if err != nil {
		return err
	}
	// The CA fleet copied is the one the hash pins; kubeadm's preflight
	// would otherwise refuse a ca.crt that is already there.
	if _, err := runKubeadm(ctx, a.s, host, "kubeadm-join.yaml", cfg, "join",
		"--ignore-preflight-errors=FileAvailable--etc-kubernetes-pki-ca.crt"); err != nil {
		return fmt.Errorf("kubeadm join: %w", err)
	}
	return nil
}
