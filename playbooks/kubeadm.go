package playbooks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/kubeadm"
	"github.com/fleetops/fleet/inventory"
)

// Files kubeadm leaves that prove a node's state; fleet invents no markers.
const (
	adminConf     = "/etc/kubernetes/admin.conf"
	kubeletConf   = "/etc/kubernetes/kubelet.conf"
	apiserverYAML = "/etc/kubernetes/manifests/kube-apiserver.yaml"
	caCert        = "/etc/kubernetes/pki/ca.crt"
	// fleet's own config files on a host hold tokens and keys: 0600, in a
	// 0700 folder, deleted once kubeadm has read them.
	fleetDir = "/etc/fleet"
)

// kubeadmTimeout bounds one kubeadm reset, and an init or join when the
// options do not say.
const kubeadmTimeout = 10 * time.Minute

func clusterOf(inv *inventory.Inventory) kubeadm.Cluster {
	return kubeadm.Cluster{
		Name: inv.Cluster.Name, KubernetesVersion: inv.Cluster.KubernetesVersion,
		ControlPlaneEndpoint: inv.Cluster.ControlPlaneEndpoint,
		PodSubnet:            inv.Cluster.PodSubnet, ServiceSubnet: inv.Cluster.ServiceSubnet,
	}
}

// initialised: kubeadm init (or a control-plane join) completed here.
func initialised(ctx context.Context, p probe, host string) (bool, string, error) {
	ok, err := p.allExist(ctx, host, adminConf, apiserverYAML)
	if err != nil || !ok {
		return false, "", err
	}
	return true, initialisedReason, nil
}

// joined: the node's kubelet has its credentials.
func joined(ctx context.Context, p probe, host string) (bool, string, error) {
	ok, err := p.allExist(ctx, host, kubeletConf)
	if err != nil || !ok {
		return false, "", err
	}
	return true, "joined (kubelet.conf present)", nil
}

// runKubeadm uploads a config (0600, in a 0700 folder), runs kubeadm with
// it and removes it, in one remote command after the upload: this is the
// critical path of an apply, and every round trip shows in its wall time.
// A kubeadm still running after timeout is killed with what it started.
func runKubeadm(ctx context.Context, r remote, host, name string, timeout time.Duration, config []byte, args ...string) (exec.Result, error) {
	path := fleetDir + "/" + name
	if err := r.ensureDir(ctx, host, fleetDir, 0o700); err != nil {
		return exec.Result{}, err
	}
	if err := r.upload(ctx, host, path, config, 0o600); err != nil {
		return exec.Result{}, err
	}
	if timeout <= 0 {
		timeout = kubeadmTimeout
	}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	kubeadm := exec.Command(append([]string{"kubeadm"}, append(args, "--config", path)...)...)
	res, err := r.run(runCtx, host, kubeadm+"; rc=$?; rm -f "+exec.Quote(path)+"; exit $rc")
	if runCtx.Err() != nil {
		// Killed before its own clean-up: remove the secret-bearing file.
		r.run(context.WithoutCancel(ctx), host, exec.Command("rm", "-f", path))
	}
	if errors.Is(runCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		return res, fmt.Errorf("still running after %s (--kubeadm-timeout), killed on the host with what it started: %w", timeout, err)
	}
	return res, err
}

// uploadCerts uploads the control-plane certificates to the kubeadm-certs
// Secret, encrypted with key, for masters to join with.
func uploadCerts(ctx context.Context, r remote, master, key string) error {
	_, err := r.run(ctx, master, exec.Command("kubeadm", "init", "phase", "upload-certs", "--upload-certs", "--certificate-key", key))
	return err
}

// kubeadmCertsSecret holds the control-plane certificates encrypted with
// the certificate key, for joining masters.
const kubeadmCertsSecret = "kubeadm-certs"

// controlPlaneLabel is set by kubeadm's mark-control-plane, the last thing
// a control-plane join does to the cluster.
const controlPlaneLabel = "node-role.kubernetes.io/control-plane"
