package kubeadm

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Bootstrap tokens live as Secrets in kube-system; these are the names
// the API server's bootstrap authenticator and kubeadm agree on.
const (
	BootstrapTokenType      = corev1.SecretType("bootstrap.kubernetes.io/token")
	bootstrapSecretPrefix   = "bootstrap-token-"
	DefaultNodeTokenGroup   = "system:bootstrappers:kubeadm:default-node-token"
	tokenDescriptionKey     = "description"
	tokenExpirationKey      = "expiration"
	tokenIDKey              = "token-id"
	tokenSecretKey          = "token-secret"
	tokenExtraGroupsKey     = "auth-extra-groups"
	tokenUsageAuthenticaton = "usage-bootstrap-authentication"
	tokenUsageSigning       = "usage-bootstrap-signing"
)

// CertsProxyDescription is the description of the token kubeadm makes to
// own the kubeadm-certs Secret (it has no usages: it only carries the
// Secret's expiry, and garbage collection deletes the Secret with it).
const CertsProxyDescription = "Proxy for managing TTL for the kubeadm-certs secret"

// BootstrapSecretName is the name of the Secret of token id in kube-system.
func BootstrapSecretName(id string) string { return bootstrapSecretPrefix + id }

// BootstrapSecret is the Secret that makes tok valid until now+ttl, for
// authentication (kubelet TLS bootstrap) and for signing cluster-info
// (kubeadm join's discovery), in kubeadm's default node group, whose RBAC
// kubeadm init sets up.
func BootstrapSecret(tok Token, ttl time.Duration, now time.Time, description string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: BootstrapSecretName(tok.ID), Namespace: metav1.NamespaceSystem},
		Type:       BootstrapTokenType,
		StringData: map[string]string{
			tokenIDKey:              tok.ID,
			tokenSecretKey:          tok.Secret,
			tokenDescriptionKey:     description,
			tokenExpirationKey:      now.Add(ttl).UTC().Format(time.RFC3339),
			tokenUsageAuthenticaton: "true",
			tokenUsageSigning:       "true",
			tokenExtraGroupsKey:     DefaultNodeTokenGroup,
		},
	}
}

// TokenInfo is what may be shown of a bootstrap token: never its secret.
type TokenInfo struct {
	ID          string
	Description string
	Expires     time.Time // zero: never
	Usages      []string
	Groups      string
}

// Expired reports whether the token has expired at now.
func (t TokenInfo) Expired(now time.Time) bool { return !t.Expires.IsZero() && !now.Before(t.Expires) }

// ByFleet reports whether fleet made the token (its descriptions start so).
func (t TokenInfo) ByFleet() bool { return strings.HasPrefix(t.Description, "fleet ") }

// ReadTokenInfo reads a bootstrap-token Secret; ok is false for any other
// Secret. An expiration that does not parse counts as expired: the API
// server treats it as invalid.
func ReadTokenInfo(s *corev1.Secret) (info TokenInfo, ok bool) {
	if s.Type != BootstrapTokenType || !strings.HasPrefix(s.Name, bootstrapSecretPrefix) {
		return TokenInfo{}, false
	}
	info.ID = string(s.Data[tokenIDKey])
	if info.ID == "" {
		info.ID = strings.TrimPrefix(s.Name, bootstrapSecretPrefix)
	}
	info.Description = string(s.Data[tokenDescriptionKey])
	info.Groups = string(s.Data[tokenExtraGroupsKey])
	if exp := string(s.Data[tokenExpirationKey]); exp != "" {
		t, err := time.Parse(time.RFC3339, exp)
		if err != nil {
			t = time.Unix(0, 0)
		}
		info.Expires = t
	}
	for _, u := range []string{tokenUsageAuthenticaton, tokenUsageSigning} {
		if string(s.Data[u]) == "true" {
			info.Usages = append(info.Usages, strings.TrimPrefix(u, "usage-bootstrap-"))
		}
	}
	return info, true
}
