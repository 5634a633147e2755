package main

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/fleetops/fleet/playbooks"
)

// eventPrinter shows progress on stderr: failures and skips always, every
// event with -v.
func eventPrinter(g *globals) func(playbooks.Event) {
	return func(e playbooks.Event) {
		task := where(e)
		switch {
		case e.Kind == playbooks.Failed:
			fmt.Fprintln(g.stderr, failLine(e))
		case e.Kind == playbooks.Note:
			fmt.Fprintln(g.stderr, noteLine(e))
		case e.Kind == playbooks.Blocked || e.Kind == playbooks.Cancelled:
			fmt.Fprintf(g.stderr, "SKIP  %s: %s\n", task, e.Reason)
		case !g.Verbose:
		case e.Kind == playbooks.Started:
			fmt.Fprintf(g.stderr, "...   %s\n", task)
		case e.Kind == playbooks.AlreadyDone:
			fmt.Fprintf(g.stderr, "DONE  %s: already %s\n", task, e.Reason)
		default:
			fmt.Fprintf(g.stderr, "OK    %s (%s)\n", task, e.Duration.Round(time.Millisecond))
		}
	}
}

// failLine and noteLine are what the user must see at once, in every
// view: a step that failed on a host, something a playbook did beside it.
func failLine(e playbooks.Event) string {
	return fmt.Sprintf("FAIL  %s (%s): %v", where(e), e.Duration.Round(time.Millisecond), e.Err)
}

func noteLine(e playbooks.Event) string { return fmt.Sprintf("NOTE  %s: %s", where(e), e.Reason) }

// where names a task: its step, and its host if it has one.
func where(e playbooks.Event) string {
	if e.Host == "" {
		return e.Step
	}
	return e.Step + " " + e.Host
}

// eventLog opens --log-file (0600, appended to) and returns what writes one
// event to it as a JSON line, its texts through redact; without the flag it does
// nothing. A file that exists keeps its lines but becomes 0600.
func eventLog(g *globals) (func(playbooks.Event, func(string) string), error) {
	if g.LogFile == "" {
		return func(playbooks.Event, func(string) string) {}, nil
	}
	if g.log == nil {
		f, err := os.OpenFile(g.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("--log-file: %w", err)
		}
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, fmt.Errorf("--log-file: %w", err)
		}
		g.log = f
	}
	return func(e playbooks.Event, redact func(string) string) {
		if line := eventJSON(e, redact); line != nil {
			fmt.Fprintf(g.log, "%s\n", line)
		}
	}, nil
}

// eventJSON is one event as a JSON line (--log-file, apply -o json), its
// texts through redact.
func eventJSON(e playbooks.Event, redact func(string) string) []byte {
	rec := map[string]any{"time": e.Time.UTC().Format(time.RFC3339Nano), "kind": e.Kind, "step": e.Step}
	if e.Host != "" {
		rec["host"] = e.Host
	}
	if e.Reason != "" {
		rec["reason"] = redact(e.Reason)
	}
	if e.Err != nil {
		rec["error"] = redact(e.Err.Error())
	}
	if e.Duration > 0 {
		rec["duration_ms"] = e.Duration.Milliseconds()
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return nil
	}
	return []byte(redact(string(line)))
}
