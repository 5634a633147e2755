package playbooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubectl/pkg/drain"
)

// drainOptions are `kubectl drain`'s choices, as fleet remove offers them.
type drainOptions struct {
	timeout time.Duration // PodDisruptionBudgets may hold evictions this long
	// force deletes pods no controller manages (nothing recreates them).
	force bool
	// deleteEmptyDirData evicts pods whose emptyDir data is lost with them.
	deleteEmptyDirData bool
}

// kubectl's refusals name its own flags; fleet remove's are these.
var fleetDrainFlags = strings.NewReplacer(
	"(use --force to override)", "(fleet remove --force-drain deletes them)",
	"(use --delete-emptydir-data to override)", "(fleet remove --delete-emptydir-data deletes them)")

// drainer is kubectl drain's helper with fleet's options: DaemonSet pods
// stay (--ignore-daemonsets), mirror pods are never touched, evictions go
// through the Eviction API so that PodDisruptionBudgets are honoured, and
// pods get their own grace period.
func drainer(ctx context.Context, client kubernetes.Interface, opts drainOptions) *drain.Helper {
	return &drain.Helper{Ctx: ctx, Client: client, Force: opts.force, DeleteEmptyDirData: opts.deleteEmptyDirData,
		IgnoreAllDaemonSets: true, GracePeriodSeconds: -1, Timeout: opts.timeout, Out: io.Discard, ErrOut: io.Discard}
}

// podsToMove lists the pods a drain would evict, or says which pods it
// refuses to delete without the flags and why.
func podsToMove(h *drain.Helper, node string) (int, error) {
	list, errs := h.GetPodsForDeletion(node)
	if len(errs) > 0 {
		return 0, errors.New(fleetDrainFlags.Replace(utilerrors.NewAggregate(errs).Error()))
	}
	return len(list.Pods()), nil
}

// drainNode cordons a node and evicts its pods as `kubectl drain` does. A
// node not in the cluster has nothing to drain.
func drainNode(ctx context.Context, client kubernetes.Interface, node string, opts drainOptions) error {
	n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cordon: %w", err)
	}
	h := drainer(ctx, client, opts)
	refusal := &lastLine{}
	h.ErrOut = refusal
	// Refuse before cordoning: a drain that cannot finish leaves the node
	// as it was.
	if _, err := podsToMove(h, node); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	if err := drain.RunCordonOrUncordon(h, n, true); err != nil {
		return err
	}
	if err := drain.RunNodeDrain(h, node); err != nil {
		if why := refusal.String(); why != "" {
			return fmt.Errorf("drain: %w; the API last said: %s (a PodDisruptionBudget holds the eviction: fix the budget or raise --drain-timeout)", err, why)
		}
		return fmt.Errorf("drain: %w", err)
	}
	return nil
}

// lastLine keeps the last retry kubectl's helper printed: the API's reason
// for refusing an eviction, which the helper's timeout error leaves out.
// Evictions run in parallel, hence the lock.
type lastLine struct {
	mu   sync.Mutex
	line string
}

func (l *lastLine) Write(p []byte) (int, error) {
	for _, line := range strings.Split(string(p), "\n") {
		if strings.Contains(line, "will retry") { // not the DaemonSet warnings
			l.mu.Lock()
			l.line = strings.TrimSpace(line)
			l.mu.Unlock()
		}
	}
	return len(p), nil
}

func (l *lastLine) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.line
}
