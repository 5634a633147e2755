package playbooks

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	if cleared, err := a.clearCutJoin(ctx, host); err != nil {
		return err
	} else if cleared {
		// kubeadm reset took the CA fleet had copied.
		if err := a.distributeCA(ctx, host); err != nil {
			return err
		}
	}
	tok, err := a.validToken(ctx)
	if err != nil {
		return err
	}
	cfg, err := kubeadm.JoinConfig(clusterOf(a.s.Inv), kubeadm.Node{Name: w.Name, AdvertiseAddress: w.Address}, tok, a.caHash, "")
	if err != nil {
		return err
	}
	// The CA fleet copied is the one the hash pins; kubeadm's preflight
	// would otherwise refuse a ca.crt that is already there.
	if _, err := runKubeadm(ctx, a.s, host, "kubeadm-join.yaml", a.opts.KubeadmTimeout, cfg, "join",
		"--ignore-preflight-errors=FileAvailable--etc-kubernetes-pki-ca.crt"); err != nil {
		return joinError("kubeadm join", host, err)
	}
	return nil
}

// tokenMargin: a join does not start with a token that expires sooner (it
// discovers the cluster and the kubelet bootstraps with it).
const tokenMargin = time.Minute

// validToken returns the run's token, or a new one when it is gone (the
// token cleaner deletes expired ones) or about to expire: a slow run or a
// short --token-ttl must not make the joins fail. The new one has the run's
// description, so cleanup-tokens deletes it too.
func (a *applyRun) validToken(ctx context.Context) (kubeadm.Token, error) {
	a.tokenMu.Lock()
	defer a.tokenMu.Unlock()
	client, err := a.ensureClient(ctx)
	if err != nil {
		return kubeadm.Token{}, err
	}
	secrets := client.CoreV1().Secrets(metav1.NamespaceSystem)
	sec, err := secrets.Get(ctx, kubeadm.BootstrapSecretName(a.token.ID), metav1.GetOptions{})
	switch {
	case err == nil:
		if info, ok := kubeadm.ReadTokenInfo(sec); ok && (info.Expires.IsZero() || time.Until(info.Expires) > tokenMargin) {
			return a.token, nil
		}
	case !apierrors.IsNotFound(err):
		return kubeadm.Token{}, fmt.Errorf("look up bootstrap token %s: %w", a.token.ID, err)
	}
	tok, err := kubeadm.NewToken()
	if err != nil {
		return kubeadm.Token{}, err
	}
	a.s.Redactor.Add(tok.Secret, tok.String())
	ttl := max(a.opts.TokenTTL, 2*tokenMargin)
	if _, err := secrets.Create(ctx, kubeadm.BootstrapSecret(tok, ttl, time.Now(), kubeadm.TokenDescription), metav1.CreateOptions{}); err != nil {
		return kubeadm.Token{}, fmt.Errorf("replace the expired bootstrap token %s: %w", a.token.ID, err)
	}
	a.token = tok
	return tok, nil
}
