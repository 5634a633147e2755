package playbooks

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/keepalived"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// Where fleet keeps keepalived's files on a balancer: the distribution's
// config path (its unit reads it), fleet's track script beside it.
const (
	keepalivedDir     = "/etc/keepalived"
	keepalivedConf    = keepalivedDir + "/keepalived.conf"
	keepalivedStaging = keepalivedDir + "/.fleet-keepalived.conf"
	keepalivedCheck   = keepalivedDir + "/fleet-check-lb.sh"
)

// addLoadBalancers adds the steps that make the balancers serve the
// inventory's masters (inv: all of them, or those that stay), after the
// steps named: with one balancer, one step; with several, nginx -t on
// each before any goes live, then one at a time, then keepalived and the
// VIP. It returns what the API's users wait for: without a balancer
// (node-local proxies only), the steps named.
func addLoadBalancers(s *Session, g *steps.Graph, inv *inventory.Inventory, description string, after []string) []string {
	lbs := inv.LoadBalancerNames()
	switch len(lbs) {
	case 0:
		return after
	case 1:
		g.MustAdd(s.step(steps.Step{Name: "loadbalancer", Description: description, Hosts: lbs, After: after}, &lbPhase{inv: inv}))
		return []string{"loadbalancer"}
	}
	g.MustAdd(s.step(steps.Step{Name: "loadbalancer-test", Description: "stage the NGINX config on every balancer and nginx -t it there, before any goes live",
		Hosts: lbs, After: after}, &lbTestPhase{inv: inv}))
	g.MustAdd(s.step(steps.Step{Name: "loadbalancer", Description: description + "; one balancer at a time",
		Hosts: lbs, Serial: true, After: []string{"loadbalancer-test"}}, &lbPhase{inv: inv}))
	g.MustAdd(s.step(steps.Step{Name: "keepalived", Description: fmt.Sprintf("keepalived shares VIP %s (VRRP router %d, unicast, the VIP dropped when the local load balancer fails)", inv.VIP.Address, inv.VRRPRouterID()),
		Hosts: lbs, After: []string{"loadbalancer"}}, &keepalivedPhase{inv: inv, secret: &vrrpSecret{}}))
	g.MustAdd(steps.Step{Name: "vip", Description: "the API endpoint " + inv.Cluster.ControlPlaneEndpoint + " accepts connections on the VIP",
		After: []string{"keepalived"}, ReadOnly: true,
		Run: func(ctx context.Context, _ string) error {
			return waitTCP(ctx, inv.Cluster.ControlPlaneEndpoint, 30*time.Second)
		}})
	return []string{"vip"}
}

// lbTestPhase stages the config and has nginx -t check it, changing
// nothing live.
type lbTestPhase struct{ inv *inventory.Inventory }

func (p *lbTestPhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	return (&lbPhase{inv: p.inv}).check(ctx, pr, host)
}

func (p *lbTestPhase) run(ctx context.Context, r remote, host string) error {
	cfg, err := lbConfig(p.inv, &r.s.upstream)
	if err != nil {
		return err
	}
	return testLB(ctx, r, p.inv, host, cfg)
}

// vrrpSecret is the VRRP password every balancer shares: the one a
// balancer's keepalived.conf already has, else a new one. Found once per
// run, registered with the redactor: it never reaches output.
type vrrpSecret struct {
	once  sync.Once
	value string
	err   error
}

func (v *vrrpSecret) get(ctx context.Context, p probe, inv *inventory.Inventory) (string, error) {
	v.once.Do(func() {
		lbs := inv.LoadBalancerNames()
		confs, errs := onEach(lbs, 0, func(host string) ([]byte, error) {
			files, err := p.readFiles(ctx, host, keepalivedConf)
			return files[keepalivedConf], err
		})
		for i, conf := range confs {
			if errs[i] != nil {
				v.err = fmt.Errorf("%s: read %s: %w", lbs[i], keepalivedConf, errs[i])
				return
			}
			if pass := keepalived.AuthPassOf(conf); pass != "" && v.value == "" {
				v.value = pass
			}
		}
		if v.value == "" {
			v.value = keepalived.NewAuthPass()
		}
		p.redact(v.value)
	})
	return v.value, v.err
}

// keepalivedAlive tests, in sh, that keepalived runs (its pid file's
// process lives).
const keepalivedAlive = `[ -s /run/keepalived.pid ] && kill -0 "$(cat /run/keepalived.pid)" 2>/dev/null`

// keepalivedPhase writes one balancer's keepalived.conf and track script,
// checked with keepalived -t before they go live, and starts or reloads
// keepalived.
type keepalivedPhase struct {
	inv    *inventory.Inventory
	secret *vrrpSecret
}

// keepalivedStateScript prints the balancer's IPv4 addresses (ip -o),
// then whether keepalived runs.
const keepalivedStateScript = `ip -o -4 addr show
if ` + keepalivedAlive + `; then echo keepalived:running; fi`

// want renders the balancer's files from what the host says of itself.
func (p *keepalivedPhase) want(ctx context.Context, pr probe, host string) (conf, check []byte, running bool, live map[string][]byte, err error) {
	out, files, err := pr.queryWithFiles(ctx, host, keepalivedStateScript, keepalivedConf, keepalivedCheck)
	if err != nil {
		return nil, nil, false, nil, err
	}
	h := p.inv.Host(host)
	iface, err := interfaceWith(out, h.Address)
	if err != nil {
		return nil, nil, false, nil, err
	}
	secret, err := p.secret.get(ctx, pr, p.inv)
	if err != nil {
		return nil, nil, false, nil, err
	}
	var peers []string
	for _, other := range p.inv.LoadBalancers {
		if other.Name != host {
			peers = append(peers, other.Address)
		}
	}
	conf, err = keepalived.Render(keepalived.Config{Name: host, Interface: iface, SourceIP: h.Address, Peers: peers,
		Priority: keepalived.PriorityOf(slices.Index(p.inv.LoadBalancerNames(), host)), RouterID: p.inv.VRRPRouterID(),
		VIP: p.inv.VIP.Address, AuthPass: secret, Check: keepalivedCheck})
	return conf, lbCheckScript(p.inv), strings.Contains(out, "keepalived:running"), files, err
}

func (p *keepalivedPhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	conf, check, running, live, err := p.want(ctx, pr, host)
	if err != nil {
		return false, "", err
	}
	switch {
	case string(live[keepalivedConf]) != string(conf) || string(live[keepalivedCheck]) != string(check):
		return false, "write keepalived.conf and the track script, then start or reload keepalived", nil
	case !running:
		return false, "start keepalived", nil
	}
	return true, "keepalived runs the current config", nil
}

// keepalivedScript: $1 the staged config, $2 the live one. keepalived -t
// checks the staged one (with the track script in place) before it goes
// live; then a running keepalived reloads, else it starts (through
// systemd where that runs).
const keepalivedScript = `set -e
keepalived -t -f "$1" >/dev/null 2>&1 || { keepalived -t -f "$1" 2>&1 | tail -n 5 >&2; exit 3; }
mv -f "$1" "$2"
if ` + keepalivedAlive + `; then kill -HUP "$(cat /run/keepalived.pid)"
elif [ -d /run/systemd/system ]; then systemctl enable --now keepalived && systemctl reload keepalived
else keepalived; fi`

func (p *keepalivedPhase) run(ctx context.Context, r remote, host string) error {
	conf, check, _, _, err := p.want(ctx, r.probe, host)
	if err != nil {
		return err
	}
	if err := r.uploadAll(ctx, host, []remoteFile{{keepalivedCheck, check, 0o755}, {keepalivedStaging, conf, 0o600}}); err != nil {
		return err
	}
	if _, err := r.run(ctx, host, exec.Command("sh", "-c", keepalivedScript, "fleet-keepalived", keepalivedStaging, keepalivedConf)); err != nil {
		return fmt.Errorf("keepalived: %w", err)
	}
	return nil
}

// lbCheckScript is keepalived's track script: exit 0 while this
// balancer's NGINX serves (its master process lives, or its container
// runs).
func lbCheckScript(inv *inventory.Inventory) []byte {
	test := `[ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)"`
	if inv.NginxRunAs() == inventory.NginxContainer {
		test = `[ "$(docker inspect -f '{{.State.Running}}' ` + lbContainerName + ` 2>/dev/null)" = true ]`
	}
	return []byte("#!/bin/sh\n# Written by fleet: keepalived gives the VIP up when this fails.\n" + test + "\n")
}

// interfaceWith finds, in `ip -o -4 addr show`'s lines, the interface
// that carries address.
func interfaceWith(out, address string) (string, error) {
	want, err := netip.ParseAddr(address)
	if err != nil {
		return "", fmt.Errorf("the balancer's address %q is no IP address (keepalived needs one)", address)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[2] != "inet" {
			continue
		}
		if p, err := netip.ParsePrefix(f[3]); err == nil && p.Addr() == want {
			return strings.TrimSuffix(f[1], ":"), nil
		}
	}
	return "", fmt.Errorf("no interface has %s (ip -o -4 addr show): the inventory's address must be the balancer's own", address)
}

// BalancerStatus is one load balancer's row of `fleet status`.
type BalancerStatus struct {
	Host       string
	Reachable  bool
	Nginx      Answer // its NGINX runs (the service's master process, or the container)
	Keepalived Answer // with a VIP: keepalived runs; Unknown without one
	HoldsVIP   Answer // with a VIP: the VIP is on one of its interfaces
	Err        error  // why the host could not be asked
}

// balancerStateScript prints what runs on a balancer and, with $1 = vip,
// its IPv4 addresses.
const balancerStateScript = nginxRunning + `
if command -v docker >/dev/null 2>&1 && [ "$(docker inspect -f '{{.State.Running}}' ` + lbContainerName + ` 2>/dev/null)" = true ]; then echo container:running; fi
if ` + keepalivedAlive + `; then echo keepalived:running; fi
[ "$1" = vip ] && ip -o -4 addr show 2>/dev/null; :`

// Balancers asks every load balancer, in parallel, what runs there and
// which one holds the VIP. It changes nothing; a balancer that cannot be
// asked is a row that says why.
func Balancers(ctx context.Context, s *Session) []BalancerStatus {
	lbs := s.Inv.LoadBalancerNames()
	withVIP := "novip"
	if s.Inv.VIP != nil {
		withVIP = "vip"
	}
	outs, errs := onEach(lbs, 0, func(host string) (string, error) {
		res, err := s.run(ctx, host, exec.Command("sh", "-c", balancerStateScript, "fleet-status", withVIP))
		return res.Stdout, err
	})
	rows := make([]BalancerStatus, len(lbs))
	for i, host := range lbs {
		rows[i] = BalancerStatus{Host: host, Err: errs[i], Reachable: errs[i] == nil}
		if errs[i] != nil {
			continue
		}
		out := outs[i]
		running := strings.Contains(out, "nginx:running")
		if s.Inv.NginxRunAs() == inventory.NginxContainer {
			running = strings.Contains(out, "container:running")
		}
		rows[i].Nginx = answer(running)
		if s.Inv.VIP != nil {
			rows[i].Keepalived = answer(strings.Contains(out, "keepalived:running"))
			_, err := interfaceWith(out, s.Inv.VIP.Address)
			rows[i].HoldsVIP = answer(err == nil)
		}
	}
	return rows
}
