package main

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetops/fleet/playbooks"
)

func TestSummarizeCommand(t *testing.T) {
	tests := []struct{ cmd, want string }{
		{"kubeadm join --ignore-preflight-errors=X --config /etc/fleet/kubeadm-join.yaml; rc=$?; rm -f x; exit $rc", "kubeadm join"},
		{"systemctl restart kubelet", "systemctl restart"},
		{"nginx -t -c /etc/nginx/nginx.conf", "nginx"},
		{"KUBECONFIG=/etc/kubernetes/admin.conf kubectl apply --server-side -f -", "kubectl apply"},
		{"sudo -n /usr/bin/kubeadm init phase upload-certs", "kubeadm init"},
		{"sh -c 'for f; do cat \"$f\"; done' fleet-read /a /b", "shell script"},
		{"cat /etc/kubernetes/admin.conf", "cat"},
		{"test -f /etc/kubernetes/kubelet.conf && echo yes", "test"},
		{"", "shell"},
	}
	for _, tt := range tests {
		if got := summarizeCommand(tt.cmd); got != tt.want {
			t.Errorf("summarizeCommand(%q) = %q, want %q", tt.cmd, got, tt.want)
		}
	}
}

func TestStepLines(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	tests := []struct {
		name    string
		st      stepProgress
		doing   map[string]activity
		running string // runningLine at t0+20s
		done    string // doneLine
	}{
		{
			name:    "the host working longest and what it runs",
			st:      stepProgress{name: "join-workers", total: 5, ok: 3, running: map[string]time.Time{"worker3": at(2), "worker4": at(5)}, began: t0, ended: at(21.4)},
			doing:   map[string]activity{"worker3": {"kubeadm join", at(6)}, "worker4": {"cat", at(7)}},
			running: "join-workers 3/5 20.0s · worker3: kubeadm join (14.0s), +1 more",
			done:    "✓ join-workers 3/5 21.4s",
		},
		{
			name:    "a command from before the host's task is not what it does now",
			st:      stepProgress{name: "node-meta", total: 2, running: map[string]time.Time{"worker0": at(10)}, began: at(10), ended: at(12)},
			doing:   map[string]activity{"worker0": {"kubeadm join", at(1)}},
			running: "node-meta 0/2 10.0s · worker0 (10.0s)",
			done:    "✓ node-meta 0/2 2.0s",
		},
		{
			name:    "a step run once shows the latest command since it began",
			st:      stepProgress{name: "credentials", total: 1, running: map[string]time.Time{"": at(8)}, began: at(8), ended: at(9)},
			doing:   map[string]activity{"master0": {"kubeadm init", at(9)}, "lb": {"nginx", at(3)}},
			running: "credentials 0/1 12.0s · master0: kubeadm init (11.0s)",
			done:    "✓ credentials 0/1 1.0s",
		},
		{
			name:    "failures counted",
			st:      stepProgress{name: "join-masters", total: 2, ok: 1, failed: 1, running: map[string]time.Time{}, began: t0, ended: at(61)},
			running: "join-masters 2/2 20.0s",
			done:    "✗ join-masters 1/2 1m1s · 1 failed",
		},
		{
			name:    "skipped whole",
			st:      stepProgress{name: "join-workers", total: 2, skipped: 2, skipWhy: "init failed on master0", running: map[string]time.Time{}, began: t0, ended: t0},
			running: "join-workers 2/2 20.0s",
			done:    "- join-workers skipped: init failed on master0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runningLine(&tt.st, tt.doing, at(20)); got != tt.running {
				t.Errorf("running line %q, want %q", got, tt.running)
			}
			if got := doneLine(&tt.st); got != tt.done {
				t.Errorf("done line %q, want %q", got, tt.done)
			}
		})
	}
}

// feed plays a small run into p: two steps, a failure, a note, a skip.
func feed(p *progress) {
	now := time.Now()
	p.plan([]playbooks.PlannedStep{{Step: "preflight", Hosts: []string{"m0", "w0", "w1"}}, {Step: "join-workers", Hosts: []string{"w0", "w1"}}, {Step: "kubeconfig"}})
	ev := func(k playbooks.EventKind, step, host string, err error) {
		p.event(playbooks.Event{Time: now, Kind: k, Step: step, Host: host, Err: err, Reason: "why"})
	}
	for _, h := range []string{"m0", "w0", "w1"} {
		ev(playbooks.Started, "preflight", h, nil)
	}
	for _, h := range []string{"m0", "w0", "w1"} {
		ev(playbooks.AlreadyDone, "preflight", h, nil)
	}
	ev(playbooks.Note, "join-workers", "w1", nil)
	ev(playbooks.Started, "join-workers", "w0", nil)
	ev(playbooks.Started, "join-workers", "w1", nil)
	p.command("w0", "kubeadm join --config x")
	ev(playbooks.Succeeded, "join-workers", "w0", nil)
	ev(playbooks.Failed, "join-workers", "w1", errors.New("kubeadm join: exit 1: [ERROR Port-10250]"))
	ev(playbooks.Blocked, "kubeconfig", "", nil)
}

func TestPlainProgressHasALinePerStepStartAndEndAndNoEscapes(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(progressPlain, &out)
	p.connecting(3)
	feed(p)
	p.stop()
	want := []string{
		"… connecting to 3 hosts",
		"▶ preflight (3 hosts)",
		"✓ preflight 3/3 0.0s",
		"NOTE  join-workers w1: why",
		"▶ join-workers (2 hosts)",
		"FAIL  join-workers w1 (0s): kubeadm join: exit 1: [ERROR Port-10250]",
		"✗ join-workers 1/2 0.0s · 1 failed",
		"▶ kubeconfig",
		"- kubeconfig skipped: why",
	}
	if got := strings.Split(strings.TrimSpace(out.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("plain progress:\n%s\nwant:\n%s", out.String(), strings.Join(want, "\n"))
	}
	if strings.ContainsRune(out.String(), '\x1b') {
		t.Error("plain progress has an escape code")
	}
}

// syncBuffer is written by mpb's render goroutine and read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLiveProgressEndsWithEveryStep: the live view on a writer that is
// not a terminal (mpb's width); its redraws on a real one are the tmux
// test's.
func TestLiveProgressEndsWithEveryStep(t *testing.T) {
	var out syncBuffer
	p := newProgress(progressLive, &out)
	feed(p)
	p.stop()
	got := out.String()
	for _, want := range []string{"✓ preflight 3/3", "✗ join-workers 1/2", "- kubeconfig skipped: why", "FAIL  join-workers w1", "NOTE  join-workers w1: why"} {
		if !strings.Contains(got, want) {
			t.Errorf("live view lacks %q:\n%q", want, got)
		}
	}
	// A stopped view takes no more events and prints nothing more.
	n := len(out.String())
	p.event(playbooks.Event{Kind: playbooks.Note, Step: "x", Reason: "late"})
	if len(out.String()) != n {
		t.Error("the view printed after stop")
	}
}
