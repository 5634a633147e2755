package playbooks_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fleetops/fleet/internal/keepalived"
	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/reliability"
	"github.com/fleetops/fleet/testing/sim"
)

// failoverLimit is how soon the API must answer through the VIP again
// after the balancer holding it fails (issue 22).
const failoverLimit = 5 * time.Second

// TestVIPFailover: two balancers share a VIP with keepalived in front of
// a master and a worker; the cluster is built through the VIP, a second
// apply changes nothing, and the VRRP password is in no event, 0600 on
// both. Then the balancer holding the VIP fails three ways, in turn: its
// NGINX killed, its link cut, its keepalived stopped. Each time a probe
// asks the API through the VIP every 200 ms; the VIP must move and the
// API answer within failoverLimit, and no node may turn NotReady. After
// each, apply (or the link coming back) mends the failed balancer.
func TestVIPFailover(t *testing.T) {
	sim.Need(t, cluster)
	c := upWithNodeBinaries(t, sim.VIPPair("vf", 45))
	vip := c.VIP()
	kubeconfig := filepath.Join(c.Dir, "admin.kubeconfig")
	opts := playbooks.DefaultApplyOptions()
	opts.Kubeconfig = kubeconfig
	inv := editInventory(t, c.Inventory, nil)
	if inv.Cluster.ControlPlaneEndpoint != vip+":6443" {
		t.Fatalf("endpoint %s, want the VIP's", inv.Cluster.ControlPlaneEndpoint)
	}
	_, _, shown, err := runApply(t, inv, opts, nil)
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, shown)
	}
	report, _, again, err := runApply(t, inv, opts, nil)
	if err != nil || report.Changed() {
		t.Fatalf("second apply: %v, changed %v\n%s", err, report != nil && report.Changed(), again)
	}
	var secret string
	for _, lb := range []string{"lb0", "lb1"} {
		conf, err := c.Exec(lb, "cat", "/etc/keepalived/keepalived.conf")
		mode, _ := c.Exec(lb, "stat", "-c", "%a", "/etc/keepalived/keepalived.conf")
		if err != nil || strings.TrimSpace(string(mode)) != "600" {
			t.Fatalf("%s: keepalived.conf: %v, mode %s", lb, err, mode)
		}
		pass := keepalived.AuthPassOf(conf)
		if pass == "" || (secret != "" && pass != secret) {
			t.Fatalf("%s: VRRP password %q, the other balancer has %q", lb, pass, secret)
		}
		secret = pass
	}
	if strings.Contains(shown+again, secret) {
		t.Error("the VRRP password is in apply's events")
	}
	if h := holder(t, c, vip); h != "lb0" {
		t.Fatalf("the VIP is on %q, want lb0 (the first balancer)", h)
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	nodes := kubernetes.NewForConfigOrDie(cfg)
	mend := func(t *testing.T) {
		t.Helper()
		if _, _, shown, err := runApply(t, inv, opts, nil); err != nil {
			t.Fatalf("apply after the failure: %v\n%s", err, shown)
		}
	}
	// plan shows a keepalived change on both balancers before it is made.
	planned := editInventory(t, c.Inventory, nil, [2]string{"  address: " + vip + "\n", "  address: " + vip + "\n  routerID: 77\n"})
	ps, err := playbooks.NewSession(planned, playbooks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := playbooks.Plan(context.Background(), ps, opts)
	ps.Close()
	if err != nil {
		t.Fatalf("plan with a new router id: %v", err)
	}
	for _, lb := range []string{"lb0", "lb1"} {
		if r := reasonOf(plan, "keepalived", lb); !strings.Contains(r, "write keepalived.conf") {
			t.Errorf("plan: keepalived on %s says %q, want the config rewritten", lb, r)
		}
	}
	inv = editInventory(t, c.Inventory, nil, [2]string{"  routerID: 77\n", ""})

	for _, tc := range []struct {
		name  string
		fail  func(t *testing.T, lb string)
		mend  func(t *testing.T, lb string)
		after string // who holds the VIP once mended
		row   int    // of testing/RELIABILITY.md
		rerun string
	}{
		{"its NGINX killed", func(t *testing.T, lb string) {
			if n, err := c.Kill(lb, "nginx"); err != nil || n == 0 {
				t.Fatalf("kill nginx on %s: %d killed, %v", lb, n, err)
			}
		}, func(t *testing.T, lb string) { mend(t) }, "lb1", // nopreempt: the VIP stays where it went
			19, "the next apply found nginx stopped on %s and started it; the VIP stayed on %s (nopreempt: one interruption, not two); a further failover took it back"},
		{"its link cut", func(t *testing.T, lb string) {
			if err := c.LinkDown(lb); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, lb string) {
			if err := c.LinkUp(lb); err != nil {
				t.Fatal(err)
			}
			mend(t)
		}, "lb0", 20, "with the link back, %s saw the other's adverts and stayed backup; the VIP stayed on %s; apply changed nothing of keepalived"},
		{"its keepalived stopped", func(t *testing.T, lb string) {
			if out, err := c.Exec(lb, "sh", "-c", `kill "$(cat /run/keepalived.pid)"`); err != nil {
				t.Fatalf("stop keepalived on %s: %v %s", lb, err, out)
			}
		}, func(t *testing.T, lb string) { mend(t) }, "lb1",
			21, "the next apply found keepalived stopped on %s and started it; the VIP stayed on %s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from := holder(t, c, vip)
			to := map[string]string{"lb0": "lb1", "lb1": "lb0"}[from]
			p := startProbe(t, cfg, "https://"+vip+":6443/livez")
			time.Sleep(time.Second) // the probe answers before the failure
			failed := time.Now()
			tc.fail(t, from)
			moved := waitHolder(t, c, vip, to, 20*time.Second)
			// An answer on its way before the failure may land after
			// it: the API is back with the first answer once the VIP
			// moved.
			back := moved.Sub(failed) + p.firstSuccessAfter(moved, 20*time.Second)
			time.Sleep(2 * time.Second)
			gap, failures, probes := p.stop()
			t.Logf("%s on %s: VIP on %s after %s, API answering through it after %s; longest gap between answers %s, %d of %d probes failed",
				tc.name, from, to, moved.Sub(failed).Round(10*time.Millisecond), back.Round(10*time.Millisecond), gap.Round(10*time.Millisecond), failures, probes)
			reliability.Record(t, reliability.Row{N: tc.row, Did: fmt.Sprintf("keepalived moved the VIP to %s after %s; the API answered through it again after %s (longest gap between answers of a probe every 200 ms: %s, %d of %d probes failed); no node NotReady",
				to, moved.Sub(failed).Round(10*time.Millisecond), back.Round(10*time.Millisecond), gap.Round(10*time.Millisecond), failures, probes),
				Rerun: fmt.Sprintf(tc.rerun, from, tc.after)})
			if back > failoverLimit {
				t.Errorf("the API answered through the VIP %s after the failure, want within %s", back, failoverLimit)
			}
			list, err := nodes.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
			if err != nil {
				t.Fatalf("nodes through the VIP: %v", err)
			}
			for _, n := range list.Items {
				for _, cond := range n.Status.Conditions {
					if cond.Type == corev1.NodeReady && cond.Status != corev1.ConditionTrue {
						t.Errorf("node %s is %s after the failover", n.Name, cond.Status)
					}
				}
			}
			// fleet status: who holds the VIP, and what failed.
			st, err := playbooks.NewSession(inv, playbooks.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			for _, b := range playbooks.Balancers(context.Background(), st) {
				if b.Host == to && (b.HoldsVIP != playbooks.Yes || b.Nginx != playbooks.Yes || b.Keepalived != playbooks.Yes) {
					t.Errorf("status of %s, which took the VIP: %+v", to, b)
				}
				if b.Host == from && b.HoldsVIP == playbooks.Yes {
					t.Errorf("status says %s, which failed, holds the VIP: %+v", from, b)
				}
			}
			tc.mend(t, from)
			if h := holder(t, c, vip); h != tc.after {
				t.Errorf("after mending %s, the VIP is on %q, want %s", from, h, tc.after)
			}
		})
	}
}

// holder is the balancer that has the VIP on an interface, "" for none.
func holder(t *testing.T, c *sim.Cluster, vip string) string {
	t.Helper()
	var on []string
	for _, lb := range []string{"lb0", "lb1"} {
		out, err := c.Exec(lb, "ip", "-o", "-4", "addr", "show")
		if err != nil {
			t.Fatalf("%s: ip addr: %v", lb, err)
		}
		if strings.Contains(string(out), " "+vip+"/") {
			on = append(on, lb)
		}
	}
	if len(on) > 1 {
		t.Fatalf("both balancers hold the VIP %s", vip)
	}
	return strings.Join(on, "")
}

// waitHolder waits for lb to hold the VIP and returns when it was seen.
func waitHolder(t *testing.T, c *sim.Cluster, vip, lb string, limit time.Duration) time.Time {
	t.Helper()
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		out, err := c.Exec(lb, "ip", "-o", "-4", "addr", "show")
		if err == nil && strings.Contains(string(out), " "+vip+"/") {
			return time.Now()
		}
	}
	t.Fatalf("%s did not take the VIP %s within %s", lb, vip, limit)
	return time.Time{}
}

// probe asks url every 200 ms on a new connection each time (as a new
// client would), each ask on its own so that one hanging on a dead
// balancer does not hold the next back, and keeps when answers came.
type probe struct {
	mu        sync.Mutex
	successes []time.Time
	failures  int
	probes    int
	cancel    context.CancelFunc
	asks      sync.WaitGroup
	done      chan struct{}
}

func startProbe(t *testing.T, cfg *rest.Config, url string) *probe {
	t.Helper()
	tlsCfg, err := rest.TLSConfigFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true}}
	ctx, cancel := context.WithCancel(context.Background())
	p := &probe{cancel: cancel, done: make(chan struct{})}
	ask := func() {
		defer p.asks.Done()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		ok := err == nil && resp.StatusCode == http.StatusOK
		if resp != nil {
			resp.Body.Close()
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if ctx.Err() != nil {
			return // cut short by stop: not an answer of the API
		}
		p.probes++
		if ok {
			p.successes = append(p.successes, time.Now())
		} else {
			p.failures++
		}
	}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			p.asks.Add(1)
			go ask()
			select {
			case <-ctx.Done():
				p.asks.Wait()
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-p.done })
	return p
}

// firstSuccessAfter waits for an answer after t0 and says how long after
// t0 it came.
func (p *probe) firstSuccessAfter(t0 time.Time, limit time.Duration) time.Duration {
	for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		p.mu.Lock()
		for _, s := range p.successes {
			if s.After(t0) {
				p.mu.Unlock()
				return s.Sub(t0)
			}
		}
		p.mu.Unlock()
	}
	return limit + time.Nanosecond
}

// stop ends the probe: the longest time between two answers, the failed
// probes and all probes.
func (p *probe) stop() (time.Duration, int, int) {
	p.cancel()
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	var gap time.Duration
	for i := 1; i < len(p.successes); i++ {
		gap = max(gap, p.successes[i].Sub(p.successes[i-1]))
	}
	return gap, p.failures, p.probes
}
