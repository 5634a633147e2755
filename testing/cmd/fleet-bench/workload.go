package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/steps"

	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/bench"
)

// workload is one fleet run, in its own process so that the driver times
// it and reads its peak RSS exactly as it does for the peers.
func workload(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("workload", flag.ExitOnError)
	invPath := fs.String("i", "", "inventory")
	payloadFile := fs.String("payload", "", "file to upload")
	outDir := fs.String("out", "", "where to write each host's outputs")
	trace := fs.Bool("trace", false, "print every step event and command with its time since start")
	fs.Parse(args)
	start := time.Now()
	payload, err := os.ReadFile(*payloadFile)
	if err != nil {
		return err
	}
	inv, err := inventory.Load(*invPath)
	if err != nil {
		return err
	}
	// As many tasks at once as hosts: ansible gets forks = N, xargs -P N.
	opts := playbooks.Options{Concurrency: len(inv.Hosts())}
	if *trace {
		opts.OnEvent = func(e steps.Event) {
			fmt.Fprintf(os.Stderr, "%8s %-10s %s %s\n", time.Since(start).Round(time.Millisecond), e.Kind, e.Step, e.Host)
		}
		opts.OnCommand = func(t exec.CommandTrace) {
			fmt.Fprintf(os.Stderr, "%8s command %s %q took %s\n", time.Since(start).Round(time.Millisecond), t.Host, t.Command, t.Duration.Round(time.Millisecond))
		}
	}
	s, err := playbooks.NewSession(inv, opts)
	if err != nil {
		return err
	}
	defer s.Close()
	out, err := bench.RunFleet(ctx, s, payload)
	if err != nil {
		return err
	}
	if *outDir != "" {
		if err := os.MkdirAll(*outDir, 0o755); err != nil {
			return err
		}
		for _, h := range inv.Hosts() {
			for i, o := range out.Of(h.Name) {
				if err := os.WriteFile(filepath.Join(*outDir, fmt.Sprintf("%s.%d", h.Name, i+1)), []byte(o), 0o644); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
