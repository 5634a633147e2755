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
	Output     string   `short:"o" help:"table, json or yaml (a fleet/v1 document)." enum:"table,json,yaml" default:"table"`
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
	if c.Output != "table" {
		report, err := playbooks.Plan(ctx, s, opts)
		if report == nil {
			return err
		}
		doc := PlanDoc{Header: header("Plan"), Cluster: inv.Cluster.Name}
		doc.Steps, doc.Changes = planSteps(report)
		if err != nil {
			doc.Error = err.Error()
		}
		if werr := writeDoc(out, c.Output, doc); werr != nil {
			return werr
		}
		if err != nil {
			return fmt.Errorf("apply would not get through: %w", err)
		}
		return nil
	}
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
	tasks, would := planSteps(report)
	for _, t := range tasks {
		what := t.Would
		switch {
		case t.Would == "run":
			what = "would run"
			if t.Reason != "" {
				what += " (" + t.Reason + ")"
			}
		case t.Would == "done":
			what = "done: " + t.Reason
		case t.Would == "fails":
			what = "FAILS: " + t.Reason
		case t.Would == "not-reached":
			what = "not reached: " + t.Reason
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", t.Step, orDash(t.Host), what)
	}
	tw.Flush()
	if err != nil {
		return fmt.Errorf("apply would not get through: %w", err)
	}
	if would == 0 {
		fmt.Fprintln(out, "no changes: apply would do nothing")
	} else {
		fmt.Fprintf(out, "%d changes to make\n", would)
	}
	return nil
}

// planSteps says per task of a dry run what apply would do, and how many
// tasks would run.
func planSteps(report *playbooks.Report) (tasks []PlanStep, would int) {
	tasks = []PlanStep{}
	for _, e := range report.Events {
		t := PlanStep{Step: e.Step, Host: e.Host, Reason: e.Reason}
		switch e.Kind {
		case playbooks.WouldRun:
			would++
			t.Would = "run"
		case playbooks.AlreadyDone:
			t.Would = "done"
		case playbooks.Succeeded:
			t.Would = "ok"
		case playbooks.Failed:
			t.Would, t.Reason = "fails", fmt.Sprint(e.Err)
		case playbooks.Blocked, playbooks.Cancelled:
			t.Would = "not-reached"
		default:
			continue
		}
		tasks = append(tasks, t)
	}
	return tasks, would
}
