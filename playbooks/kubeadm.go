package playbooks

import (
	"context"
	"errors"
	"fmt"
	"strconv"
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
	c := kubeadm.Cluster{
		Name: inv.Cluster.Name, KubernetesVersion: inv.Cluster.KubernetesVersion,
		ControlPlaneEndpoint: inv.Cluster.ControlPlaneEndpoint,
		PodSubnet:            inv.Cluster.PodSubnet, ServiceSubnet: inv.Cluster.ServiceSubnet,
		AllowSwap: inv.Cluster.AllowSwap, AllowCgroupV1: inv.Cluster.AllowCgroupV1, NoKubeProxy: !inv.Cluster.KubeProxyEnabled(),
	}
	if inv.Cluster.NodeLocalProxy {
		// Kubelets reach the API servers through their node's
		// 127.0.0.1: the certificates must name it.
		c.CertSANs = []string{"127.0.0.1", "localhost"}
	}
	return c
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
	return withSecretFile(ctx, r, host, name, timeout, config, func(path string) string {
		return exec.Command(append([]string{"kubeadm"}, append(args, "--config", path)...)...)
	})
}

// secretFileCleanup bounds the removal of a secret-bearing file after its
// command was killed.
const secretFileCleanup = 30 * time.Second

// withSecretFile uploads content to fleetDir/name (0600, in a 0700 folder),
// runs the command built around its path, and removes the file in the same
// remote command. Secrets travel this way, never as arguments: a command
// line shows in /proc/<pid>/cmdline to every local user and in sudo's log.
// A file that cannot be removed is an error, naming it.
func withSecretFile(ctx context.Context, r remote, host, name string, timeout time.Duration, content []byte, command func(path string) string) (exec.Result, error) {
	path := fleetDir + "/" + name
	if err := r.ensureDir(ctx, host, fleetDir, 0o700); err != nil {
		return exec.Result{}, err
	}
	if err := r.upload(ctx, host, path, content, 0o600); err != nil {
		return exec.Result{}, err
	}
	if timeout <= 0 {
		timeout = kubeadmTimeout
	}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	q := exec.Quote(path)
	res, err := r.run(runCtx, host, "{ "+command(path)+"; }; rc=$?; rm -f -- "+q+
		" && test ! -e "+q+" || { echo "+exec.Quote("fleet: cannot remove "+path)+" >&2; exit "+strconv.Itoa(removeFailed)+"; }; exit $rc")
	if runCtx.Err() != nil {
		// Killed before its own clean-up: remove the file now.
		cleanCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), secretFileCleanup)
		defer cancel()
		if _, rmErr := r.run(cleanCtx, host, exec.Command("rm", "-f", "--", path)); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("%s (holds secrets) may be left on %s: %w", path, host, rmErr))
		}
	}
	if errors.Is(runCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		return res, fmt.Errorf("still running after %s (--kubeadm-timeout), killed on the host with what it started: %w", timeout, err)
	}
	if res.ExitCode == removeFailed {
		return res, fmt.Errorf("%s holds secrets and could not be removed on %s: %w", path, host, err)
	}
	return res, err
}

// removeFailed is the exit status of a command whose secret file stayed.
const removeFailed = 97

// uploadCerts uploads the control-plane certificates to the kubeadm-certs
// Secret, encrypted with key, for masters to join with. The key goes in
// the config file kubeadm reads; kubeadm prints it, so stdout is dropped.
func uploadCerts(ctx context.Context, r remote, inv *inventory.Inventory, master, key string) error {
	cfg, err := kubeadm.InitConfig(clusterOf(inv), nodeOf(inv, master), kubeadm.Token{}, "", key)
	if err != nil {
		return err
	}
	_, err = withSecretFile(ctx, r, master, "kubeadm-upload-certs.yaml", 0, cfg, func(path string) string {
		return exec.Command("kubeadm", "init", "phase", "upload-certs", "--upload-certs", "--config", path) + " >/dev/null"
	})
	return err
}

// kubeadmCertsSecret holds the control-plane certificates encrypted with
// the certificate key, for joining masters.
const kubeadmCertsSecret = "kubeadm-certs"

// controlPlaneLabel is set by kubeadm's mark-control-plane, the last thing
// a control-plane join does to the cluster.
const controlPlaneLabel = "node-role.kubernetes.io/control-plane"
