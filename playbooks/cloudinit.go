package playbooks

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fleetops/fleet/internal/cloudinit"
	"github.com/fleetops/fleet/internal/kubeadm"
	"github.com/fleetops/fleet/inventory"
)

// `fleet cloud-init NODE` (seed 000's autojoin): user-data that makes a new
// worker join by itself, in its join mode, for fleets that grow beyond what
// one operator's machine should drive. What it holds is as short-lived as
// each mode allows: a bootstrap token with a TTL (kubeadm, tls-bootstrap),
// or (cfssl) a certificate fleet had the CA host sign now, so the CA host's
// auth key, which could sign any node, never goes into user-data.

// CloudInitOptions tune fleet cloud-init.
type CloudInitOptions struct {
	TokenTTL time.Duration // lifetime of the token in the user-data
}

// UserData is what cloud-init produced.
type UserData struct {
	Document []byte    // #cloud-config
	Mode     string    // the node's join mode
	Expires  time.Time // when the token stops working; zero in cfssl mode
	Secret   string    // what the document holds, in words, for the warning
}

// cloudInitJoinConfig is where kubeadm's join configuration waits for the
// first boot; it holds the token and is removed after the join.
const cloudInitJoinConfig = "/etc/kubernetes/fleet-join.yaml"

// cloudInitDescription marks the tokens cloud-init makes: apply's clean-up
// leaves them (a machine may boot later), rotate-tokens deletes them.
const cloudInitDescription = "fleet cloud-init: autojoin of "

// CloudInit renders the user-data for worker node, under the cluster lock
// (it makes a token).
func CloudInit(ctx context.Context, s *Session, node string, opts CloudInitOptions) (*UserData, error) {
	h := s.Inv.Host(node)
	switch {
	case h == nil:
		return nil, fmt.Errorf("no host %s in %s", node, s.Inv.Path)
	case h.Role != inventory.RoleWorker:
		return nil, fmt.Errorf("%s is a %s: cloud-init makes user-data for workers only (a master's would hold a certificate key that makes anyone who reads it a control-plane node); use fleet join", node, h.Role)
	}
	return locked(ctx, s, "cloud-init", func() (*UserData, error) { return cloudInit(ctx, s, h, opts) })
}

func cloudInit(ctx context.Context, s *Session, h *inventory.Host, opts CloudInitOptions) (*UserData, error) {
	access, err := connectCluster(ctx, s)
	if err != nil {
		return nil, err
	}
	caPEM, err := s.readFile(ctx, access.master, caCert)
	if err != nil {
		return nil, err
	}
	ud := &UserData{Mode: s.Inv.JoinModeOf(h)}
	var cfg cloudinit.Config
	// newToken makes a bootstrap token that expires with the user-data.
	newToken := func() (kubeadm.Token, error) {
		tok, err := newToken(s.probe())
		if err != nil {
			return tok, err
		}
		now := time.Now()
		sec := kubeadm.BootstrapSecret(tok, opts.TokenTTL, now, cloudInitDescription+h.Name)
		if _, err := access.client.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
			return tok, fmt.Errorf("create bootstrap token %s: %w", tok.ID, err)
		}
		ud.Expires = now.Add(opts.TokenTTL)
		ud.Secret = "a bootstrap token"
		return tok, nil
	}
	switch ud.Mode {
	case inventory.JoinKubeadm:
		tok, err := newToken()
		if err != nil {
			return nil, err
		}
		hash, err := kubeadm.CAHash(caPEM)
		if err != nil {
			return nil, err
		}
		join, err := kubeadm.JoinConfig(clusterOf(s.Inv), nodeOf(s.Inv, h.Name), tok, hash, "")
		if err != nil {
			return nil, err
		}
		cfg.WriteFiles = []cloudinit.File{file(caCert, caPEM, "0644"), file(cloudInitJoinConfig, join, "0600")}
		cfg.RunCmd = [][]string{
			{"kubeadm", "join", "--config", cloudInitJoinConfig, "--ignore-preflight-errors=FileAvailable--etc-kubernetes-pki-ca.crt"},
			{"rm", "-f", cloudInitJoinConfig},
		}
	case inventory.JoinTLSBootstrap:
		tok, err := newToken()
		if err != nil {
			return nil, err
		}
		if err := createBootstrapRBAC(ctx, access.client); err != nil {
			return nil, err
		}
		boot, err := kubeadm.BootstrapKubeconfig("https://"+s.Inv.Cluster.ControlPlaneEndpoint, caPEM, tok)
		if err != nil {
			return nil, err
		}
		files, err := kubeletFiles(s.Inv, h, caPEM, bootstrapKubeconfig, boot)
		if err != nil {
			return nil, err
		}
		cfg.WriteFiles = filesOf(files)
		// Once the kubelet has its own certificate the bootstrap
		// kubeconfig (the token) goes, as fleet apply removes it.
		cfg.RunCmd = [][]string{{"sh", "-c", startKubelet},
			{"sh", "-c", "i=0; while [ ! -s " + kubeletConf + " ] && [ $i -lt 900 ]; do sleep 1; i=$((i+1)); done; rm -f " + bootstrapKubeconfig}}
	case inventory.JoinCFSSL:
		files, err := cfsslKubeletFiles(ctx, s.remote(), s.Inv, h)
		if err != nil {
			return nil, err
		}
		cfg.WriteFiles = filesOf(files)
		cfg.RunCmd = [][]string{{"sh", "-c", startKubelet}}
		ud.Secret = "the node's private key and its certificate (valid for a year)"
	default:
		return nil, fmt.Errorf("%s: join mode %q has no cloud-init form", h.Name, ud.Mode)
	}
	warning := []string{
		fmt.Sprintf("fleet cloud-init for %s (join mode %s) of cluster %s.", h.Name, ud.Mode, s.Inv.Cluster.Name),
		"SECRET: this user-data holds " + ud.Secret + ". Anyone who can read it (the cloud's",
		"metadata service, the instance's users) can join a node as " + h.Name + ".",
	}
	if !ud.Expires.IsZero() {
		warning = append(warning, "The token stops working at "+ud.Expires.UTC().Format(time.RFC3339)+"; boot the machine before then.")
	}
	ud.Document, err = cloudinit.Render(cfg, warning...)
	return ud, err
}

func file(path string, data []byte, mode string) cloudinit.File {
	return cloudinit.File{Path: path, Content: string(data), Permissions: mode, Owner: "root:root"}
}

func filesOf(files []remoteFile) []cloudinit.File {
	var out []cloudinit.File
	for _, f := range files {
		out = append(out, file(f.path, f.data, fmt.Sprintf("%04o", f.mode.Perm())))
	}
	return out
}

// WriteFile saves the user-data on this machine: 0600, atomically.
func (u *UserData) WriteFile(path string) error {
	return writeFileAtomic(path, u.Document, 0o600)
}
