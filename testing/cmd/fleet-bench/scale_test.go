package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestIsKubeadmJoin(t *testing.T) {
	for cmd, want := range map[string]bool{
		"kubeadm join 198.18.65.10:6443 --config /etc/kubernetes/fleet-join.yaml":    true,
		"{ kubeadm join --config /tmp/x.yaml; rc=$?; rm -f /tmp/x.yaml; exit $rc; }": true,
		"kubeadm join phase control-plane-prepare all":                               false,
		"kubeadm token create --ttl 15m":                                             false,
		"echo kubeadm join":                                                          false,
		"kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes -o name":          false,
	} {
		if got := isKubeadmJoin(cmd); got != want {
			t.Errorf("isKubeadmJoin(%q) = %v, want %v", cmd, got, want)
		}
	}
}

// TestSplitLog reads a --log-file as fleet writes it: step events and
// command lines interleaved.
func TestSplitLog(t *testing.T) {
	log := `{"kind":"started","step":"join-workers","host":"worker0","time":"2026-12-06T12:00:10Z"}
{"kind":"command","step":"join-workers","host":"worker0","command":"{ kubeadm join --config /tmp/j.yaml; }","duration_ms":4000,"exit_code":0,"time":"2026-12-06T12:00:11Z"}
{"kind":"started","step":"join-workers","host":"worker1","time":"2026-12-06T12:00:10.5Z"}
{"kind":"command","step":"join-workers","host":"worker1","command":"kubeadm join --config /tmp/k.yaml","duration_ms":6000,"exit_code":0,"time":"2026-12-06T12:00:12Z"}
{"kind":"command","step":"join-workers","host":"worker1","command":"cat /etc/kubernetes/kubelet.conf","duration_ms":10,"exit_code":0,"time":"2026-12-06T12:00:18.1Z"}
{"kind":"succeeded","step":"join-workers","host":"worker0","time":"2026-12-06T12:00:16Z","duration_ms":6000}
{"kind":"succeeded","step":"join-workers","host":"worker1","time":"2026-12-06T12:00:19Z","duration_ms":8500}
{"kind":"started","step":"kubeconfig","time":"2026-12-06T12:00:19Z"}
{"kind":"command","step":"kubeconfig","host":"master0","command":"kubectl get nodes","duration_ms":1000,"exit_code":0,"time":"2026-12-06T12:00:20Z"}
{"kind":"succeeded","step":"kubeconfig","time":"2026-12-06T12:00:25Z"}
`
	path := filepath.Join(t.TempDir(), "apply.log")
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	lines, err := readLog(path)
	if err != nil {
		t.Fatal(err)
	}
	s := splitLog(lines)
	if strings.Join(s.order, ",") != "join-workers,kubeconfig" {
		t.Errorf("steps %v", s.order)
	}
	if jw := s.spans["join-workers"]; jw.end.Sub(jw.start) != 9*time.Second {
		t.Errorf("join-workers spans %s, want 9s", jw.end.Sub(jw.start))
	}
	if got := s.joins["join-workers"]; len(got) != 2 || got[0] != 4*time.Second || got[1] != 6*time.Second {
		t.Errorf("joins %v, want [4s 6s]", got)
	}
	// kubeadm 11–15 and 12–18 overlap (7 s), kubectl 20–21: 8 s.
	if got := unionLength(s.kube); got != 8*time.Second {
		t.Errorf("kube spans cover %s, want 8s", got)
	}
}

func TestRenderScaleTargets(t *testing.T) {
	// fleet's own: 100 - 86 - 10 = 4 s, 2.5 s of it before kubeadm, 0.5 s after.
	base := scaleResult{workers: 100, wall: 100 * time.Second, kubeTools: 86 * time.Second, readyWait: 10 * time.Second,
		ownBefore: 2500 * time.Millisecond, ownAfter: 500 * time.Millisecond,
		joinWorkers: 40 * time.Second, joinAlone: 5 * time.Second, joins: []time.Duration{time.Second, 2 * time.Second, 30 * time.Second},
		cpu: cpuUse{cpus: 2, machine: 1.9, components: map[string]float64{"kube-apiserver": 0.8, "etcd": 0.2}}, peakRSS: 40 * 1024}
	// Each connecting itself takes 5 s: the bound holds the runs with
	// --persist (the second figure).
	idle := func(apply, status time.Duration, planOK bool) []idleRun {
		return []idleRun{{"fleet apply", 5 * time.Second, apply, "no changes", true, false}, {"fleet plan", 5 * time.Second, time.Second, "plan", planOK, false},
			{"fleet status", 5 * time.Second, status, "NODE", true, false}, {"fleet check", 4 * time.Second, 4 * time.Second, "HOST", true, true}}
	}
	for _, tc := range []struct {
		name      string
		kubeTools time.Duration
		idle      []idleRun
		missed    []string // substrings, one per missed target
	}{
		{"all under 3 s", base.kubeTools, idle(2*time.Second, 2900*time.Millisecond, true), nil},
		{"status slow", base.kubeTools, idle(2*time.Second, 3100*time.Millisecond, true), []string{"fleet status --persist at 100 workers took 3.10 s"}},
		{"plan saw changes", base.kubeTools, idle(time.Second, time.Second, false), []string{"fleet plan at 100 workers did not say"}},
		{"fleet's own share 6 %", 84 * time.Second, idle(time.Second, time.Second, true), []string{"fleet's own share of the apply at 100 workers 6.0 % (target ≤ 5 %)"}},
	} {
		r := base
		r.idle, r.kubeTools = tc.idle, tc.kubeTools
		section, missed := renderScale(r)
		if len(missed) != len(tc.missed) {
			t.Errorf("%s: missed %q, want %d", tc.name, missed, len(tc.missed))
			continue
		}
		for i, want := range tc.missed {
			if !strings.Contains(missed[i], want) {
				t.Errorf("%s: missed %q, want %q", tc.name, missed[i], want)
			}
		}
		// 100 joins of 5 s one after another against a 40 s step.
		if !strings.Contains(section, "before the first kubeadm command (connections, lock, preflight of every host, load balancer) | 2.50 s | 2.5 % |") ||
			!strings.Contains(section, "after the last (the last master into the load balancer, clean-up, the lock, exit) | 0.50 s | 0.5 % |") {
			t.Errorf("%s: fleet's own work not split before / between / after:\n%s", tc.name, section)
		}
		if !strings.Contains(section, "| 12.5× |") || !strings.Contains(section, "| 40.0 MiB / 394 KiB |") || !strings.Contains(section, "| `fleet apply` | 5.00 s | ") {
			t.Errorf("%s: section\n%s", tc.name, section)
		}
	}
}

func TestProcessTicks(t *testing.T) {
	ticks, ok := processTicks(os.Getpid())
	if !ok {
		t.Fatal("cannot read this process's CPU time")
	}
	// Burn some CPU: the count must grow.
	deadline := time.Now().Add(300 * time.Millisecond)
	for n := 0; time.Now().Before(deadline); n++ {
		_ = strings.Repeat("x", n%100)
	}
	if after, _ := processTicks(os.Getpid()); after <= ticks {
		t.Errorf("CPU ticks %d then %d after 300 ms of work", ticks, after)
	}
}

func TestMachineTicks(t *testing.T) {
	busy, all, cpus := machineTicks()
	if cpus < 1 || all == 0 || busy > all {
		t.Errorf("busy %d of %d ticks on %d CPUs", busy, all, cpus)
	}
}
