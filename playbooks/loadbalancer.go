package playbooks

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/lb"
	"github.com/fleetops/fleet/inventory"
)

// Where fleet keeps its NGINX configuration on the load balancer. nginx.conf
// gets one include line; fleet's files live in their own folder.
const (
	nginxConf      = "/etc/nginx/nginx.conf"
	nginxFleetDir  = "/etc/nginx/fleet.d"
	nginxInclude   = "include /etc/nginx/fleet.d/*.conf;"
	nginxLive      = nginxFleetDir + "/kube-apiserver.conf"
	nginxStaging   = nginxFleetDir + "/.staging"
	nginxCandidate = nginxStaging + "/kube-apiserver.conf"
	// The test copy of nginx.conf sits beside it so relative includes resolve alike.
	nginxTestConf = "/etc/nginx/.fleet-nginx-test.conf"
)

// lbConfig renders the stream config for the inventory's masters that
// serve (see upstream).
func lbConfig(inv *inventory.Inventory, serving *upstream) ([]byte, error) {
	_, port, err := net.SplitHostPort(inv.Cluster.ControlPlaneEndpoint)
	if err != nil {
		return nil, err
	}
	listen, _ := strconv.Atoi(port)
	cfg := lb.Config{ListenPort: listen}
	if o := inv.LoadBalancer.Nginx; o != nil {
		cfg.ConnectTimeout, cfg.ProxyTimeout = time.Duration(o.ConnectTimeout), time.Duration(o.ProxyTimeout)
	}
	for _, m := range inv.Masters {
		if serving.includes(m.Name) {
			cfg.Backends = append(cfg.Backends, lb.Backend{Name: m.Name, Address: m.Address, Port: inventory.DefaultAPIPort})
		}
	}
	return lb.Render(cfg)
}

// upstream is who the load balancers send API clients to during a run:
// every master of the inventory, but those that preflight saw not joined
// yet (the inventory's first, which kubeadm init makes serve, aside) enter
// only once they join and their API server is ready. A kube-apiserver
// that listens but is not ready still syncs its authorizers and its
// bootstrap-token authenticator: through the balancer it answered the
// other joins 401 and 403 while a master joined beside a hundred workers.
type upstream struct {
	mu      sync.Mutex
	pending map[string]bool
}

func (u *upstream) wait(master string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.pending == nil {
		u.pending = map[string]bool{}
	}
	u.pending[master] = true
}

// serve lets master in; it reports whether it was waiting.
func (u *upstream) serve(master string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	was := u.pending[master]
	delete(u.pending, master)
	return was
}

func (u *upstream) includes(master string) bool {
	if u == nil {
		return true
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return !u.pending[master]
}

// enterUpstream waits for a master that joined to be ready, then puts it
// in every balancer's upstream if it was kept out, one balancer at a time.
func enterUpstream(ctx context.Context, r remote, inv *inventory.Inventory, master string, limit time.Duration) error {
	dial, err := r.probe.dialer(ctx, master)
	if err != nil {
		return err
	}
	apiserver := staticPod{"kube-apiserver", "https", net.JoinHostPort("127.0.0.1", strconv.Itoa(inventory.DefaultAPIPort)), "/readyz"}
	if err := waitHealthy(ctx, dial, apiserver, limit); err != nil {
		return fmt.Errorf("kube-apiserver on %s: %w", master, err)
	}
	if !r.s.upstream.serve(master) {
		return nil
	}
	cfg, err := lbConfig(inv, &r.s.upstream)
	if err != nil {
		return err
	}
	for _, lbHost := range inv.LoadBalancerNames() {
		if err := applyLB(ctx, r, inv, lbHost, cfg); err != nil {
			return fmt.Errorf("add %s to the upstream of %s: %w", master, lbHost, err)
		}
		r.note("join-masters", master, "ready: added to the upstream of "+lbHost)
	}
	return nil
}

// lbPhase writes the load balancer's config for inv's masters (apply and
// join: all of them; remove: those that stay) and makes nginx serve it.
type lbPhase struct{ inv *inventory.Inventory }

func (p *lbPhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	cfg, err := lbConfig(p.inv, &pr.s.upstream)
	if err != nil {
		return false, "", err
	}
	return lbUpToDate(ctx, pr, p.inv, host, cfg)
}

func (p *lbPhase) run(ctx context.Context, r remote, host string) error {
	cfg, err := lbConfig(p.inv, &r.s.upstream)
	if err != nil {
		return err
	}
	return applyLB(ctx, r, p.inv, host, cfg)
}

// lbUpToDate: the live config is what fleet would write and nginx runs.
func lbUpToDate(ctx context.Context, p probe, inv *inventory.Inventory, host string, want []byte) (bool, string, error) {
	if inv.NginxRunAs() == inventory.NginxContainer {
		return lbContainerUpToDate(ctx, p, inv, host, want)
	}
	res, err := p.query(ctx, host, exec.Command("sh", "-c", `cat "$1" 2>/dev/null; echo; `+nginxRunning, "sh", nginxLive))
	if err != nil {
		return false, "", err
	}
	out := res.Stdout
	const running = "\nnginx:running\n"
	if len(out) < len(running) || out[len(out)-len(running):] != running {
		return false, "", nil
	}
	if out[:len(out)-len(running)] != string(want) {
		return false, "", nil
	}
	return true, "nginx serves the current upstream", nil
}

// nginxRunning prints nginx:running when the master process of the pid file lives.
const nginxRunning = `if [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then echo nginx:running; else echo nginx:stopped; fi`

// applyLB stages the new config, has nginx -t check the whole configuration
// with it, and only then makes it live and reloads (or starts) nginx. A
// config nginx rejects never reaches the live path. After the upload it is
// one remote script: this step sits on the critical path of an apply.
func applyLB(ctx context.Context, r remote, inv *inventory.Inventory, host string, config []byte) error {
	endpoint := inv.Cluster.ControlPlaneEndpoint
	if inv.VIP != nil {
		// The VIP may not be up yet (keepalived comes after): this
		// balancer's own address.
		_, port, _ := net.SplitHostPort(endpoint)
		endpoint = net.JoinHostPort(inv.Host(host).Address, port)
	}
	if inv.NginxRunAs() == inventory.NginxContainer {
		if err := applyLBContainer(ctx, r, inv, host, config); err != nil {
			return err
		}
		return waitTCP(ctx, endpoint, 10*time.Second)
	}
	if err := stageLB(ctx, r, host, config); err != nil {
		return err
	}
	res, err := r.run(ctx, host, exec.Command("sh", "-c", lbTestScript+"\n"+lbGoLiveScript, "fleet-lb", nginxConf, nginxInclude, nginxTestConf, nginxCandidate, nginxLive))
	switch {
	case err != nil && res.ExitCode == lbRejected:
		return fmt.Errorf("nginx -t rejected the new config (the live one is untouched): %w", err)
	case err != nil:
		return fmt.Errorf("install the config and start or reload nginx: %w", err)
	}
	return waitTCP(ctx, endpoint, 10*time.Second)
}

// stageLB uploads the candidate config beside the live one.
func stageLB(ctx context.Context, r remote, host string, config []byte) error {
	if err := r.ensureDir(ctx, host, nginxStaging, 0o755); err != nil {
		return err
	}
	return r.upload(ctx, host, nginxCandidate, config, 0o644)
}

// testLB stages the config and has nginx -t check the whole configuration
// with it; nothing live changes.
func testLB(ctx context.Context, r remote, inv *inventory.Inventory, host string, config []byte) error {
	if inv.NginxRunAs() == inventory.NginxContainer {
		return nil // the container's nginx checks it as it starts (applyLBContainer)
	}
	if err := stageLB(ctx, r, host, config); err != nil {
		return err
	}
	res, err := r.run(ctx, host, exec.Command("sh", "-c", lbTestScript, "fleet-lb", nginxConf, nginxInclude, nginxTestConf, nginxCandidate, nginxLive))
	if err != nil && res.ExitCode == lbRejected {
		return fmt.Errorf("nginx -t rejected the new config (no balancer's live config changed): %w", err)
	}
	return err
}

// lbRejected is lbTestScript's exit code when nginx -t refuses the candidate.
const lbRejected = 3

// lbTestScript: $1 nginx.conf, $2 the include line, $3 the test copy of
// nginx.conf, $4 the candidate, $5 the live file.
// nginx.conf gets fleet's include line once (atomically); the test copy
// includes the staging folder instead of the live one, so nginx -t checks
// the whole configuration with the candidate in place. Then the candidate
// replaces the live file by rename, and a running nginx reloads; otherwise
// it starts, through systemd where that runs. The container of an earlier
// runAs: container goes first: it holds the port.
const lbTestScript = `set -e
grep -qxF "$2" "$1" || { cp -p "$1" "$1.fleet-tmp"; printf '
# fleet: the Kubernetes API load balancer
%s
' "$2" >> "$1.fleet-tmp"; mv "$1.fleet-tmp" "$1"; }
sed 's#^include /etc/nginx/fleet.d/\*.conf;$#include /etc/nginx/fleet.d/.staging/*.conf;#' "$1" > "$3"
nginx -t -q -c "$3" || exit 3`

// lbGoLiveScript follows lbTestScript, same arguments.
const lbGoLiveScript = `cp "$4" "$5.fleet-tmp" && mv -f "$5.fleet-tmp" "$5"
if command -v docker >/dev/null 2>&1 && docker container inspect fleet-lb >/dev/null 2>&1; then docker rm -f fleet-lb >/dev/null; fi
if [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then nginx -s reload
elif [ -d /run/systemd/system ]; then systemctl enable --now nginx && systemctl reload nginx
else nginx; fi`

// waitTCP waits until addr accepts a TCP connection.
func waitTCP(ctx context.Context, addr string, limit time.Duration) error {
	var last error
	err := pollUntil(ctx, 100*time.Millisecond, limit, func(ctx context.Context) (bool, error) {
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err != nil {
			last = err
			return false, nil
		}
		c.Close()
		return true, nil
	})
	if err == errPollTimeout {
		return fmt.Errorf("load balancer endpoint %s does not accept connections: %w", addr, last)
	}
	return err
}

// lbRemovePhase takes fleet's load balancer away (fleet reset): its
// config and a reload, or its container.
type lbRemovePhase struct{ inv *inventory.Inventory }

// lbRemoveScript removes fleet's config files and has a running nginx
// reload without them.
const lbRemoveScript = `rm -rf "$@"
if [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then nginx -s reload; fi`

func (p *lbRemovePhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	if p.inv.NginxRunAs() == inventory.NginxContainer {
		return lbContainerGone(ctx, pr, host)
	}
	ok, err := pr.allExist(ctx, host, nginxLive)
	if err != nil || ok {
		return false, "", err
	}
	return true, "no fleet config on the load balancer", nil
}

func (p *lbRemovePhase) run(ctx context.Context, r remote, host string) error {
	if p.inv.NginxRunAs() == inventory.NginxContainer {
		return removeLBContainer(ctx, r, host)
	}
	if _, err := r.run(ctx, host, exec.Command("sh", "-c", lbRemoveScript, "fleet-lb", nginxLive, nginxStaging, nginxTestConf)); err != nil {
		return fmt.Errorf("remove the load-balancer config: %w", err)
	}
	return nil
}
