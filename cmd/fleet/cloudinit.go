package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetops/fleet/playbooks"
)

type cloudInitCmd struct {
	Inventory string        `short:"i" default:"${inventory}" help:"Inventory file (default: $$FLEET_INVENTORY, else ./inventory.yaml)." type:"existingfile"`
	Node      string        `arg:"" help:"The worker the user-data is for (its join mode decides what it does)." predictor:"node"`
	TokenTTL  time.Duration `help:"Lifetime of the bootstrap token in the user-data (kubeadm and tls-bootstrap modes)." default:"1h"`
	Output    string        `short:"o" help:"Write the user-data to this file (0600) instead of stdout." placeholder:"FILE"`
}

func (c *cloudInitCmd) Run(ctx context.Context, g *globals) error {
	if c.TokenTTL < time.Minute || c.TokenTTL > 24*time.Hour {
		return fmt.Errorf("--token-ttl %s: want between 1m and 24h (the user-data is a secret while it works)", c.TokenTTL)
	}
	s, err := openSession(g, c.Inventory, quiet)
	if err != nil {
		return err
	}
	defer s.Close()
	ud, err := playbooks.CloudInit(ctx, s, c.Node, playbooks.CloudInitOptions{TokenTTL: c.TokenTTL})
	if err != nil {
		return fmt.Errorf("cloud-init: %s", err)
	}
	until := ""
	if !ud.Expires.IsZero() {
		until = ", usable until " + ud.Expires.Local().Format(time.RFC3339)
	}
	fmt.Fprintf(g.stderr, "warning: the user-data for %s (join mode %s) holds %s%s; treat it as a secret\n", c.Node, ud.Mode, ud.Secret, until)
	if c.Output != "" {
		if err := ud.WriteFile(c.Output); err != nil {
			return err
		}
		fmt.Fprintf(g.stderr, "wrote %s (0600)\n", c.Output)
		return nil
	}
	// Deliberately not redacted: the user-data is what the user asked for.
	_, err = g.stdout.Write(ud.Document)
	return err
}
