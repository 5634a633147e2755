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
	// A join interrupted here (connection lost, Ctrl-C) left kubeadm's
	// files and a kubelet without credentials; kubeadm's preflight would
	// refuse a second join, so clear them first, as kubeadm reset does.
	if left, err := joinLeftovers(ctx, a.s, host); err != nil {
		return err
	} else if left {
		if err := a.clearInterruptedJoin(ctx, host); err != nil {
			return fmt.Errorf("clear the leftovers of an interrupted join: %w", err)
		}
		// Its kubelet may have registered the Node before the join was cut
		// off; kubeadm refuses to join over a Ready Node of the same name.
		client, err := a.ensureClient(ctx)
		if err != nil {
			return err
		}
		if err := client.CoreV1().Nodes().Delete(ctx, host, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete the Node the interrupted join registered: %w", err)
		}
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
	if _, err := runKubeadm(ctx, a.s, host, "kubeadm-join.yaml", cfg, "join",
		"--ignore-preflight-errors=FileAvailable--etc-kubernetes-pki-ca.crt"); err != nil {
		return fmt.Errorf("kubeadm join: %w", err)
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

// joinLeftovers: kubeadm join's kubelet-start phase ran on the host but the
// kubelet has no credentials (the caller knows kubelet.conf is absent).
func joinLeftovers(ctx context.Context, s *Session, host string) (bool, error) {
	res, err := s.run(ctx, host, "for f in "+bootstrapKubeconfig+" "+kubeletFlagsFile+" "+kubeletConfigFile+`; do [ -e "$f" ] && { echo left; exit 0; }; done; echo clean`)
	if err != nil {
		return false, err
	}
	return res.Stdout == "left\n", nil
}

// clearInterruptedJoin resets the host until nothing of the join is left
// and its kubelet has stopped: a kubelet still finishing its TLS bootstrap
// when kubeadm reset ran can write kubelet.conf again before it stops.
func (a *applyRun) clearInterruptedJoin(ctx context.Context, host string) error {
	for attempt := 1; ; attempt++ {
		if err := kubeadmReset(ctx, a.s, host); err != nil {
			return err
		}
		if err := waitKubeletStopped(ctx, a.s, host); err != nil {
			return err
		}
		left, err := joinLeftovers(ctx, a.s, host)
		if err != nil {
			return err
		}
		joined, _, err := joined(ctx, a.s, host)
		if err != nil {
			return err
		}
		if !left && !joined {
			return nil
		}
		if attempt == 3 {
			return fmt.Errorf("kubeadm reset -f left the join's files behind three times")
		}
	}
}

// kubeletHealthzPort is where every kubelet answers /healthz (127.0.0.1).
const kubeletHealthzPort = "10248"

// waitKubeletStopped waits until no kubelet listens on the host: kubeadm
// reset stops it, but a kubelet may take a moment to go.
func waitKubeletStopped(ctx context.Context, s *Session, host string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := s.run(ctx, host, "ss -Hltn")
		if err != nil {
			return err
		}
		if len(taken(parseListeners(res.Stdout), []string{kubeletHealthzPort})) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the kubelet still runs 30s after kubeadm reset")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
