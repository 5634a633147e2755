package playbooks

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
func initialised(ctx context.Context, s *Session, host string) (bool, string, error) {
	ok, err := s.allExist(ctx, host, adminConf, apiserverYAML)
	if err != nil || !ok {
		return false, "", err
	}
	return true, "control plane present (admin.conf, kube-apiserver manifest)", nil
}

// isJoined is joined, answered from what the credentials step learned
// moments before when it can be.
func (a *applyRun) isJoined(ctx context.Context, host string) (bool, string, error) {
	if done, known := a.joinedAt[host]; known {
		switch {
		case !done:
			return false, "", nil
		case a.s.Inv.Host(host).Role == inventory.RoleMaster:
			return true, "joined (kubelet.conf present, Node marked control-plane)", nil
		default:
			return true, "joined (kubelet.conf present)", nil
		}
	}
	return joined(ctx, a.s, host)
}

// joined: the node's kubelet has its credentials.
func joined(ctx context.Context, s *Session, host string) (bool, string, error) {
	ok, err := s.allExist(ctx, host, kubeletConf)
	if err != nil || !ok {
		return false, "", err
	}
	return true, "joined (kubelet.conf present)", nil
}

// runKubeadm uploads a config (0600, in a 0700 folder), runs kubeadm with
// it and removes it, in one remote command after the upload: this is the
// critical path of an apply, and every round trip shows in its wall time.
// A kubeadm still running after timeout is killed with what it started.
func runKubeadm(ctx context.Context, s *Session, host, name string, timeout time.Duration, config []byte, args ...string) (exec.Result, error) {
	path := fleetDir + "/" + name
	conn, err := s.Conn(ctx, host)
	if err != nil {
		return exec.Result{}, err
	}
	if err := conn.EnsureDir(ctx, fleetDir, 0o700); err != nil {
		return exec.Result{}, err
	}
	if err := conn.Upload(ctx, path, config, 0o600); err != nil {
		return exec.Result{}, err
	}
	if timeout <= 0 {
		timeout = kubeadmTimeout
	}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	kubeadm := exec.Command(append([]string{"kubeadm"}, append(args, "--config", path)...)...)
	res, err := s.run(runCtx, host, kubeadm+"; rc=$?; rm -f "+exec.Quote(path)+"; exit $rc")
	if runCtx.Err() != nil {
		// Killed before its own clean-up: remove the secret-bearing file.
		s.run(context.WithoutCancel(ctx), host, exec.Command("rm", "-f", path))
	}
	if errors.Is(runCtx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		return res, fmt.Errorf("still running after %s (--kubeadm-timeout), killed on the host with what it started: %w", timeout, err)
	}
	return res, err
}

func (a *applyRun) initFirstMaster(ctx context.Context, host string) error {
	m := a.s.Inv.Host(host)
	if err := a.newCredentials(); err != nil {
		return err
	}
	cfg, err := kubeadm.InitConfig(clusterOf(a.s.Inv), kubeadm.Node{Name: m.Name, AdvertiseAddress: m.Address},
		a.token, a.opts.TokenTTL.String(), a.certKey)
	if err != nil {
		return err
	}
	if _, err := runKubeadm(ctx, a.s, host, "kubeadm-init.yaml", a.opts.KubeadmTimeout, cfg, "init", "--upload-certs"); err != nil {
		return fmt.Errorf("kubeadm init: %w", err)
	}
	a.tokenCreated = true
	a.certsUploaded = true
	return nil
}

// unjoined asks every master (but the first) and worker, in parallel,
// whether it has joined, and returns those that have not, by role.
func (a *applyRun) unjoined(ctx context.Context) (masters, workers []string, err error) {
	var candidates []*inventory.Host
	for _, h := range a.s.Inv.Hosts() {
		if (h.Role == inventory.RoleMaster || h.Role == inventory.RoleWorker) && h.Name != a.first && a.concerns(h.Name) {
			candidates = append(candidates, h)
		}
	}
	names := make([]string, len(candidates))
	for i, h := range candidates {
		names[i] = h.Name
	}
	done, errs := onEach(names, 32, func(host string) (bool, error) {
		ok, _, err := joined(ctx, a.s, host)
		return ok, err
	})
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	if err := a.unmarkCutMasters(ctx, candidates, done); err != nil {
		return nil, nil, err
	}
	a.joinedAt = map[string]bool{}
	for i, h := range candidates {
		a.joinedAt[h.Name] = done[i]
		switch {
		case done[i]:
		case h.Role == inventory.RoleMaster:
			masters = append(masters, h.Name)
		default:
			workers = append(workers, h.Name)
		}
	}
	return masters, workers, nil
}

// controlPlaneLabel is set by kubeadm's mark-control-plane, the last thing
// a control-plane join does to the cluster.
const controlPlaneLabel = "node-role.kubernetes.io/control-plane"

// unmarkCutMasters turns a master's "joined" into "not joined" when its
// Node is not marked as a control plane: the kubelet has its credentials,
// but the join was cut short before its etcd and mark-control-plane
// phases had finished, and only a new join completes it.
func (a *applyRun) unmarkCutMasters(ctx context.Context, candidates []*inventory.Host, done []bool) error {
	var asked bool
	var marked map[string]bool
	for i, h := range candidates {
		if !done[i] || h.Role != inventory.RoleMaster {
			continue
		}
		if !asked {
			client, err := a.ensureClient(ctx)
			if err != nil {
				return err
			}
			nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: controlPlaneLabel})
			if err != nil {
				return fmt.Errorf("list the control-plane Nodes: %w", err)
			}
			marked, asked = map[string]bool{}, true
			for _, n := range nodes.Items {
				marked[n.Name] = true
			}
		}
		done[i] = marked[h.Name]
	}
	return nil
}

// credentialsReady: nothing left to join, so no token or key is needed.
func (a *applyRun) credentialsReady(ctx context.Context, _ string) (bool, string, error) {
	masters, workers, err := a.unjoined(ctx)
	if err != nil {
		return false, "", err
	}
	a.pendingMasters = len(masters)
	if len(masters)+len(workers) == 0 {
		return true, "every node has joined: no token needed", nil
	}
	return false, "", nil
}

// prepareCredentials makes what the joins need: a short-lived token (unless
// init just made one), the control-plane certificates uploaded under a fresh
// key when masters will join, and the CA hash computed from ca.crt.
func (a *applyRun) prepareCredentials(ctx context.Context, _ string) error {
	if !a.tokenCreated {
		if err := a.newCredentials(); err != nil {
			return err
		}
		cmd := exec.Command("kubeadm", "token", "create", a.token.String(), "--ttl", a.opts.TokenTTL.String(),
			"--description", kubeadm.TokenDescription)
		if _, err := a.s.run(ctx, a.first, cmd); err != nil {
			return fmt.Errorf("kubeadm token create: %w", err)
		}
		a.tokenCreated = true
	}
	if a.pendingMasters > 0 && !a.certsUploaded {
		cmd := exec.Command("kubeadm", "init", "phase", "upload-certs", "--upload-certs", "--certificate-key", a.certKey)
		if _, err := a.s.run(ctx, a.first, cmd); err != nil {
			return fmt.Errorf("kubeadm init phase upload-certs: %w", err)
		}
		a.certsUploaded = true
	}
	// The admin kubeconfig (for the joins' checks) is read meanwhile.
	clientErr := make(chan error, 1)
	go func() {
		_, err := a.ensureClient(ctx)
		clientErr <- err
	}()
	ca, err := a.s.readFile(ctx, a.first, caCert)
	if err := <-clientErr; err != nil {
		return err
	}
	if err != nil {
		return err
	}
	hash, err := kubeadm.CAHash(ca)
	if err != nil {
		return err
	}
	a.caPEM, a.caHash = ca, hash
	return nil
}

func (a *applyRun) joinMaster(ctx context.Context, host string) error {
	m := a.s.Inv.Host(host)
	if _, err := a.clearCutJoin(ctx, host); err != nil {
		return err
	}
	if err := a.ensureCertsUploaded(ctx); err != nil {
		return err
	}
	tok, err := a.validToken(ctx)
	if err != nil {
		return err
	}
	cfg, err := kubeadm.JoinConfig(clusterOf(a.s.Inv), kubeadm.Node{Name: m.Name, AdvertiseAddress: m.Address}, tok, a.caHash, a.certKey)
	if err != nil {
		return err
	}
	if _, err := runKubeadm(ctx, a.s, host, "kubeadm-join.yaml", a.opts.KubeadmTimeout, cfg, "join"); err != nil {
		return joinError("kubeadm join --control-plane", host, err)
	}
	return nil
}

// ensureCertsUploaded re-uploads the control-plane certificates under a new
// key when the kubeadm-certs Secret is gone: it is deleted with the
// short-lived token that owns it (kubeadm's certificate-key TTL), and a
// join with a key whose Secret is gone cannot succeed.
func (a *applyRun) ensureCertsUploaded(ctx context.Context) error {
	client, err := a.ensureClient(ctx)
	if err != nil {
		return err
	}
	_, err = client.CoreV1().Secrets("kube-system").Get(ctx, kubeadmCertsSecret, metav1.GetOptions{})
	switch {
	case err == nil:
		return nil
	case !apierrors.IsNotFound(err):
		return fmt.Errorf("look up the uploaded certificates: %w", err)
	}
	key, err := kubeadm.NewCertificateKey()
	if err != nil {
		return err
	}
	a.s.Redactor.Add(key)
	cmd := exec.Command("kubeadm", "init", "phase", "upload-certs", "--upload-certs", "--certificate-key", key)
	if _, err := a.s.run(ctx, a.first, cmd); err != nil {
		return fmt.Errorf("re-upload the certificates (the kubeadm-certs Secret was gone): %w", err)
	}
	a.certKey = key
	a.certsRenewed++
	return nil
}

// kubeadmCertsSecret holds the control-plane certificates encrypted with
// the certificate key, for joining masters.
const kubeadmCertsSecret = "kubeadm-certs"

// concerns: the run works on this node (not excluded; among the named
// nodes when the run names them).
func (a *applyRun) concerns(host string) bool {
	if slices.Contains(a.opts.Exclude, host) {
		return false
	}
	return len(a.only) == 0 || slices.Contains(a.only, host)
}

// newCredentials makes the run's token and certificate key and registers
// them with the redactor before anything can print them.
func (a *applyRun) newCredentials() error {
	tok, err := kubeadm.NewToken()
	if err != nil {
		return err
	}
	key, err := kubeadm.NewCertificateKey()
	if err != nil {
		return err
	}
	a.s.Redactor.Add(tok.Secret, tok.String(), key)
	a.token, a.certKey = tok, key
	return nil
}
