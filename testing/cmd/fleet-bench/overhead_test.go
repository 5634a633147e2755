package main

import (
	"testing"
	"time"
)

func TestUnionLength(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s, e int) interval {
		return interval{t0.Add(time.Duration(s) * time.Second), t0.Add(time.Duration(e) * time.Second)}
	}
	for _, tc := range []struct {
		name  string
		spans []interval
		want  int
	}{
		{"none", nil, 0},
		{"one", []interval{at(1, 4)}, 3},
		{"disjoint", []interval{at(5, 6), at(1, 2)}, 2},
		{"overlapping", []interval{at(1, 4), at(3, 6)}, 5},
		{"nested", []interval{at(1, 10), at(2, 3), at(4, 5)}, 9},
		{"touching", []interval{at(1, 2), at(2, 3)}, 2},
	} {
		if got := unionLength(tc.spans); got != time.Duration(tc.want)*time.Second {
			t.Errorf("%s: %s, want %ds", tc.name, got, tc.want)
		}
	}
}

func TestRenderOverheadFlagsTheTarget(t *testing.T) {
	ok := overheadResult{wall: 100 * time.Second, kubeTools: 90 * time.Second, readyWait: 6 * time.Second}
	if _, missed := renderOverhead(ok); missed != "" {
		t.Errorf("4%% flagged: %s", missed)
	}
	bad := overheadResult{wall: 100 * time.Second, kubeTools: 80 * time.Second, readyWait: 6 * time.Second}
	if _, missed := renderOverhead(bad); missed == "" {
		t.Error("14% not flagged")
	}
}

// TestProgramOf: kubeadm inside fleet's secret-file braces counts as
// kubeadm (it counted as "{" and the overhead table read 100 % fleet).
func TestProgramOf(t *testing.T) {
	for cmd, want := range map[string]string{
		"kubectl --kubeconfig /etc/kubernetes/admin.conf diff -f -":                                                       "kubectl",
		"{ kubeadm join --config /etc/fleet/kubeadm-join.yaml; }; rc=$?; rm -f -- /etc/fleet/kubeadm-join.yaml; exit $rc": "kubeadm",
		"sh -c 'kubeadm version'": "sh",
		"":                        "",
	} {
		if got := programOf(cmd); got != want {
			t.Errorf("programOf(%q) = %q, want %q", cmd, got, want)
		}
	}
}

func TestSkipped(t *testing.T) {
	skip := []string{"pdsh", "ansible-default@200"}
	for _, tc := range []struct {
		tool string
		n    int
		want bool
	}{
		{"pdsh", 10, true}, {"pdsh", 200, true},
		{"ansible-default", 200, true}, {"ansible-default", 50, false},
		{"fleet", 200, false},
	} {
		if got := skipped(skip, tc.tool, tc.n); got != tc.want {
			t.Errorf("skipped(%s at %d) = %v, want %v", tc.tool, tc.n, got, tc.want)
		}
	}
}
