package playbooks

import (
	"context"
	"fmt"

	"github.com/fleetops/fleet/internal/cfssl"
	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/inventory"
)

// clusterCAPhase puts the CA host's cluster CA on the first master as
// ca.crt and ca.key, where kubeadm init finds it: every certificate of
// the cluster then chains to the CA host's.
type clusterCAPhase struct{ inv *inventory.Inventory }

// check: the first master's ca.crt is the CA host's.
func (c *clusterCAPhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	p, err := pr.caPlatform(ctx)
	if err != nil {
		return false, "", err
	}
	want, err := pr.readFile(ctx, c.inv.CA.Name, p.Path(cfssl.CACert))
	if err != nil {
		return false, "", err
	}
	have, err := pr.query(ctx, host, exec.Command("cat", caCert)+" 2>/dev/null || true")
	if err != nil {
		return false, "", err
	}
	if have.Stdout == string(want) {
		return true, "ca.crt is the CA host's cluster CA", nil
	}
	return false, "", nil
}

// run installs the CA. An initialised master with another CA is left
// alone: replacing a running cluster's CA would cut every node off.
func (c *clusterCAPhase) run(ctx context.Context, r remote, host string) error {
	if done, _, err := initialised(ctx, r.probe, host); err != nil {
		return err
	} else if done {
		return fmt.Errorf("the cluster on %s was made with another CA than the CA host's; fleet does not replace a running cluster's CA (reset the cluster, or remove ca: from the inventory)", host)
	}
	p, err := r.caPlatform(ctx)
	if err != nil {
		return err
	}
	ca := c.inv.CA.Name
	cert, err := r.readFile(ctx, ca, p.Path(cfssl.CACert))
	if err != nil {
		return err
	}
	key, err := r.readFile(ctx, ca, p.Path(cfssl.CAKey))
	if err != nil {
		return err
	}
	r.redactPEM(key)
	if err := r.ensureDir(ctx, host, "/etc/kubernetes/pki", 0o755); err != nil {
		return err
	}
	if err := r.upload(ctx, host, "/etc/kubernetes/pki/ca.key", key, 0o600); err != nil {
		return err
	}
	return r.upload(ctx, host, caCert, cert, 0o644)
}
