package versionskew

import (
	"strings"
	"testing"
)

func TestUpgrade(t *testing.T) {
	for _, tc := range []struct {
		from, to string
		want     Change
		err      string
	}{
		{"v1.34.4", "v1.34.4", Same, ""},
		{"v1.34.4", "v1.34.6", Patch, ""},
		{"v1.34.4", "v1.35.0", Minor, ""},
		{"v1.34.4", "v1.35.4", Minor, ""},
		{"v1.34.4", "v1.34.3", 0, "does not downgrade"},
		{"v1.35.4", "v1.34.4", 0, "does not downgrade"},
		{"v1.34.4", "v1.36.1", 0, "2 minors past the cluster's v1.34.4: upgrade one minor at a time (first to v1.35)"},
		{"v1.34.4", "v2.0.0", 0, "another major"},
		{"v1.34.4", "1.35", 0, `version "1.35"`},
		{"latest", "v1.35.4", 0, `version "latest"`},
	} {
		got, err := Upgrade(tc.from, tc.to)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Upgrade(%s, %s): %v, want an error with %q", tc.from, tc.to, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Upgrade(%s, %s) = %v, %v; want %v", tc.from, tc.to, got, err, tc.want)
		}
	}
}

func TestKubelet(t *testing.T) {
	for _, tc := range []struct {
		kubelet, apiserver string
		err                string
	}{
		{"v1.34.4", "v1.34.4", ""},
		{"v1.34.4", "v1.35.4", ""},
		{"v1.32.0", "v1.35.4", ""},
		{"v1.31.9", "v1.35.4", "more than 3 minors older"},
		{"v1.35.4", "v1.34.4", "newer than the API server's"},
		{"v1.34.5", "v1.34.4", "newer than the API server's"},
		{"v1.34.3", "v1.34.4", ""},
		{"bogus", "v1.34.4", `version "bogus"`},
	} {
		err := Kubelet(tc.kubelet, tc.apiserver)
		if (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("Kubelet(%s, %s): %v, want %q", tc.kubelet, tc.apiserver, err, tc.err)
		}
	}
}
