package playbooks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// drainNode cordons a node and evicts its pods through the Eviction API, so
// PodDisruptionBudgets are honoured: an eviction a budget refuses is
// retried until timeout. Mirror pods (static pods) and DaemonSet pods stay,
// as with `kubectl drain --ignore-daemonsets`. It returns once no evictable
// pod is left on the node.
func drainNode(ctx context.Context, client kubernetes.Interface, node string, timeout time.Duration) error {
	_, err := client.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType,
		[]byte(`{"spec":{"unschedulable":true}}`), metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil // not in the cluster: nothing runs there
	}
	if err != nil {
		return fmt.Errorf("cordon: %w", err)
	}
	var blocked []string
	err = pollUntil(ctx, time.Second, timeout, func(ctx context.Context) (bool, error) {
		pods, err := evictablePods(ctx, client, node)
		if err != nil {
			return false, err
		}
		blocked = blocked[:0]
		for _, p := range pods {
			if p.DeletionTimestamp != nil {
				blocked = append(blocked, p.Namespace+"/"+p.Name+" (terminating)")
				continue
			}
			err := client.PolicyV1().Evictions(p.Namespace).Evict(ctx, &policyv1.Eviction{
				ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace}})
			switch {
			case err == nil, apierrors.IsNotFound(err):
			case apierrors.IsTooManyRequests(err):
				blocked = append(blocked, fmt.Sprintf("%s/%s (%v)", p.Namespace, p.Name, err))
			default:
				return false, fmt.Errorf("evict %s/%s: %w", p.Namespace, p.Name, err)
			}
		}
		return len(pods) == 0, nil
	})
	if errors.Is(err, errPollTimeout) {
		return fmt.Errorf("drain: pods still on the node after %s: %s; fix the PodDisruptionBudget or raise --drain-timeout",
			timeout, strings.Join(blocked, "; "))
	}
	return err
}

// evictablePods lists the node's pods a drain must move.
func evictablePods(ctx context.Context, client kubernetes.Interface, node string) ([]corev1.Pod, error) {
	list, err := client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return nil, fmt.Errorf("list pods on %s: %w", node, err)
	}
	var out []corev1.Pod
	for _, p := range list.Items {
		if _, mirror := p.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
			continue
		}
		if owner := metav1.GetControllerOf(&p); owner != nil && owner.Kind == "DaemonSet" {
			continue
		}
		out = append(out, p)
	}
	return out, nil
}
