package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fleetops/fleet/playbooks"
)

type kubeconfigCmd struct {
	Inventory string `short:"i" default:"${inventory}" help:"Inventory file (default: $$FLEET_INVENTORY, else ./inventory.yaml)." type:"existingfile"`
	Output    string `short:"o" help:"Where to write it (mode 0600); - prints it on stdout. Default: <cluster>.kubeconfig beside the inventory, where apply writes it." placeholder:"FILE"`
}

// Run fetches the admin kubeconfig without an apply: for a second
// operator, a lost file, or when master0 is down.
func (c *kubeconfigCmd) Run(ctx context.Context, g *globals) error {
	s, err := openSession(g, c.Inventory, quiet)
	if err != nil {
		return err
	}
	defer s.Close()
	path := c.Output
	switch path {
	case "-":
		path = ""
	case "":
		path = filepath.Join(filepath.Dir(c.Inventory), s.Inv.Cluster.Name+".kubeconfig")
	}
	r, err := playbooks.FetchKubeconfig(ctx, s, path)
	if err != nil {
		return fmt.Errorf("kubeconfig: %s", err)
	}
	// Facts go to stderr when stdout carries the kubeconfig.
	info := s.Output(g.stdout)
	if path == "" {
		info = s.Output(g.stderr)
	}
	defer info.Flush()
	valid := ""
	if !r.Expires.IsZero() {
		valid = fmt.Sprintf("; its client certificate is valid until %s", r.Expires.Local().Format(time.RFC3339))
	}
	switch {
	case path == "":
		fmt.Fprintf(g.stderr, "warning: the kubeconfig below holds the cluster admin's private key; do not paste it into logs or tickets\n")
		// Deliberately not redacted: the kubeconfig is what the user asked for.
		if _, err := g.stdout.Write(r.Document); err != nil {
			return err
		}
	case r.Written:
		fmt.Fprintf(info, "wrote %s (0600)\n", path)
	default:
		fmt.Fprintf(info, "no changes: %s already holds it\n", path)
	}
	fmt.Fprintf(info, "admin credentials from %s%s\n", r.From, valid)
	if r.APIErr != nil {
		return fmt.Errorf("the API did not answer through the load balancer %s with it: %s", s.Inv.Cluster.ControlPlaneEndpoint, r.APIErr)
	}
	fmt.Fprintf(info, "the API answers through the load balancer %s: Kubernetes %s\n", s.Inv.Cluster.ControlPlaneEndpoint, r.APIVersion)
	return nil
}
