package playbooks

import (
	"bytes"
	"sync"
	"time"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/runreport"
	"github.com/fleetops/fleet/internal/steps"
)

// CommandTrace is one remote command as it ended (Options.OnCommand).
type CommandTrace = exec.CommandTrace

// RunRecorder keeps what a run did, for its HTML report (--report): the
// graphs' plans, every step event, every remote command. Its methods are
// the session's OnPlan, OnEvent and OnCommand; they may be called from
// many goroutines.
type RunRecorder struct {
	mu       sync.Mutex
	started  time.Time
	plans    []steps.Planned
	events   []steps.Event
	commands []exec.CommandTrace
}

// NewRunRecorder starts recording now.
func NewRunRecorder() *RunRecorder { return &RunRecorder{started: time.Now()} }

func (r *RunRecorder) Plan(p []PlannedStep) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.plans = append(r.plans, p...)
}

func (r *RunRecorder) Event(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *RunRecorder) Command(t CommandTrace) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.commands = append(r.commands, t)
}

// WriteHTML writes the report to path atomically; every text goes through
// redact first (the events and commands are redacted already; this is the
// last look before the file).
func (r *RunRecorder) WriteHTML(path, title string, runErr error, redact func(string) string) error {
	r.mu.Lock()
	run := r.run(title, runErr)
	r.mu.Unlock()
	var b bytes.Buffer
	if err := runreport.Render(&b, run); err != nil {
		return err
	}
	return writeFileAtomic(path, []byte(redact(b.String())), 0o644)
}

// run turns the recording into the report's terms: a task per step and
// host from its events, each command with the task it ran for (by its
// context, else the task running on its host when it started).
func (r *RunRecorder) run(title string, runErr error) runreport.Run {
	run := runreport.Run{Title: title, Started: r.started, Ended: time.Now(), After: map[string][]string{}, SerialStep: map[string]bool{}}
	if runErr != nil {
		run.Error = runErr.Error()
	}
	for _, p := range r.plans {
		run.After[p.Step] = p.After
		run.SerialStep[p.Step] = p.Serial
	}
	open := map[[2]string]time.Time{}
	for _, e := range r.events {
		key := [2]string{e.Step, e.Host}
		switch e.Kind {
		case steps.Note:
		case steps.Started:
			open[key] = e.Time
		default:
			start, ok := open[key]
			if !ok {
				start = e.Time // skipped before it started
			}
			delete(open, key)
			t := runreport.Task{Step: e.Step, Host: e.Host, Start: start, End: e.Time, Outcome: string(e.Kind), Detail: e.Reason}
			if e.Err != nil {
				t.Detail = e.Err.Error()
			}
			run.Tasks = append(run.Tasks, t)
		}
	}
	for key, start := range open { // still running when the run ended (cancelled)
		run.Tasks = append(run.Tasks, runreport.Task{Step: key[0], Host: key[1], Start: start, End: run.Ended, Outcome: "cancelled", Detail: "still running when the run ended"})
	}
	for _, c := range r.commands {
		rc := runreport.Command{Step: c.Step, Host: c.StepHost, RanOn: c.Host, Command: c.Command, Start: c.Start, Duration: c.Duration,
			ExitCode: c.ExitCode, StderrTail: c.StderrTail}
		if c.Err != nil {
			rc.Error = c.Err.Error()
		}
		if rc.Step == "" {
			for _, t := range run.Tasks {
				if (t.Host == c.Host || t.Host == "") && !c.Start.Before(t.Start) && !c.Start.After(t.End) {
					rc.Step, rc.Host = t.Step, t.Host
					if t.Host != "" {
						break
					}
				}
			}
		}
		run.Commands = append(run.Commands, rc)
	}
	return run
}
