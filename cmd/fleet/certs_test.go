package main

import (
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
