package playbooks

import (
	"testing"
	"time"
)

// TestExpiringSoon: preflight warns of a master's certificates with
// fewer than 30 days left, names each, and is quiet otherwise.
func TestExpiringSoon(t *testing.T) {
	now := time.Now()
	day := 24 * time.Hour
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{"a new master", map[string][]byte{"/etc/kubernetes/pki/apiserver.crt": certPEM(t, now.Add(365*day))}, ""},
		{"no certificates yet", map[string][]byte{}, ""},
		{"not PEM", map[string][]byte{"/etc/kubernetes/pki/apiserver.crt": []byte("junk")}, ""},
		{"two soon", map[string][]byte{
			"/etc/kubernetes/pki/apiserver.crt":   certPEM(t, now.Add(9*day+time.Hour)),
			"/etc/kubernetes/pki/etcd/server.crt": certPEM(t, now.Add(29*day+time.Hour)),
			"/etc/kubernetes/pki/etcd/peer.crt":   certPEM(t, now.Add(31*day)),
		}, "certificates expire within 30 days: apiserver (9 days), etcd/server (29 days): run fleet certs renew"},
		{"expired", map[string][]byte{"/etc/kubernetes/pki/front-proxy-client.crt": certPEM(t, now.Add(-2*day-time.Hour))},
			"certificates expire within 30 days: front-proxy-client (-2 days): run fleet certs renew"},
	} {
		if got := expiringSoon("master0", tc.files, now); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
