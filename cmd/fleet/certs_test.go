package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetops/fleet/playbooks"
)

func TestFailUnder(t *testing.T) {
	now := time.Now()
	found := []playbooks.Cert{
		{Host: "master0", Name: "apiserver", Expires: now.Add(364*24*time.Hour + time.Hour)},
		{Host: "worker0", Name: "kubelet-client", Expires: now.Add(9*24*time.Hour + time.Hour)},
		{Host: "master0", Name: "super-admin.conf", Missing: true},
	}
	cases := []struct {
		days    int
		wantErr string // "" for none
	}{
		{0, ""},
		{5, ""},
		{10, "1 certificate(s) with fewer than 10 days left (--fail-under): worker0 kubelet-client (9 days)"},
		{400, "2 certificate(s) with fewer than 400 days left (--fail-under): master0 apiserver (364 days), worker0 kubelet-client (9 days)"},
	}
	for _, c := range cases {
		err := failUnder(found, now, c.days)
		if (c.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("--fail-under %d: %v, want %q", c.days, err, c.wantErr)
		}
	}
}

// TestCertsRenewRefusesBadArgumentsBeforeAnyHost: no names and no --all,
// both, or a name kubeadm would not renew: exit 2, and no host is dialled
// (the inventory's do not exist).
func TestCertsRenewRefusesBadArgumentsBeforeAnyHost(t *testing.T) {
	inv := filepath.Join(t.TempDir(), "inventory.yaml")
	os.WriteFile(inv, []byte("cluster: {name: x, kubernetesVersion: v1.34.4}\nloadbalancer: {name: lb, address: 192.0.2.10}\nmasters:\n  - {name: m0, address: 192.0.2.11}\n"), 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "name the certificates, or --all"},
		{[]string{"--all", "apiserver"}, "name the certificates, or --all"},
		{[]string{"apiserver", "bogus"}, `no certificate "bogus"`},
	} {
		code, out, errs := fleet(append([]string{"certs", "renew", "-i", inv}, tc.args...)...)
		if code != exitBadInput || !strings.Contains(errs, tc.want) || strings.Contains(out+errs, "192.0.2") {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errs, exitBadInput, tc.want)
		}
	}
}
