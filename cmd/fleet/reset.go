package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetops/fleet/playbooks"
)

type resetCmd struct {
	Inventory string `short:"i" default:"${inventory}" help:"Inventory file (default: $$FLEET_INVENTORY, else ./inventory.yaml)." type:"existingfile"`
	Yes       bool   `help:"Do not ask first."`
}

func (c *resetCmd) Run(ctx context.Context, g *globals) error {
	s, err := openSession(g, c.Inventory, showProgress)
	if err != nil {
		return err
	}
	defer s.Close()
	name := s.Inv.Cluster.Name
	if !c.Yes && !confirm(g.stdin, g.stderr, fmt.Sprintf("tear down cluster %q: kubeadm reset on every node, etcd data gone?", name), name) {
		return fmt.Errorf("not confirmed: nothing changed")
	}
	start := time.Now()
	report, err := playbooks.Reset(ctx, s)
	g.stopProgress()
	out := s.Output(g.stdout)
	defer out.Flush()
	if err != nil {
		return fmt.Errorf("reset failed after %s; run it again to finish:\n%s", time.Since(start).Round(time.Millisecond), err)
	}
	if !report.Changed() {
		fmt.Fprintf(out, "no changes: nothing of cluster %q is left on its hosts\n", name)
		return nil
	}
	fmt.Fprintf(out, "cluster %q torn down in %s\n", name, time.Since(start).Round(time.Millisecond))
	return nil
}
