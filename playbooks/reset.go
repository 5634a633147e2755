package playbooks

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// Reset tears the whole cluster down: kubeadm reset on the workers, then on
// the masters, then fleet's load-balancer config goes. Every step checks
// first, so an interrupted reset finishes when run again.
func Reset(ctx context.Context, s *Session) (*Report, error) {
	return locked(ctx, s, "reset", func() (*Report, error) { return s.Run(ctx, resetGraph(s)) })
}

// resetGraph is the step graph of `fleet reset`.
func resetGraph(s *Session) *steps.Graph {
	workers := namesWithRole(s.Inv, inventory.RoleWorker)
	masters := namesWithRole(s.Inv, inventory.RoleMaster)
	reset := &resetPhase{inv: s.Inv}
	g := steps.New()
	mastersAfter := []string(nil)
	if len(workers) > 0 {
		g.MustAdd(s.step(steps.Step{Name: "reset-workers", Description: "kubeadm reset -f on every worker (the same by hand where fleet joined it without kubeadm)",
			Hosts: workers, MaxParallel: workerJoinParallelism}, reset))
		mastersAfter = []string{"reset-workers"}
	}
	// One master at a time, each leaving etcd while the others keep its
	// quorum: kubeadm reset cleans /var/lib/etcd only in the phase that
	// removes the member, so that phase must run and succeed.
	g.MustAdd(s.step(steps.Step{Name: "reset-masters", Description: "kubeadm reset -f on each master in turn (each leaves etcd)",
		Hosts: reversed(masters), Serial: true, After: mastersAfter}, reset))
	description := "remove fleet's NGINX stream config, reload nginx"
	if s.Inv.NginxRunAs() == inventory.NginxContainer {
		description = "remove the " + lbContainerName + " container and its config"
	}
	if len(s.Inv.LoadBalancers) > 0 {
		g.MustAdd(s.step(steps.Step{Name: "loadbalancer", Description: description,
			Hosts: s.Inv.LoadBalancerNames(), After: []string{"reset-masters"}}, &lbRemovePhase{inv: s.Inv}))
	}
	return g
}

// resetPhase undoes a node's join (fleet reset, fleet remove).
type resetPhase struct{ inv *inventory.Inventory }

// nodeGoneScript prints "gone" when nothing of a join is left on the host:
// no kubelet credentials, nothing a kubeadm join or fleet's kubelet start
// writes (the same test as a join cut short), and not fleet's kubelet
// drop-in.
const nodeGoneScript = `if [ -e ` + kubeletConf + ` ] || ` + startedJoinTest + ` || [ -e ` + kubeletDropIn + ` ] || [ -e ` + nodeProxyConf + ` ]; then echo present; else echo gone; fi`

func (p *resetPhase) check(ctx context.Context, pr probe, node string) (bool, string, error) {
	res, err := pr.query(ctx, node, nodeGoneScript)
	if err != nil {
		return false, "", err
	}
	if res.Stdout == "gone\n" {
		return true, "nothing of a join on the host", nil
	}
	return false, "", nil
}

func (p *resetPhase) run(ctx context.Context, r remote, node string) error {
	return resetNode(ctx, r, p.inv.Host(node))
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

// nodeProxyRemoveScript stops the node-local proxy and removes its files,
// when it is there.
const nodeProxyRemoveScript = `{ if [ -e ` + nodeProxyConf + ` ] || [ -e ` + nodeProxyUnit + ` ]; then
	if [ -d /run/systemd/system ]; then systemctl disable --now fleet-apiserver-proxy 2>/dev/null || :; rm -f ` + nodeProxyUnit + `; systemctl daemon-reload
	elif ` + nodeProxyAlive + `; then kill -QUIT "$(cat ` + nodeProxyPID + `)"; fi
	rm -rf ` + nodeProxyDir + `
fi; }`

// kubeletHealthzPort is where every kubelet answers /healthz (127.0.0.1).
const kubeletHealthzPort = "10248"

// resetNode undoes a node's join and waits until its processes have let go
// of their ports and its kubelet has stopped: a join or init right after
// would find them. A master always has kubeadm (preflight requires it),
// and its reset must run kubeadm's: only that leaves etcd.
func resetNode(ctx context.Context, r remote, h *inventory.Host) error {
	ctx, cancel := context.WithTimeout(ctx, kubeadmTimeout)
	defer cancel()
	cmd := workerResetScript
	if h.Role == inventory.RoleMaster {
		cmd = exec.Command("kubeadm", "reset", "-f")
	}
	cmd = "{ " + cmd + "\n} && " + nodeProxyRemoveScript
	if _, err := r.run(ctx, h.Name, cmd); err != nil {
		return fmt.Errorf("kubeadm reset: %w", err)
	}
	if err := waitPortsFree(ctx, r.probe, h.Name, append(slices.Clone(nodePorts[h.Role]), kubeletHealthzPort)); err != nil {
		return err
	}
	if h.Role != inventory.RoleMaster {
		return nil
	}
	// etcd closes its ports first and writes its data folder until it
	// exits: after kubeadm reset emptied the folder, a dying etcd can
	// leave files in it (resetUntilClean looks).
	if err := waitEtcdGone(ctx, r, h.Name, resetSettleTime); err != nil {
		return fmt.Errorf("kubeadm reset: %w", err)
	}
	return nil
}

// resetSettleTime bounds the wait for a reset node's processes to go:
// kubeadm reset returns once it has asked them to stop.
const resetSettleTime = 30 * time.Second

// waitPortsFree waits until nothing listens on ports on the host.
func waitPortsFree(ctx context.Context, p probe, host string, ports []string) error {
	var busy []string
	err := pollUntil(ctx, 250*time.Millisecond, resetSettleTime, func(ctx context.Context) (bool, error) {
		res, err := p.query(ctx, host, "ss -Hltn")
		if err != nil {
			return false, err
		}
		busy = taken(parseListeners(res.Stdout), ports)
		return len(busy) == 0, nil
	})
	switch {
	case err != errPollTimeout:
		return err
	case slices.Contains(busy, kubeletHealthzPort):
		return fmt.Errorf("the kubelet still runs %s after kubeadm reset", resetSettleTime)
	}
	return fmt.Errorf("ports %s still in use %s after kubeadm reset", strings.Join(busy, ", "), resetSettleTime)
}

// reversed returns names last first: the first master, which the next
// apply initialises again, goes last.
func reversed(names []string) []string {
	out := slices.Clone(names)
	slices.Reverse(out)
	return out
}
