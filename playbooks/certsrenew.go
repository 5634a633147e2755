package playbooks

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// RenewableCerts are the names `kubeadm certs renew` takes besides "all":
// the leaf certificates and kubeconfigs kubeadm made on a master.
var RenewableCerts = []string{
	"admin.conf", "apiserver", "apiserver-etcd-client", "apiserver-kubelet-client", "controller-manager.conf",
	"etcd-healthcheck-client", "etcd-peer", "etcd-server", "front-proxy-client", "scheduler.conf", "super-admin.conf",
}

// CertsRenewOptions are `fleet certs renew`'s.
type CertsRenewOptions struct {
	Names        []string // certificates to renew; nil for all
	Kubeconfig   string   // the operator's admin kubeconfig, refreshed after; "" for none
	PodTimeout   time.Duration
	ReadyTimeout time.Duration
}

// CertsRenewResult is what `fleet certs renew` did.
type CertsRenewResult struct {
	Report     *steps.Report
	Kubeconfig *KubeconfigResult // nil when no path was given
}

// CheckRenewNames refuses a name kubeadm would not renew, before any host
// is touched.
func CheckRenewNames(names []string) error {
	for _, n := range names {
		if !slices.Contains(RenewableCerts, n) {
			return fmt.Errorf("certs renew: no certificate %q: want %s, or --all", n, strings.Join(RenewableCerts, ", "))
		}
	}
	return nil
}

// CertsRenew renews kubeadm's certificates on every master, one at a
// time: `kubeadm certs renew`, then each control-plane static pod restarted
// as kubeadm documents (its manifest moved out until the pod is gone, then
// back until it is healthy), so it serves and uses the new certificates;
// a master that does not come back stops the run before the next one.
// Then the operator's admin kubeconfig is refreshed and every node must be
// Ready.
func CertsRenew(ctx context.Context, s *Session, opts CertsRenewOptions) (*CertsRenewResult, error) {
	if err := CheckRenewNames(opts.Names); err != nil {
		return nil, err
	}
	if opts.PodTimeout == 0 {
		opts.PodTimeout = 3 * time.Minute
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 3 * time.Minute
	}
	masters := namesWithRole(s.Inv, inventory.RoleMaster)
	s.Connect(ctx, masters)
	return locked(ctx, s, "certs renew", func() (*CertsRenewResult, error) {
		g := steps.New()
		what := "all"
		if len(opts.Names) > 0 {
			what = strings.Join(opts.Names, ", ")
		}
		g.MustAdd(s.step(steps.Step{Name: "certs-renew", Description: "kubeadm certs renew " + what + ", then etcd, kube-apiserver, kube-controller-manager and kube-scheduler restarted; one master at a time",
			Hosts: masters, Serial: true}, &certsRenewPhase{names: opts.Names, timeout: opts.PodTimeout}))
		report, err := s.Run(ctx, g)
		res := &CertsRenewResult{Report: report}
		if err != nil {
			return res, err
		}
		if opts.Kubeconfig != "" {
			if res.Kubeconfig, err = FetchKubeconfig(ctx, s, opts.Kubeconfig); err != nil {
				return res, fmt.Errorf("refresh the admin kubeconfig: %w", err)
			}
		}
		return res, waitNodesReady(ctx, s, opts.ReadyTimeout)
	})
}

// waitNodesReady waits for every inventory node to be Ready.
func waitNodesReady(ctx context.Context, s *Session, limit time.Duration) error {
	access, err := connectCluster(ctx, s)
	if err != nil {
		return err
	}
	return waitReady(ctx, access.client, append(namesWithRole(s.Inv, inventory.RoleMaster), namesWithRole(s.Inv, inventory.RoleWorker)...), limit)
}

// staticPod is a kubeadm control-plane pod and where it answers on its
// master's loopback.
type staticPod struct {
	name   string // its manifest's name, without .yaml
	scheme string
	addr   string
	path   string
}

// controlPlanePods restart in this order after a renewal: etcd first
// (the API server is its client), then the API server, then its clients.
var controlPlanePods = []staticPod{
	{"etcd", "http", "127.0.0.1:2381", "/health"},
	{"kube-apiserver", "https", "127.0.0.1:6443", "/livez"},
	{"kube-controller-manager", "https", "127.0.0.1:10257", "/healthz"},
	{"kube-scheduler", "https", "127.0.0.1:10259", "/healthz"},
}

const (
	manifestsDir = "/etc/kubernetes/manifests"
	// A manifest waits here while its pod is down: outside the folder
	// the kubelet watches.
	restartDir = "/etc/kubernetes/fleet-restart"
)

// certsRenewPhase renews on one master and restarts its control plane.
type certsRenewPhase struct {
	names   []string
	timeout time.Duration // per pod: to go, then to come back healthy
}

// putBackScript returns every manifest a cut-short restart left aside,
// unless the kubelet's folder has one of that name again.
const putBackScript = `for f in ` + restartDir + `/*.yaml; do
	[ -e "$f" ] || continue
	[ -e ` + manifestsDir + `/"${f##*/}" ] || mv "$f" ` + manifestsDir + `/
done`

func (p *certsRenewPhase) run(ctx context.Context, r remote, host string) error {
	names := p.names
	if len(names) == 0 {
		names = []string{"all"}
	}
	var renew []string
	for _, n := range names {
		renew = append(renew, exec.Command("kubeadm", "certs", "renew", n))
	}
	// A restart an earlier run left halfway is finished first.
	if _, err := r.run(ctx, host, putBackScript+"\n"+strings.Join(renew, " && ")); err != nil {
		return fmt.Errorf("kubeadm certs renew: %w", err)
	}
	dial, err := r.probe.dialer(ctx, host)
	if err != nil {
		return err
	}
	for _, pod := range controlPlanePods {
		if err := p.restart(ctx, r, host, dial, pod); err != nil {
			return fmt.Errorf("restart %s: %w", pod.name, err)
		}
	}
	return nil
}

// restart moves pod's manifest out until the pod stops answering, then
// back until it answers healthy. The manifest goes back even when the
// wait fails: a master is never left without its control plane.
func (p *certsRenewPhase) restart(ctx context.Context, r remote, host string, dial func(context.Context, string, string) (net.Conn, error), pod staticPod) (err error) {
	manifest := manifestsDir + "/" + pod.name + ".yaml"
	aside := restartDir + "/" + pod.name + ".yaml"
	if _, err := r.run(ctx, host, exec.Command("mkdir", "-p", restartDir)+" && "+exec.Command("mv", manifest, aside)); err != nil {
		return err
	}
	back := func(ctx context.Context) error {
		_, err := r.run(ctx, host, exec.Command("mv", aside, manifest))
		return err
	}
	defer func() {
		if err != nil { // put it back even when ctx ended (Ctrl-C)
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			if berr := back(bctx); berr != nil {
				err = fmt.Errorf("%w; and putting %s back failed: %v (the next run puts it back)", err, manifest, berr)
			}
		}
	}()
	if err := waitGone(ctx, dial, pod, p.timeout); err != nil {
		return err
	}
	if err := back(ctx); err != nil {
		return err
	}
	return waitHealthy(ctx, dial, pod, p.timeout)
}

// waitGone polls the pod's port through the SSH connection until nothing
// answers there.
func waitGone(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), pod staticPod, limit time.Duration) error {
	err := pollUntil(ctx, 250*time.Millisecond, limit, func(ctx context.Context) (bool, error) {
		c, err := dial(ctx, "tcp", pod.addr)
		if err != nil {
			return true, nil // nothing listens: the pod is gone
		}
		c.Close()
		return false, nil
	})
	if err == errPollTimeout {
		return fmt.Errorf("still answering on %s %s after its manifest was moved out", pod.addr, limit)
	}
	return err
}

// waitHealthy polls pod's health endpoint through the SSH connection until
// it answers 200. The probe skips certificate verification, as the
// kubelet's own probes do: it proves the process serves, and nothing
// secret is sent or read (controller-manager and scheduler serve
// self-signed certificates).
func waitHealthy(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), pod staticPod, limit time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext:     dial,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a liveness probe, see above
	}}
	defer client.CloseIdleConnections()
	var last string
	err := pollUntil(ctx, 250*time.Millisecond, limit, func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, pod.scheme+"://"+pod.addr+pod.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == http.StatusOK, nil
	})
	if err == errPollTimeout {
		return fmt.Errorf("not healthy after %s (%s%s: %s)", limit, pod.addr, pod.path, last)
	}
	return err
}
