package playbooks

import (
	"context"
	"fmt"
	"net"
	"strconv"
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

// lbConfig renders the stream config for the inventory's masters.
func lbConfig(inv *inventory.Inventory) ([]byte, error) {
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
		cfg.Backends = append(cfg.Backends, lb.Backend{Name: m.Name, Address: m.Address, Port: inventory.DefaultAPIPort})
	}
	return lb.Render(cfg)
}

// lbUpToDate: the live config is what fleet would write and nginx runs.
func lbUpToDate(ctx context.Context, s *Session, host string, want []byte) (bool, string, error) {
	res, err := s.run(ctx, host, exec.Command("sh", "-c", `cat "$1" 2>/dev/null; echo; `+nginxRunning, "sh", nginxLive))
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
// config nginx rejects never reaches the live path.
func applyLB(ctx context.Context, s *Session, host string, config []byte, endpoint string) error {
	prepare := fmt.Sprintf(`set -e
mkdir -p %[1]s
grep -qxF %[2]s %[3]s || { cp -p %[3]s %[3]s.fleet-tmp; printf '\n# fleet: the Kubernetes API load balancer\n%%s\n' %[2]s >> %[3]s.fleet-tmp; mv %[3]s.fleet-tmp %[3]s; }`,
		exec.Quote(nginxStaging), exec.Quote(nginxInclude), exec.Quote(nginxConf))
	if _, err := s.run(ctx, host, prepare); err != nil {
		return fmt.Errorf("prepare nginx.conf: %w", err)
	}
	if err := s.upload(ctx, host, nginxCandidate, config, 0o644); err != nil {
		return err
	}
	test := fmt.Sprintf(`sed 's#^include /etc/nginx/fleet.d/\*.conf;$#include /etc/nginx/fleet.d/.staging/*.conf;#' %s > %s && nginx -t -q -c %s`,
		exec.Quote(nginxConf), exec.Quote(nginxTestConf), exec.Quote(nginxTestConf))
	if _, err := s.run(ctx, host, test); err != nil {
		return fmt.Errorf("nginx -t rejected the new config (the live one is untouched): %w", err)
	}
	if err := s.upload(ctx, host, nginxLive, config, 0o644); err != nil {
		return err
	}
	// Reload a running nginx; otherwise start it through systemd where it
	// runs, or directly.
	start := `if [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then nginx -s reload
elif [ -d /run/systemd/system ]; then systemctl enable --now nginx && systemctl reload nginx
else nginx; fi`
	if _, err := s.run(ctx, host, start); err != nil {
		return fmt.Errorf("start or reload nginx: %w", err)
	}
	return waitTCP(ctx, endpoint, 10*time.Second)
}

// waitTCP waits until addr accepts a TCP connection.
func waitTCP(ctx context.Context, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("load balancer endpoint %s does not accept connections: %w", addr, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
