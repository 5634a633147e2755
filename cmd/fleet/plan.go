package main

import (
	"context"
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/fleetops/fleet/playbooks"
)

type planCmd struct {
	Inventory  string   `short:"i" default:"${inventory}" help:"Inventory file (default: $$FLEET_INVENTORY, else ./inventory.yaml)." type:"existingfile"`
	Kubeconfig string   `help:"The kubeconfig apply would write (compared with what it would write)." type:"path"`
	Exclude    []string `help:"Workers apply would leave out." placeholder:"WORKER"`
}

// Run prints the apply graph, then what apply would do host by host, from
// the same graph with preflight run and every other step's state check.
func (c *planCmd) Run(ctx context.Context, g *globals) error {
	s, err := openSession(g, c.Inventory, quiet)
	if err != nil {
		return err
	}
	defer s.Close()
	inv := s.Inv
	opts := playbooks.DefaultApplyOptions()
	opts.Exclude = c.Exclude
	opts.Kubeconfig = c.Kubeconfig
	if opts.Kubeconfig == "" {
		opts.Kubeconfig = filepath.Join(filepath.Dir(c.Inventory), inv.Cluster.Name+".kubeconfig")
	}
	out := s.Output(g.stdout)
	defer out.Flush()
	fmt.Fprintf(out, "fleet apply -i %s runs, for cluster %q (Kubernetes %s):\n\n", c.Inventory, inv.Cluster.Name, inv.Cluster.KubernetesVersion)
	if err := playbooks.ApplyGraph(s, opts).Print(out); err != nil {
		return err
	}
	report, err := playbooks.Plan(ctx, s, opts)
	if report == nil {
		return err
	}
	fmt.Fprintf(out, "\non these hosts now:\n")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	would := 0
	for _, e := range report.Events {
		var what string
		switch e.Kind {
		case playbooks.WouldRun:
			would++
			what = "would run"
			if e.Reason != "" {
				what += " (" + e.Reason + ")"
			}
		case playbooks.AlreadyDone:
			what = "done: " + e.Reason
		case playbooks.Succeeded:
			what = "ok"
		case playbooks.Failed:
			what = fmt.Sprintf("FAILS: %v", e.Err)
		case playbooks.Blocked, playbooks.Cancelled:
			what = "not reached: " + e.Reason
		default:
			continue
		}
		host := e.Host
		if host == "" {
			host = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", e.Step, host, what)
	}
	tw.Flush()
	if err != nil {
		return fmt.Errorf("apply would not get through: %s", err)
	}
	if would == 0 {
		fmt.Fprintln(out, "no changes: apply would do nothing")
	} else {
		fmt.Fprintf(out, "%d changes to make\n", would)
	}
	return nil
}
