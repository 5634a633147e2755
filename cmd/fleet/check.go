package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
)

type checkCmd struct {
	Inventory string `short:"i" default:"${inventory}" help:"Inventory file (default: $$FLEET_INVENTORY, else ./inventory.yaml)." type:"existingfile"`
	Output    string `short:"o" help:"table, json or yaml (a fleet/v1 document)." enum:"table,json,yaml" default:"table"`
}

func (c *checkCmd) Run(ctx context.Context, g *globals) error {
	s, err := openSession(g, c.Inventory, quiet)
	if err != nil {
		return err
	}
	defer s.Close()
	out := s.Output(g.stdout)
	defer out.Flush()

	start := time.Now()
	results, _, runErr := playbooks.Check(ctx, s)
	if c.Output != "table" {
		doc := checkDoc(results)
		return writeDocThen(out, c.Output, doc, unreachable(doc.Total-doc.Reachable, runErr))
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "HOST\tROLE\tADDRESS\tREACHABLE\tOS\tARCH\tDISTRO")
	for _, t := range playbooks.CheckedTools() {
		fmt.Fprintf(tw, "\t%s", t)
	}
	fmt.Fprint(tw, "\tTIME\n")
	down := 0
	for _, r := range results {
		if !r.Reachable() {
			down++
			fmt.Fprintf(tw, "%s\t%s\t%s\tno\t-\t-\t-", r.Host, r.Role, r.Address)
			for range playbooks.CheckedTools() {
				fmt.Fprint(tw, "\t-")
			}
			fmt.Fprintf(tw, "\t%s\n", r.Took.Round(time.Millisecond))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\tyes\t%s\t%s\t%s", r.Host, r.Role, r.Address, r.Facts.OS, r.Facts.Arch, r.Facts.Distro)
		for _, t := range playbooks.CheckedTools() {
			fmt.Fprintf(tw, "\t%s", yesNo(r.Facts.Has(t)))
		}
		fmt.Fprintf(tw, "\t%s\n", r.Took.Round(time.Millisecond))
	}
	tw.Flush()
	if g.Verbose {
		printLogins(out, s)
	}
	fmt.Fprintf(out, "%d of %d hosts reachable in %s\n", len(results)-down, len(results), time.Since(start).Round(time.Millisecond))
	return unreachable(down, runErr)
}

func unreachable(down int, runErr error) error {
	if runErr == nil {
		return nil
	}
	return fmt.Errorf("%d host(s) unreachable:\n%s", down, runErr)
}

// printLogins says per host how fleet logs in and where each setting came
// from (the inventory, the ssh config's file:line, or fleet's default).
func printLogins(out io.Writer, s *playbooks.Session) {
	fmt.Fprintln(out, "\nSSH logins:")
	for _, h := range s.Inv.Hosts() {
		l := s.Logins[h.Name]
		fmt.Fprintf(out, "%s: %s@%s:%d\n", h.Name, l.User, l.Address, l.Port)
		fmt.Fprintf(out, "  address %s (%s), user (%s), port (%s)\n", l.Address, l.Sources["address"], l.Sources["user"], l.Sources["port"])
		if len(l.IdentityFiles) > 0 {
			fmt.Fprintf(out, "  identity %s (%s)\n", strings.Join(l.IdentityFiles, ", "), l.Sources["identityFile"])
		} else {
			fmt.Fprintln(out, "  identity: the SSH agent's keys")
		}
		fmt.Fprintf(out, "  known_hosts %s (%s)\n", l.KnownHosts, l.Sources["knownHosts"])
		if l.Jump != nil {
			fmt.Fprintf(out, "  via %s@%s:%d (%s)\n", l.Jump.User, l.Jump.Address, l.Jump.Port, l.Sources["jumpHost"])
		}
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// How a command's session shows the steps it runs.
type view int

const (
	quiet        view = iota // failures, notes and skips on stderr; every event with -v
	showProgress             // the --progress view (commands that change hosts)
)

// openSession loads the inventory, prints its warnings and prepares the
// connections.
func openSession(g *globals, path string, v view) (*playbooks.Session, error) {
	inv, err := inventory.Load(path)
	if err != nil {
		return nil, err
	}
	for _, w := range inv.Warnings {
		fmt.Fprintln(g.stderr, "warning:", w)
	}
	// Events print through the session's redactor: an error may quote a
	// command's output.
	var s *playbooks.Session
	printEvent := eventPrinter(g)
	logEvent, err := eventLog(g)
	if err != nil {
		return nil, err
	}
	opts := playbooks.Options{
		AcceptNewHostKeys: g.AcceptNewHostKeys,
		KnownHosts:        g.KnownHosts,
		Concurrency:       g.Concurrency,
		SSHConfig:         g.SSHConfig,
	}
	if g.Persist > 0 {
		opts.KeepConnections(playbooks.MuxDir(), g.Persist, "mux-serve")
	}
	var onPlan []func([]playbooks.PlannedStep)
	if v == showProgress && !g.Verbose {
		if g.progress == nil {
			g.progress = newProgress(g.Progress, g.stderr)
		}
		printEvent = g.progress.event
		onPlan = append(onPlan, g.progress.plan)
		opts.OnCommandStart = g.progress.command
		opts.OnConnect = g.progress.connecting
	}
	if v == showProgress && g.Report != "" {
		if g.recorder == nil {
			g.recorder = playbooks.NewRunRecorder()
		}
		onPlan = append(onPlan, g.recorder.Plan)
		opts.OnCommand = g.recorder.Command
	}
	// The redactor is the session's, made below; commands run only after.
	logCommand, err := commandLog(g, func(text string) string { return s.Redactor.String(text) })
	if err != nil {
		return nil, err
	}
	if onCommand := opts.OnCommand; logCommand != nil {
		opts.OnCommand = func(t playbooks.CommandTrace) {
			logCommand(t)
			if onCommand != nil {
				onCommand(t)
			}
		}
	}
	opts.OnPlan = func(p []playbooks.PlannedStep) {
		for _, f := range onPlan {
			f(p)
		}
	}
	opts.OnEvent = func(e playbooks.Event) {
		if e.Err != nil {
			e.Err = errors.New(s.Redactor.String(e.Err.Error()))
		}
		printEvent(e)
		logEvent(e, s.Redactor.String)
		if g.eventsOut != nil {
			fmt.Fprintf(g.eventsOut, "%s\n", eventJSON(e, s.Redactor.String))
		}
		if g.recorder != nil {
			g.recorder.Event(e)
		}
	}
	s, err = playbooks.NewSession(inv, opts)
	if err != nil {
		return nil, err
	}
	g.redactors = append(g.redactors, s.Redactor.String)
	for _, w := range s.Warnings {
		fmt.Fprintln(g.stderr, "warning:", w)
	}
	return s, nil
}
