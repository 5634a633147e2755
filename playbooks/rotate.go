package playbooks

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/kubeadm"
)

// RotateOptions tune `fleet rotate-tokens`.
type RotateOptions struct {
	TTL time.Duration // lifetime of the new token
	// All deletes every bootstrap token, not only fleet's and expired ones.
	All bool
	// CertificateKey re-uploads the control-plane certificates under a new
	// key, for masters joined by hand.
	CertificateKey bool
}

// rotateDescription marks the tokens rotate-tokens makes; the next
// rotation deletes them.
const rotateDescription = "fleet rotate-tokens: for joins by hand"

// TokenAction is what rotate-tokens did with one token.
type TokenAction string

const (
	TokenDeleted TokenAction = "deleted"
	TokenKept    TokenAction = "kept"
	TokenCreated TokenAction = "created"
)

// TokenRow is one line of rotate-tokens' summary: never a secret.
type TokenRow struct {
	kubeadm.TokenInfo
	Action TokenAction
	Why    string
}

// Rotation is the outcome of rotate-tokens. Token and CertificateKey are
// secrets: the CLI prints them only for --print-join-command.
type Rotation struct {
	Rows           []TokenRow
	Token          kubeadm.Token
	CertificateKey string // empty unless asked for
	CAHash         string
	Endpoint       string
}

// JoinCommand is the kubeadm join command line for a worker, or with
// controlPlane for a master (which needs a CertificateKey).
func (r *Rotation) JoinCommand(controlPlane bool) string {
	args := []string{"kubeadm", "join", r.Endpoint, "--token", r.Token.String(), "--discovery-token-ca-cert-hash", r.CAHash}
	if controlPlane {
		args = append(args, "--control-plane", "--certificate-key", r.CertificateKey)
	}
	return exec.Command(args...)
}

// RotateTokens deletes fleet's bootstrap tokens and every expired one
// (every one with All), makes a new one with the TTL asked, and with
// CertificateKey uploads the control-plane certificates under a new key.
func RotateTokens(ctx context.Context, s *Session, opts RotateOptions) (*Rotation, error) {
	return locked(ctx, s, "rotate-tokens", func() (*Rotation, error) { return rotateTokens(ctx, s, opts) })
}

// rotateTokens is RotateTokens under the cluster lock.
func rotateTokens(ctx context.Context, s *Session, opts RotateOptions) (*Rotation, error) {
	access, err := connectCluster(ctx, s)
	if err != nil {
		return nil, err
	}
	secrets := access.client.CoreV1().Secrets(metav1.NamespaceSystem)
	list, err := secrets.List(ctx, metav1.ListOptions{FieldSelector: "type=" + string(kubeadm.BootstrapTokenType)})
	if err != nil {
		return nil, fmt.Errorf("list bootstrap tokens: %w", err)
	}
	// Uploaded control-plane certificates are fleet's to clean: a join
	// that needs them gets them with --certificate-key.
	proxies, certs, err := uploadedCerts(ctx, access.client)
	if err != nil {
		return nil, err
	}
	if certs {
		if err := secrets.Delete(ctx, kubeadmCertsSecret, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("delete the %s Secret: %w", kubeadmCertsSecret, err)
		}
	}
	rot := &Rotation{Endpoint: s.Inv.Cluster.ControlPlaneEndpoint}
	now := time.Now()
	for i := range list.Items {
		info, ok := kubeadm.ReadTokenInfo(&list.Items[i])
		if !ok {
			continue
		}
		row := TokenRow{TokenInfo: info, Action: TokenKept, Why: "not fleet's, not expired"}
		switch {
		case info.Expired(now):
			row.Action, row.Why = TokenDeleted, "expired"
		case slices.Contains(proxies, info.ID):
			row.Action, row.Why = TokenDeleted, "owned the uploaded control-plane certificates (kubeadm-certs), deleted with them"
		case info.ByFleet():
			row.Action, row.Why = TokenDeleted, "made by fleet"
		case opts.All:
			row.Action, row.Why = TokenDeleted, "--all"
		}
		if row.Action == TokenDeleted {
			err := secrets.Delete(ctx, list.Items[i].Name, metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("delete bootstrap token %s: %w", info.ID, err)
			}
		}
		rot.Rows = append(rot.Rows, row)
	}
	sort.Slice(rot.Rows, func(i, j int) bool { return rot.Rows[i].ID < rot.Rows[j].ID })

	tok, err := newToken(s.probe())
	if err != nil {
		return nil, err
	}
	sec := kubeadm.BootstrapSecret(tok, opts.TTL, now, rotateDescription)
	if _, err := secrets.Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("create bootstrap token %s: %w", tok.ID, err)
	}
	rot.Token = tok
	info, _ := kubeadm.ReadTokenInfo(storedForm(sec))
	rot.Rows = append(rot.Rows, TokenRow{TokenInfo: info, Action: TokenCreated, Why: "ttl " + opts.TTL.String()})

	if opts.CertificateKey {
		key, err := newCertificateKey(s.probe())
		if err != nil {
			return nil, err
		}
		if err := uploadCerts(ctx, s.remote(), s.Inv, access.master, key); err != nil {
			return nil, fmt.Errorf("kubeadm init phase upload-certs: %w", err)
		}
		rot.CertificateKey = key
	}
	ca, err := s.readFile(ctx, access.master, caCert)
	if err != nil {
		return nil, err
	}
	if rot.CAHash, err = kubeadm.CAHash(ca); err != nil {
		return nil, err
	}
	return rot, nil
}

// storedForm is a Secret as the API returns it: StringData moved to Data.
func storedForm(s *corev1.Secret) *corev1.Secret {
	out := s.DeepCopy()
	if out.Data == nil {
		out.Data = map[string][]byte{}
	}
	for k, v := range out.StringData {
		out.Data[k] = []byte(v)
	}
	out.StringData = nil
	return out
}

// UsageList lists a row's usages for a table.
func (r TokenRow) UsageList() string { return strings.Join(r.Usages, ",") }
