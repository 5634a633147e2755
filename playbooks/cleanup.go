package playbooks

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetops/fleet/internal/kubeadm"
	"github.com/fleetops/fleet/internal/steps"
)

// cleanupTokensPhase deletes the bootstrap tokens an apply or join made
// (this run's, and those an interrupted run left behind), and the uploaded
// control-plane certificates once no master is left to join: the
// kubeadm-certs Secret holds every control-plane key, encrypted with a key
// the run knew, and would otherwise stay up to two hours with the proxy
// token that owns it.
type cleanupTokensPhase struct {
	access *steps.Output[*clusterAccess]
}

func (p *cleanupTokensPhase) check(ctx context.Context, _ probe, _ string) (bool, string, error) {
	access, err := p.access.Get(ctx)
	if err != nil {
		return false, "", err
	}
	left, err := findLeftovers(ctx, access.client)
	if err != nil {
		return false, "", err
	}
	if left.empty() {
		return true, "no fleet apply token and no uploaded certificates left", nil
	}
	return false, "", nil
}

func (p *cleanupTokensPhase) run(ctx context.Context, r remote, _ string) error {
	access, err := p.access.Get(ctx)
	if err != nil {
		return err
	}
	left, err := findLeftovers(ctx, access.client)
	if err != nil {
		return err
	}
	if err := left.delete(ctx, access.client); err != nil {
		return err
	}
	if left.certs {
		r.note("cleanup-tokens", "", "deleted the kubeadm-certs Secret (the uploaded control-plane keys) and its proxy token: no master is left to join")
	}
	return nil
}

// leftovers are what joins needed and no longer do.
type leftovers struct {
	tokens []string // IDs of fleet apply's tokens and of kubeadm-certs' proxy tokens
	certs  bool     // the kubeadm-certs Secret exists
}

func (l leftovers) empty() bool { return len(l.tokens) == 0 && !l.certs }

func findLeftovers(ctx context.Context, client kubernetes.Interface) (leftovers, error) {
	ids, err := fleetTokens(ctx, client)
	if err != nil {
		return leftovers{}, err
	}
	proxies, certs, err := uploadedCerts(ctx, client)
	if err != nil {
		return leftovers{}, err
	}
	return leftovers{tokens: append(ids, proxies...), certs: certs}, nil
}

func (l leftovers) delete(ctx context.Context, client kubernetes.Interface) error {
	secrets := client.CoreV1().Secrets(metav1.NamespaceSystem)
	if l.certs {
		if err := secrets.Delete(ctx, kubeadmCertsSecret, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete the %s Secret: %w", kubeadmCertsSecret, err)
		}
	}
	for _, id := range l.tokens {
		err := secrets.Delete(ctx, kubeadm.BootstrapSecretName(id), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete bootstrap token %s: %w", id, err)
		}
	}
	return nil
}

// uploadedCerts says whether the kubeadm-certs Secret exists, and lists
// the tokens kubeadm made to own it: the current owner, and those of
// earlier uploads whose Secret is gone.
func uploadedCerts(ctx context.Context, client kubernetes.Interface) (proxies []string, exists bool, err error) {
	proxies, err = tokensDescribed(ctx, client, kubeadm.CertsProxyDescription)
	if err != nil {
		return nil, false, err
	}
	_, err = client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, kubeadmCertsSecret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return proxies, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("look up the %s Secret: %w", kubeadmCertsSecret, err)
	}
	return proxies, true, nil
}

// fleetTokens lists the IDs of bootstrap tokens an apply made.
func fleetTokens(ctx context.Context, client kubernetes.Interface) ([]string, error) {
	return tokensDescribed(ctx, client, kubeadm.TokenDescription)
}

// tokensDescribed lists the IDs of the bootstrap tokens with a description.
func tokensDescribed(ctx context.Context, client kubernetes.Interface, description string) ([]string, error) {
	secrets, err := client.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{FieldSelector: "type=" + string(kubeadm.BootstrapTokenType)})
	if err != nil {
		return nil, fmt.Errorf("list bootstrap tokens: %w", err)
	}
	var ids []string
	for _, sec := range secrets.Items {
		if string(sec.Data["description"]) == description {
			ids = append(ids, string(sec.Data["token-id"]))
		}
	}
	return ids, nil
}
