package playbooks

import (
	"context"
	"errors"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// ErrApplyNotBuilt is returned by every apply step until `fleet apply` lands
// (issue 4). The graph itself is final, so `fleet plan` shows the real order.
var ErrApplyNotBuilt = errors.New("fleet apply is not built yet; only its plan is")

// workerJoinParallelism bounds concurrent worker joins: each join makes the
// API server issue a certificate and the new kubelet list everything.
const workerJoinParallelism = 10

// ApplyGraph is the step graph of `fleet apply`, in the order it runs.
func ApplyGraph(inv *inventory.Inventory) *steps.Graph {
	notYet := func(context.Context, string) error { return ErrApplyNotBuilt }
	masters := namesWithRole(inv, inventory.RoleMaster)
	first, rest := masters[0], masters[1:]
	workers := namesWithRole(inv, inventory.RoleWorker)

	g := steps.New()
	g.MustAdd(steps.Step{Name: "preflight", Description: "reach every host; check OS, binaries, swap, ports and clock skew",
		Hosts: hostNames(inv.Hosts()), Run: notYet})
	g.MustAdd(steps.Step{Name: "loadbalancer", Description: "write the NGINX stream config (least_conn over every master's :6443), nginx -t, start or reload",
		Hosts: []string{inv.LoadBalancer.Name}, After: []string{"preflight"}, Run: notYet})
	g.MustAdd(steps.Step{Name: "init", Description: "kubeadm init --upload-certs with controlPlaneEndpoint " + inv.Cluster.ControlPlaneEndpoint,
		Hosts: []string{first}, After: []string{"loadbalancer"}, Run: notYet})
	g.MustAdd(steps.Step{Name: "credentials", Description: "create a short-lived bootstrap token; compute the CA hash from ca.crt",
		After: []string{"init"}, Run: notYet})
	g.MustAdd(steps.Step{Name: "cni", Description: "apply the CNI manifest with the pod subnet " + inv.Cluster.PodSubnet,
		After: []string{"init"}, Run: notYet})
	if len(rest) > 0 {
		g.MustAdd(steps.Step{Name: "join-masters", Description: "kubeadm join --control-plane --certificate-key, re-uploading certs when the key expired",
			Hosts: rest, Serial: true, After: []string{"credentials"}, Run: notYet})
	}
	if len(workers) > 0 {
		g.MustAdd(steps.Step{Name: "distribute-ca", Description: "copy ca.crt to /etc/kubernetes/pki/ca.crt",
			Hosts: workers, After: []string{"credentials"}, Run: notYet})
		g.MustAdd(steps.Step{Name: "join-workers", Description: "kubeadm join with the token and the CA hash",
			Hosts: workers, MaxParallel: workerJoinParallelism, After: []string{"distribute-ca"}, Run: notYet})
	}
	joins := []string{"credentials", "cni"}
	if len(rest) > 0 {
		joins = append(joins, "join-masters")
	}
	if len(workers) > 0 {
		joins = append(joins, "join-workers")
	}
	g.MustAdd(steps.Step{Name: "kubeconfig", Description: "fetch admin.conf (0600, server = the load balancer) and wait for every node Ready",
		After: joins, Run: notYet})
	g.MustAdd(steps.Step{Name: "cleanup-tokens", Description: "delete the bootstrap tokens this run created",
		After: []string{"kubeconfig"}, Run: notYet})
	return g
}

// namesWithRole lists the inventory's hosts of one role, in inventory order.
func namesWithRole(inv *inventory.Inventory, role inventory.Role) []string {
	var names []string
	for _, h := range inv.Hosts() {
		if h.Role == role {
			names = append(names, h.Name)
		}
	}
	return names
}
