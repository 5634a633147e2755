package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/playbooks"
)

type applyCmd struct {
	Inventory  string        `short:"i" required:"" help:"Inventory file." type:"existingfile"`
	Kubeconfig string        `help:"Where to write the admin kubeconfig (0600). Default: <cluster>.kubeconfig beside the inventory." type:"path"`
	TokenTTL   time.Duration `help:"Lifetime of the bootstrap token this run creates." default:"15m"`
}

func (c *applyCmd) Run(ctx context.Context, g *globals) error {
	s, err := openSession(g, c.Inventory)
	if err != nil {
		return err
	}
	defer s.Close()
	opts := playbooks.DefaultApplyOptions()
	opts.TokenTTL = c.TokenTTL
	opts.Kubeconfig = c.Kubeconfig
	if opts.Kubeconfig == "" {
		opts.Kubeconfig = filepath.Join(filepath.Dir(c.Inventory), s.Inv.Cluster.Name+".kubeconfig")
	}
	start := time.Now()
	report, err := playbooks.Apply(ctx, s, opts)
	out := s.Output(g.stdout)
	defer out.Flush()
	if err != nil {
		return fmt.Errorf("apply failed after %s; fix the cause and run fleet apply again, it resumes where it stopped:\n%s",
			time.Since(start).Round(time.Millisecond), s.Redactor.String(err.Error()))
	}
	if !report.Changed() {
		fmt.Fprintf(out, "no changes: the cluster already matches %s (%s)\n", c.Inventory, time.Since(start).Round(time.Millisecond))
		return nil
	}
	fmt.Fprintf(out, "applied in %s: %d changes, %d steps already done\n", time.Since(start).Round(time.Millisecond),
		len(report.Changes()), report.Count(steps.AlreadyDone))
	fmt.Fprintf(out, "kubeconfig: %s\n", opts.Kubeconfig)
	return nil
}
