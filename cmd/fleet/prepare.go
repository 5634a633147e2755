package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetops/fleet/playbooks"
)

type prepareCmd struct {
	Inventory string   `short:"i" default:"${inventory}" help:"Inventory file (default: $$FLEET_INVENTORY, else ./inventory.yaml)." type:"existingfile"`
	Exclude   []string `help:"Workers to leave out of this run." placeholder:"WORKER"`
}

func (c *prepareCmd) Run(ctx context.Context, g *globals) error {
	s, err := openSession(g, c.Inventory, showProgress)
	if err != nil {
		return err
	}
	defer s.Close()
	if !s.Inv.Installs() {
		return badInput{fmt.Errorf("%s: cluster.install is %s: fleet prepares hosts with install: binaries or packages", c.Inventory, s.Inv.Cluster.Install)}
	}
	opts := playbooks.DefaultApplyOptions()
	opts.Exclude = c.Exclude
	start := time.Now()
	report, err := playbooks.Prepare(ctx, s, opts)
	g.stopProgress()
	out := s.Output(g.stdout)
	defer out.Flush()
	if err != nil {
		return fmt.Errorf("prepare failed after %s; fix the cause and run it again, it resumes where it stopped:\n%w", time.Since(start).Round(time.Millisecond), err)
	}
	if !report.Changed() {
		fmt.Fprintf(out, "no changes: every node is prepared (%s)\n", time.Since(start).Round(time.Millisecond))
		return nil
	}
	fmt.Fprintf(out, "prepared in %s: %d changes, %d steps already done\n", time.Since(start).Round(time.Millisecond),
		len(report.Changes()), report.Count(playbooks.AlreadyDone))
	printUploaded(out, s)
	return nil
}
