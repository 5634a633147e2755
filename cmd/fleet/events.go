package main

import (
	"fmt"
	"time"

	"github.com/fleetops/fleet/internal/steps"
)

// eventPrinter shows progress on stderr: failures and skips always, every
// event with -v.
func eventPrinter(g *globals) func(steps.Event) {
	return func(e steps.Event) {
		where := e.Step
		if e.Host != "" {
			where += " " + e.Host
		}
		switch {
		case e.Kind == steps.Failed:
			fmt.Fprintf(g.stderr, "FAIL  %s (%s): %v\n", where, e.Duration.Round(time.Millisecond), e.Err)
		case e.Kind == steps.Blocked || e.Kind == steps.Cancelled:
			fmt.Fprintf(g.stderr, "SKIP  %s: %s\n", where, e.Reason)
		case !g.Verbose:
		case e.Kind == steps.Started:
			fmt.Fprintf(g.stderr, "...   %s\n", where)
		case e.Kind == steps.AlreadyDone:
			fmt.Fprintf(g.stderr, "DONE  %s: already %s\n", where, e.Reason)
		default:
			fmt.Fprintf(g.stderr, "OK    %s (%s)\n", where, e.Duration.Round(time.Millisecond))
		}
	}
}
