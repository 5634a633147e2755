package node

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// FinishDeletions completes the graceful deletion of the node's regular
// pods, as a kubelet does once it has stopped their containers: the API
// keeps a pod bound to a node until that node's kubelet deletes it with a
// zero grace period. The emulation runs no containers for regular pods, so
// there is nothing to stop first. Evictions (kubectl drain, fleet remove)
// wait for exactly this.
func (a *Agent) FinishDeletions(ctx context.Context) error {
	pods, err := a.nodePods(ctx)
	if err != nil {
		return err
	}
	for _, p := range pods {
		if p.DeletionTimestamp == nil {
			continue
		}
		if _, mirror := p.Annotations[MirrorAnnotation]; mirror {
			continue // SyncMirrors owns these
		}
		err := a.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
			GracePeriodSeconds: ptr.To[int64](0),
			Preconditions:      &metav1.Preconditions{UID: &p.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("finish deleting pod %s/%s: %w", p.Namespace, p.Name, err)
		}
	}
	return nil
}
