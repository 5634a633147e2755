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
	if err := openLog(g); err != nil || g.log == nil {
		return func(playbooks.Event, func(string) string) {}, err
	}
	return func(e playbooks.Event, redact func(string) string) {
		if line := eventJSON(e, redact); line != nil {
			fmt.Fprintf(g.log, "%s\n", line)
		}
	}, nil
}

// commandLog returns what writes one remote command to --log-file as a
// JSON line, beside the events (nil without the flag): the file then
// tells what ran where, for which step, for how long and how it ended.
func commandLog(g *globals, redact func(string) string) (func(playbooks.CommandTrace), error) {
	if err := openLog(g); err != nil || g.log == nil {
		return nil, err
	}
	return func(t playbooks.CommandTrace) {
		if line := commandJSON(t, redact); line != nil {
			fmt.Fprintf(g.log, "%s\n", line)
		}
	}, nil
}

// openLog opens --log-file once per process, if it is given.
func openLog(g *globals) error {
	if g.LogFile == "" {
		return nil
	}
	if g.log == nil {
		f, err := os.OpenFile(g.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("--log-file: %w", err)
		}
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return fmt.Errorf("--log-file: %w", err)
		}
		g.log = f
	}
	return nil
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

// commandJSON is one remote command as a JSON line: when it started, the
// host it ran on, the task it ran for (step, and "for" when that task's
// host is another), its duration and exit code; its text through redact.
func commandJSON(t playbooks.CommandTrace, redact func(string) string) []byte {
	rec := map[string]any{"time": t.Start.UTC().Format(time.RFC3339Nano), "kind": "command", "host": t.Host,
		"command": redact(t.Command), "duration_ms": t.Duration.Milliseconds(), "exit_code": t.ExitCode}
	if t.Step != "" {
		rec["step"] = t.Step
	}
	if t.StepHost != "" && t.StepHost != t.Host {
		rec["for"] = t.StepHost
	}
	if t.Err != nil {
		rec["error"] = redact(t.Err.Error())
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return nil
	}
	return []byte(redact(string(line)))
}
