package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/sim"
)

// maxApplyOverhead is the target: fleet's own time in a full apply.
const maxApplyOverhead = 0.05

// overheadResult splits one full `fleet apply` on the HA test bed.
type overheadResult struct {
	wall      time.Duration
	kubeTools time.Duration // union of time inside kubeadm and kubectl commands
	readyWait time.Duration // waiting for the kubelets to report Ready, outside those commands
	steps     []stepTime    // the steps, in the order they started
}

type stepTime struct {
	name     string
	duration time.Duration // first start to last end, over its hosts
}

func (o overheadResult) fleetOwn() time.Duration { return o.wall - o.kubeTools - o.readyWait }

// interval is a span of time.
type interval struct{ start, end time.Time }

// measureApplyOverhead runs one apply on fresh HA hosts and splits its
// wall time from fleet's own command traces and step events.
func measureApplyOverhead(ctx context.Context, layer, dir string) (overheadResult, error) {
	var res overheadResult
	topo := sim.HA("bo", 63)
	topo.Tools = layer
	c, err := sim.Up(ctx, filepath.Join(dir, "sim"), topo)
	if err != nil {
		return res, err
	}
	defer c.Close()
	inv, err := inventory.Load(c.Inventory)
	if err != nil {
		return res, err
	}
	var mu sync.Mutex
	var kube []interval
	began := time.Now()
	stepSpan := map[string]*interval{}
	var order []string
	s, err := playbooks.NewSession(inv, playbooks.Options{
		OnCommand: func(t exec.CommandTrace) {
			if os.Getenv("FLEET_BENCH_TRACE") != "" {
				fmt.Fprintf(os.Stderr, "%8s +%-6s %-8s %.90q\n", t.Start.Sub(began).Round(time.Millisecond), t.Duration.Round(time.Millisecond), t.Host, t.Command)
			}
			if name := programOf(t.Command); name == "kubeadm" || name == "kubectl" {
				mu.Lock()
				kube = append(kube, interval{t.Start, t.Start.Add(t.Duration)})
				mu.Unlock()
			}
		},
		OnEvent: func(e steps.Event) {
			mu.Lock()
			defer mu.Unlock()
			span := stepSpan[e.Step]
			if span == nil {
				span = &interval{start: e.Time, end: e.Time}
				stepSpan[e.Step] = span
				order = append(order, e.Step)
			}
			span.end = e.Time
		},
	})
	if err != nil {
		return res, err
	}
	defer s.Close()
	opts := playbooks.DefaultApplyOptions()
	opts.GenerateCA = true // the HA test bed has a CA host
	opts.Kubeconfig = filepath.Join(dir, "admin.kubeconfig")
	start := time.Now()
	if _, err := playbooks.Apply(ctx, s, opts); err != nil {
		return res, fmt.Errorf("apply: %w", err)
	}
	res.wall = time.Since(start)
	res.kubeTools = unionLength(kube)
	// The kubeconfig step's wait for Ready, minus any kube command in it.
	if k := stepSpan["kubeconfig"]; k != nil {
		res.readyWait = unionLength(append(slices.Clone(kube), *k)) - res.kubeTools
	}
	for _, name := range order {
		sp := stepSpan[name]
		res.steps = append(res.steps, stepTime{name, sp.end.Sub(sp.start)})
	}
	return res, nil
}

// unionLength is the total time covered by at least one interval.
func unionLength(spans []interval) time.Duration {
	spans = slices.Clone(spans)
	slices.SortFunc(spans, func(a, b interval) int { return a.start.Compare(b.start) })
	var total time.Duration
	var cur interval
	for i, s := range spans {
		if i == 0 {
			cur = s
			continue
		}
		if !s.start.After(cur.end) {
			if s.end.After(cur.end) {
				cur.end = s.end
			}
			continue
		}
		total += cur.end.Sub(cur.start)
		cur = s
	}
	if len(spans) > 0 {
		total += cur.end.Sub(cur.start)
	}
	return total
}

// renderOverhead is RESULTS.md's apply section; missed says if the target failed.
func renderOverhead(o overheadResult) (string, string) {
	var b strings.Builder
	pct := func(d time.Duration) string { return fmt.Sprintf("%.1f %%", 100*float64(d)/float64(o.wall)) }
	b.WriteString("## Apply overhead: one full `fleet apply` on the HA test bed\n\n")
	b.WriteString("From fleet's own traces (every remote command's start and duration) and step events, on fresh hosts: LB, 3 masters, 2 workers.\n\n")
	b.WriteString("| part | time | share |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| wall time | %s | 100 %% |\n", secs(o.wall))
	fmt.Fprintf(&b, "| inside kubeadm / kubectl commands (union of their spans) | %s | %s |\n", secs(o.kubeTools), pct(o.kubeTools))
	fmt.Fprintf(&b, "| waiting for the kubelets to report Ready (kubeconfig step) | %s | %s |\n", secs(o.readyWait), pct(o.readyWait))
	fmt.Fprintf(&b, "| **fleet's own work** (connections, preflight, load balancer, uploads, checks) | %s | **%s** |\n\n", secs(o.fleetOwn()), pct(o.fleetOwn()))
	b.WriteString("Steps (first start to last end over their hosts):\n\n| step | time |\n|---|---|\n")
	for _, s := range o.steps {
		fmt.Fprintf(&b, "| %s | %s |\n", s.name, secs(s.duration))
	}
	b.WriteString("\n")
	share := float64(o.fleetOwn()) / float64(o.wall)
	if share > maxApplyOverhead {
		return b.String(), fmt.Sprintf("apply overhead %.1f %% (target ≤ %.0f %%)", 100*share, 100*maxApplyOverhead)
	}
	return b.String(), ""
}

// overheadOnly measures and prints the apply overhead alone.
func overheadOnly(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("overhead", flag.ExitOnError)
	layer := fs.String("layer", "/var/cache/fleet-sim/layer", "node binaries layer")
	dir := fs.String("dir", "/var/tmp/fleet-sim/bench/apply", "scratch folder")
	fs.Parse(args)
	o, err := measureApplyOverhead(ctx, *layer, *dir)
	if err != nil {
		return err
	}
	section, missed := renderOverhead(o)
	fmt.Print(section)
	if missed != "" {
		return fmt.Errorf("target missed: %s", missed)
	}
	return nil
}

// programOf is the program a remote command runs: its first word, inside
// the braces fleet puts around a kubeadm that reads a secret file (the
// file is removed after it, in the same command).
func programOf(command string) string {
	name, _, _ := strings.Cut(strings.TrimLeft(command, "{ "), " ")
	return name
}
