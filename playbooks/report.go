package playbooks

import (
	"fmt"

	"github.com/fleetops/fleet/internal/facts"
	"github.com/fleetops/fleet/internal/lock"
	"github.com/fleetops/fleet/internal/steps"
)

// What the playbooks hand the CLI, so that it needs no internal package:
// the step engine's report and events, the lock's answers, the facts.
type (
	// Report is the outcome of a run: every step event.
	Report = steps.Report
	// Event is one step event (started, succeeded, already done, ...).
	Event = steps.Event
	// EventKind says what happened to a step on a host.
	EventKind = steps.Kind
	// Graph is a playbook's step graph, as fleet plan prints it.
	Graph = steps.Graph
	// PlannedStep is a step about to run, with its hosts (progress views).
	PlannedStep = steps.Planned
	// LockHeldError says who holds the cluster lock the run wanted.
	LockHeldError = lock.HeldError
	// LockAnswer is what the lock host said of the cluster lock.
	LockAnswer = lock.Answer
	// Facts are what fleet check learned of a host.
	Facts = facts.Facts
)

// The kinds of step events.
const (
	Started     = steps.Started
	Succeeded   = steps.Succeeded
	AlreadyDone = steps.AlreadyDone
	Failed      = steps.Failed
	Blocked     = steps.Blocked
	Cancelled   = steps.Cancelled
	WouldRun    = steps.WouldRun
	Note        = steps.Note
)

// CheckedTools are the tools fleet check looks for, in its table's order.
func CheckedTools() []string { return facts.Tools }

// RefusedError is a command fleet would not carry out because a check
// said no (quorum, a node that still answers, the last master): nothing
// was changed. The CLI exits 3 on it.
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return e.Reason }

func refused(format string, args ...any) error {
	return &RefusedError{Reason: fmt.Sprintf(format, args...)}
}
