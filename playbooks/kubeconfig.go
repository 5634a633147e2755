package playbooks

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fleetops/fleet/internal/steps"
)

// kubeconfigPhase writes the admin kubeconfig on the operator's machine
// (0600, atomically, server = the load balancer) and waits until every
// node of the run is Registered and Ready.
type kubeconfigPhase struct {
	path string
	readiness
}

// check: the local kubeconfig is what fleet would write and every node is
// Ready.
func (p *kubeconfigPhase) check(ctx context.Context, _ probe, _ string) (bool, string, error) {
	access, err := p.access.Get(ctx)
	if err != nil {
		return false, "", err
	}
	have, err := os.ReadFile(p.path)
	if err != nil || !bytes.Equal(have, access.kubeconfig) {
		return false, "", nil
	}
	if missing, err := notReady(ctx, access.client, p.nodes); err != nil || len(missing) > 0 {
		return false, "", nil
	}
	return true, "kubeconfig current, every node Ready", nil
}

func (p *kubeconfigPhase) run(ctx context.Context, r remote, _ string) error {
	access, err := p.access.Get(ctx)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(p.path, access.kubeconfig, 0o600); err != nil {
		return err
	}
	return p.readiness.run(ctx, r, "")
}

// readiness is the phase that waits until nodes are Registered and Ready
// (fleet join's last step before clean-up; apply's kubeconfig step).
type readiness struct {
	nodes   []string
	timeout time.Duration
	access  *steps.Output[*clusterAccess]
}

func (p *readiness) check(ctx context.Context, _ probe, _ string) (bool, string, error) {
	access, err := p.access.Get(ctx)
	if err != nil {
		return false, "", err
	}
	missing, err := notReady(ctx, access.client, p.nodes)
	if err != nil {
		return false, "", err
	}
	if len(missing) == 0 {
		return true, "every named node is Ready", nil
	}
	return false, "", nil
}

func (p *readiness) run(ctx context.Context, _ remote, _ string) error {
	access, err := p.access.Get(ctx)
	if err != nil {
		return err
	}
	return waitReady(ctx, access.client, p.nodes, p.timeout)
}

// waitReady polls until every one of nodes is Registered and Ready.
func waitReady(ctx context.Context, client kubernetes.Interface, nodes []string, limit time.Duration) error {
	var missing []string
	var last error
	err := pollUntil(ctx, time.Second, limit, func(ctx context.Context) (bool, error) {
		missing, last = notReady(ctx, client, nodes)
		return last == nil && len(missing) == 0, nil
	})
	if err == errPollTimeout {
		return fmt.Errorf("nodes not Ready after %s: %v (last error: %v)", limit, missing, last)
	}
	return err
}

// notReady lists the nodes that are missing or not Ready.
func notReady(ctx context.Context, client kubernetes.Interface, nodes []string) ([]string, error) {
	list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	ready := map[string]bool{}
	for _, n := range list.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready[n.Name] = true
			}
		}
	}
	var missing []string
	for _, n := range nodes {
		if !ready[n] {
			missing = append(missing, n)
		}
	}
	return missing, nil
}

// clientKeys returns the private key material in a kubeconfig, to redact.
func clientKeys(kubeconfig []byte) []string {
	cfg, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil
	}
	var out []string
	for _, u := range cfg.AuthInfos {
		if len(u.ClientKeyData) > 0 {
			out = append(out, string(u.ClientKeyData))
		}
		if u.Token != "" {
			out = append(out, u.Token)
		}
	}
	return out
}

// writeFileAtomic writes a file on the operator's machine: temp file in the
// same folder, fsync, rename.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".fleet-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
