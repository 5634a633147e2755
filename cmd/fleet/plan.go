package main

import (
	"fmt"

	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
)

type planCmd struct {
	Inventory string `short:"i" required:"" help:"Inventory file." type:"existingfile"`
}

func (c *planCmd) Run(g *globals) error {
	inv, err := inventory.Load(c.Inventory)
	if err != nil {
		return err
	}
	for _, w := range inv.Warnings {
		fmt.Fprintln(g.stderr, "warning:", w)
	}
	s, err := playbooks.NewSession(inv, playbooks.Options{KnownHosts: g.KnownHosts})
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(g.stdout, "fleet apply -i %s would run, for cluster %q (Kubernetes %s):\n\n",
		c.Inventory, inv.Cluster.Name, inv.Cluster.KubernetesVersion)
	return playbooks.ApplyGraph(s, playbooks.DefaultApplyOptions()).Print(g.stdout)
}
