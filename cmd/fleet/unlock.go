package main

import (
	"context"
	"fmt"

	"github.com/fleetops/fleet/playbooks"
)

type unlockCmd struct {
	Inventory string `short:"i" default:"${inventory}" help:"Inventory file (default: $$FLEET_INVENTORY, else ./inventory.yaml)." type:"existingfile"`
	Yes       bool   `help:"Do not ask first."`
}

// Run breaks a lock left by a run that crashed or was killed. It shows the
// holder first: breaking the lock of a run that is still going lets two
// runs change the cluster at once.
func (c *unlockCmd) Run(ctx context.Context, g *globals) error {
	s, err := openSession(g, c.Inventory, quiet)
	if err != nil {
		return err
	}
	defer s.Close()
	out := s.Output(g.stdout)
	defer out.Flush()
	held, err := playbooks.LockHolder(ctx, s)
	if err != nil {
		return err
	}
	if held == nil {
		fmt.Fprintln(out, "no lock: nothing to break")
		return nil
	}
	who := held.Who()
	if !c.Yes && !confirm(g.stdin, g.stderr, fmt.Sprintf("the cluster is locked by %s; break it only if that run is gone.", who), "unlock") {
		return fmt.Errorf("not confirmed: the lock stays")
	}
	broken, err := playbooks.Unlock(ctx, s, held)
	if err != nil {
		return err
	}
	if broken == nil {
		fmt.Fprintln(out, "no lock: it was released meanwhile")
		return nil
	}
	fmt.Fprintf(out, "broke the lock of %s\n", who)
	return nil
}
