package playbooks

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// adminKubeconfig fetches admin.conf from the first master and points it at
// the load balancer, so the operator's kubectl survives losing a master.
func (a *applyRun) adminKubeconfig(ctx context.Context) ([]byte, error) {
	return adminKubeconfigOf(ctx, a.s, a.first)
}

// kubeconfigCurrent: the local kubeconfig is what fleet would write and
// every inventory node is Ready.
func (a *applyRun) kubeconfigCurrent(ctx context.Context, _ string) (bool, string, error) {
	want := a.kubeconfig // read by the credentials step, when it ran
	if want == nil {
		var err error
		if want, err = a.adminKubeconfig(ctx); err != nil {
			return false, "", err
		}
		a.kubeconfig = want
	}
	have, err := os.ReadFile(a.opts.Kubeconfig)
	if err != nil || !bytes.Equal(have, want) {
		return false, "", nil
	}
	if missing, err := a.notReady(ctx); err != nil || len(missing) > 0 {
		return false, "", nil
	}
	return true, "kubeconfig current, every node Ready", nil
}

// writeKubeconfig writes the kubeconfig (0600, atomically) and waits until
// every inventory node is Registered and Ready.
func (a *applyRun) writeKubeconfig(ctx context.Context, _ string) error {
	if err := writeFileAtomic(a.opts.Kubeconfig, a.kubeconfig, 0o600); err != nil {
		return err
	}
	return a.waitReady(ctx, "")
}

// ensureClient loads the admin kubeconfig unless a step already has.
func (a *applyRun) ensureClient(ctx context.Context) (kubernetes.Interface, error) {
	if a.kubeconfig == nil {
		kc, err := a.adminKubeconfig(ctx)
		if err != nil {
			return nil, err
		}
		a.kubeconfig = kc
	}
	return a.client()
}

// client talks to the API through the load balancer with the admin
// kubeconfig the kubeconfig step fetched.
func (a *applyRun) client() (kubernetes.Interface, error) {
	rest, err := clientcmd.RESTConfigFromKubeConfig(a.kubeconfig)
	if err != nil {
		return nil, err
	}
	rest.Timeout = 10 * time.Second
	return kubernetes.NewForConfig(rest)
}

// notReady lists inventory nodes that are missing or not Ready.
func (a *applyRun) notReady(ctx context.Context) ([]string, error) {
	client, err := a.client()
	if err != nil {
		return nil, err
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	ready := map[string]bool{}
	for _, n := range nodes.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready[n.Name] = true
			}
		}
	}
	var missing []string
	for _, h := range a.s.Inv.Hosts() {
		if (h.Role == "master" || h.Role == "worker") && !ready[h.Name] && a.concerns(h.Name) {
			missing = append(missing, h.Name)
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
