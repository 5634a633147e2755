package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fleetops/fleet/playbooks"
)

type restoreCmd struct {
	Inventory  string        `short:"i" default:"${inventory}" help:"Inventory file (default: $$FLEET_INVENTORY, else ./inventory.yaml)." type:"existingfile"`
	Backup     string        `arg:"" name:"backup" help:"A backup folder fleet backup made." type:"existingdir"`
	Yes        bool          `help:"Do not ask first."`
	PodTimeout time.Duration `help:"How long each control-plane pod may take to stop, then to come back healthy." default:"3m"`
}

// Run checks the backup against the cluster, says what it will do, asks,
// then restores etcd on every master from the snapshot.
func (c *restoreCmd) Run(ctx context.Context, g *globals) error {
	s, err := openSession(g, c.Inventory, showProgress)
	if err != nil {
		return err
	}
	defer s.Close()
	plan, err := playbooks.PlanRestore(ctx, s, c.Backup)
	if err != nil {
		return err
	}
	m := plan.Manifest
	var masters []string
	for _, member := range plan.Members {
		masters = append(masters, member.Host)
	}
	fmt.Fprintf(g.stderr, "restore %s: the etcd snapshot of cluster %q from %s (%s, %d bytes)\n",
		c.Backup, m.Cluster, m.From, m.Created.Format(time.RFC3339), m.Size)
	for _, host := range masters {
		if files := plan.MissingPKI[host]; len(files) > 0 {
			fmt.Fprintf(g.stderr, "  %s lacks %s: put back from the backup\n", host, strings.Join(files, ", "))
		}
	}
	if !c.Yes && !confirm(g.stdin, g.stderr, fmt.Sprintf("stop the control plane on %s and replace etcd's data with the snapshot (what changed since is lost)?", strings.Join(masters, ", ")), "yes") {
		return fmt.Errorf("not confirmed: nothing changed")
	}
	start := time.Now()
	res, err := playbooks.Restore(ctx, s, plan, playbooks.RestoreOptions{PodTimeout: c.PodTimeout})
	g.stopProgress()
	if err != nil {
		return fmt.Errorf("restore failed after %s: %w (run it again: it starts over from the backup, and puts back what a cut-short run left aside)", time.Since(start).Round(time.Millisecond), err)
	}
	out := s.Output(g.stdout)
	defer out.Flush()
	fmt.Fprintf(out, "restored %s in %s: %d etcd members, every control plane healthy, every node Ready\n",
		c.Backup, time.Since(start).Round(time.Millisecond), res.Members)
	for _, host := range masters {
		if aside := res.Aside[host]; aside != "" {
			fmt.Fprintf(out, "  %s: etcd's data before the restore kept in %s (remove it once the cluster is right)\n", host, aside)
		}
	}
	return nil
}
