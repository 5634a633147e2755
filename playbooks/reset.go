package playbooks

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// Reset tears the whole cluster down: kubeadm reset on the workers, then on
// the masters, then fleet's load-balancer config goes. Every step checks
// first, so an interrupted reset finishes when run again.
func Reset(ctx context.Context, s *Session) (*steps.Report, error) {
	return locked(ctx, s, "reset", func() (*steps.Report, error) { return s.Run(ctx, ResetGraph(s)) })
}

// ResetGraph is the step graph of `fleet reset`.
func ResetGraph(s *Session) *steps.Graph {
	workers := namesWithRole(s.Inv, inventory.RoleWorker)
	masters := namesWithRole(s.Inv, inventory.RoleMaster)
	gone := func(ctx context.Context, h string) (bool, string, error) { return nodeStateGone(ctx, s, h) }
	g := steps.New()
	mastersAfter := []string(nil)
	if len(workers) > 0 {
		g.MustAdd(steps.Step{Name: "reset-workers", Description: "kubeadm reset -f on every worker (the same by hand where fleet joined it without kubeadm)",
			Hosts: workers, MaxParallel: workerJoinParallelism, Check: gone,
			Run: func(ctx context.Context, h string) error { return resetNode(ctx, s, h) }})
		mastersAfter = []string{"reset-workers"}
	}
	// One master at a time, each leaving etcd while the others keep its
	// quorum: kubeadm reset cleans /var/lib/etcd only in the phase that
	// removes the member, so that phase must run and succeed.
	g.MustAdd(steps.Step{Name: "reset-masters", Description: "kubeadm reset -f on each master in turn (each leaves etcd)",
		Hosts: reversed(masters), Serial: true, After: mastersAfter, Check: gone,
		Run: func(ctx context.Context, h string) error { return resetNode(ctx, s, h) }})
	if s.Inv.NginxRunAs() == inventory.NginxContainer {
		g.MustAdd(steps.Step{Name: "loadbalancer", Description: "remove the " + lbContainerName + " container and its config",
			Hosts: []string{s.Inv.LoadBalancer.Name}, After: []string{"reset-masters"},
			Check: func(ctx context.Context, h string) (bool, string, error) { return lbContainerGone(ctx, s, h) },
			Run:   func(ctx context.Context, h string) error { return removeLBContainer(ctx, s, h) }})
		return g
	}
	g.MustAdd(steps.Step{Name: "loadbalancer", Description: "remove fleet's NGINX stream config, reload nginx",
		Hosts: []string{s.Inv.LoadBalancer.Name}, After: []string{"reset-masters"},
		Check: func(ctx context.Context, h string) (bool, string, error) {
			ok, err := s.allExist(ctx, h, nginxLive)
			if err != nil || ok {
				return false, "", err
			}
			return true, "no fleet config on the load balancer", nil
		},
		Run: func(ctx context.Context, h string) error {
			script := exec.Command("rm", "-rf", nginxLive, nginxStaging, nginxTestConf) + "\n" +
				`if [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then nginx -s reload; fi`
			if _, err := s.run(ctx, h, script); err != nil {
				return fmt.Errorf("remove the load-balancer config: %w", err)
			}
			return nil
		}})
	return g
}

// nodeStateGone: nothing of a join is left on the host: no kubelet
// credentials, nothing a kubeadm join or fleet's kubelet start writes (the
// same test as a join cut short), and not fleet's kubelet drop-in.
func nodeStateGone(ctx context.Context, s *Session, node string) (bool, string, error) {
	res, err := s.run(ctx, node, `if [ -e `+kubeletConf+` ] || `+startedJoinTest+` || [ -e `+kubeletDropIn+` ]; then echo present; else echo gone; fi`)
	if err != nil {
		return false, "", err
	}
	if res.Stdout == "gone\n" {
		return true, "nothing of a join on the host", nil
	}
	return false, "", nil
}

// workerResetScript undoes a worker's join. With kubeadm it is kubeadm
// reset -f; a worker fleet joined without kubeadm (tls-bootstrap, cfssl)
// gets what kubeadm reset does on a worker: kubelet stopped, pods removed,
// its mounts and directories emptied, its kubeconfigs deleted. Either way
// fleet's kubelet drop-in goes too: kubeadm does not know it.
const workerResetScript = `set -e
if command -v kubeadm >/dev/null 2>&1; then
	kubeadm reset -f
else
	if [ -d /run/systemd/system ]; then systemctl stop kubelet || :; fi
	if command -v crictl >/dev/null 2>&1; then crictl rmp -af >/dev/null 2>&1 || :; fi
	awk '$2 ~ "^/var/lib/kubelet/" {print $2}' /proc/mounts | sort -r | while read -r m; do umount "$m" || :; done
	rm -rf /var/lib/kubelet/* /etc/kubernetes/pki/* /etc/kubernetes/manifests/*
	rm -f ` + kubeletConf + ` ` + bootstrapKubeconfig + `
fi
if [ -e ` + kubeletDropIn + ` ]; then
	rm -f ` + kubeletDropIn + `
	if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
fi`

// resetNode undoes a node's join and waits until its processes have let go
// of their ports and its kubelet has stopped: a join or init right after
// would find them. A master always has kubeadm (preflight requires it),
// and its reset must run kubeadm's: only that leaves etcd.
func resetNode(ctx context.Context, s *Session, node string) error {
	ctx, cancel := context.WithTimeout(ctx, kubeadmTimeout)
	defer cancel()
	h := s.Inv.Host(node)
	cmd := workerResetScript
	if h.Role == inventory.RoleMaster {
		cmd = exec.Command("kubeadm", "reset", "-f")
	}
	if _, err := s.run(ctx, node, cmd); err != nil {
		return fmt.Errorf("kubeadm reset: %w", err)
	}
	if err := waitPortsFree(ctx, s, h); err != nil {
		return err
	}
	return waitKubeletStopped(ctx, s, node)
}

// waitPortsFree waits until the control-plane or kubelet processes have
// let go of their ports: kubeadm reset returns once it has asked them to
// stop, and a join or init on the host right after would find them taken.
func waitPortsFree(ctx context.Context, s *Session, h *inventory.Host) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		busy, err := portsInUse(ctx, s, h)
		if err != nil || len(busy) == 0 {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ports %s still in use 30s after kubeadm reset", strings.Join(busy, ", "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// reversed returns names last first: the first master, which the next
// apply initialises again, goes last.
func reversed(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[len(names)-1-i] = n
	}
	return out
}
