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

// cleanupTokensPhase deletes the bootstrap tokens an apply or join made:
// this run's, and those an interrupted run left behind.
type cleanupTokensPhase struct {
	access *steps.Output[*clusterAccess]
}

func (p *cleanupTokensPhase) check(ctx context.Context, _ probe, _ string) (bool, string, error) {
	access, err := p.access.Get(ctx)
	if err != nil {
		return false, "", err
	}
	ids, err := fleetTokens(ctx, access.client)
	if err != nil {
		return false, "", err
	}
	if len(ids) == 0 {
		return true, "no fleet apply token left", nil
	}
	return false, "", nil
}

func (p *cleanupTokensPhase) run(ctx context.Context, _ remote, _ string) error {
	access, err := p.access.Get(ctx)
	if err != nil {
		return err
	}
	ids, err := fleetTokens(ctx, access.client)
	if err != nil {
		return err
	}
	for _, id := range ids {
		err := access.client.CoreV1().Secrets(metav1.NamespaceSystem).Delete(ctx, kubeadm.BootstrapSecretName(id), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete bootstrap token %s: %w", id, err)
		}
	}
	return nil
}

// fleetTokens lists the IDs of bootstrap tokens an apply made, read from
// their Secrets' description.
func fleetTokens(ctx context.Context, client kubernetes.Interface) ([]string, error) {
	secrets, err := client.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{FieldSelector: "type=" + string(kubeadm.BootstrapTokenType)})
	if err != nil {
		return nil, fmt.Errorf("list bootstrap tokens: %w", err)
	}
	var ids []string
	for _, sec := range secrets.Items {
		if string(sec.Data["description"]) == kubeadm.TokenDescription {
			ids = append(ids, string(sec.Data["token-id"]))
		}
	}
	return ids, nil
}
