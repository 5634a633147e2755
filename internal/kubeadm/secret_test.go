package kubeadm

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// asStored turns StringData into Data, as the API server does.
func asStored(s *corev1.Secret) *corev1.Secret {
	out := s.DeepCopy()
	out.Data = map[string][]byte{}
	for k, v := range s.StringData {
		out.Data[k] = []byte(v)
	}
	out.StringData = nil
	return out
}

func TestBootstrapSecretRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tok := Token{ID: "abcdef", Secret: "0123456789abcdef"}
	sec := BootstrapSecret(tok, 15*time.Minute, now, "fleet rotate-tokens: for joins by hand")
	if sec.Name != "bootstrap-token-abcdef" || sec.Namespace != "kube-system" || sec.Type != "bootstrap.kubernetes.io/token" {
		t.Fatalf("secret identity: %s/%s %s", sec.Namespace, sec.Name, sec.Type)
	}
	info, ok := ReadTokenInfo(asStored(sec))
	if !ok {
		t.Fatal("ReadTokenInfo refused fleet's own secret")
	}
	if info.ID != "abcdef" || !info.Expires.Equal(now.Add(15*time.Minute)) || !info.ByFleet() || info.Groups != DefaultNodeTokenGroup {
		t.Errorf("info = %+v", info)
	}
	if len(info.Usages) != 2 {
		t.Errorf("usages = %v, want authentication and signing", info.Usages)
	}
	if info.Expired(now.Add(14*time.Minute)) || !info.Expired(now.Add(15*time.Minute)) {
		t.Error("expiry is not at now+ttl")
	}
}

func TestReadTokenInfo(t *testing.T) {
	secret := func(name string, typ corev1.SecretType, data map[string]string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Type: typ, StringData: data}
		return asStored(s)
	}
	for _, tc := range []struct {
		name      string
		sec       *corev1.Secret
		ok        bool
		expired   bool
		fleetMade bool
	}{
		{"other type", secret("bootstrap-token-abcdef", corev1.SecretTypeOpaque, nil), false, false, false},
		{"other name", secret("cluster-info", BootstrapTokenType, nil), false, false, false},
		{"no expiry", secret("bootstrap-token-abcdef", BootstrapTokenType, map[string]string{"token-id": "abcdef"}), true, false, false},
		{"past", secret("bootstrap-token-abcdef", BootstrapTokenType, map[string]string{"expiration": "2000-01-01T00:00:00Z"}), true, true, false},
		{"garbage expiry", secret("bootstrap-token-abcdef", BootstrapTokenType, map[string]string{"expiration": "soon"}), true, true, false},
		{"kubeadm's", secret("bootstrap-token-abcdef", BootstrapTokenType, map[string]string{"description": "Proxy for managing TTL for the kubeadm-certs secret"}), true, false, false},
		{"fleet apply's", secret("bootstrap-token-abcdef", BootstrapTokenType, map[string]string{"description": TokenDescription}), true, false, true},
	} {
		info, ok := ReadTokenInfo(tc.sec)
		if ok != tc.ok {
			t.Errorf("%s: ok = %v", tc.name, ok)
			continue
		}
		if !ok {
			continue
		}
		if info.ID != "abcdef" {
			t.Errorf("%s: ID = %q", tc.name, info.ID)
		}
		if got := info.Expired(time.Now()); got != tc.expired {
			t.Errorf("%s: expired = %v", tc.name, got)
		}
		if got := info.ByFleet(); got != tc.fleetMade {
			t.Errorf("%s: by fleet = %v", tc.name, got)
		}
	}
}
