package steps

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-multierror"
)

// Kind says what happened to a step on a host.
type Kind string

const (
	Started     Kind = "started"
	Succeeded   Kind = "succeeded"    // Run returned nil
	AlreadyDone Kind = "already-done" // Check said so; Run was not called
	Failed      Kind = "failed"
	Blocked     Kind = "blocked"   // a dependency failed or was blocked
	Cancelled   Kind = "cancelled" // the run was cancelled before it started
	WouldRun    Kind = "would-run" // dry run: Check says not done; Run was not called
	// Note is something a playbook did around the steps that the user
	// should hear of (Reason says what); the engine never emits it.
	Note Kind = "note"
)

// Event is one report of the engine. Events of one run are delivered one at
// a time, in the order they happened.
type Event struct {
	Time     time.Time
	Kind     Kind
	Step     string
	Host     string // "" for steps that run once
	Duration time.Duration
	Reason   string // why it was skipped or blocked
	Err      error  // for Failed
	ReadOnly bool   // the step only looks; its success changes nothing
}

// StepError is a failure of one step on one host.
type StepError struct {
	Step, Host string
	Err        error
}

func (e *StepError) Error() string {
	if e.Host == "" {
		return fmt.Sprintf("step %s: %v", e.Step, e.Err)
	}
	return fmt.Sprintf("step %s on %s: %v", e.Step, e.Host, e.Err)
}

func (e *StepError) Unwrap() error { return e.Err }

// Report is the outcome of a run.
type Report struct {
	Events []Event
}

// Changed reports whether any step did work: a step that is not read-only
// ran (and succeeded or failed). A run where every step was already done, or
// only looked, changed nothing.
func (r *Report) Changed() bool {
	return len(r.Changes()) > 0
}

// Changes lists the events of steps that did work.
func (r *Report) Changes() []Event {
	var out []Event
	for _, e := range r.Events {
		if !e.ReadOnly && (e.Kind == Succeeded || e.Kind == Failed) {
			out = append(out, e)
		}
	}
	return out
}

// Count returns how many events of kind k the run had.
func (r *Report) Count(k Kind) int {
	n := 0
	for _, e := range r.Events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

// Planned is one step of a graph about to run: what a progress view needs
// to show it before its first event.
type Planned struct {
	Step     string
	Hosts    []string // nil for a step that runs once
	After    []string // the steps it runs after
	Serial   bool     // its hosts one at a time, in order
	ReadOnly bool
}

// Engine runs graphs.
type Engine struct {
	// Concurrency bounds the tasks (step × host) running at once; 0 means 64.
	Concurrency int
	// OnEvent, if set, sees every event as it happens.
	OnEvent func(Event)
	// OnPlan, if set, sees the graph's steps, in order, with the hosts each
	// will run on, before the first task starts: a progress view knows the
	// totals from the start.
	OnPlan func([]Planned)
	// DryRun runs read-only steps and the Checks of the others, never their
	// Run: the report says what a real run would do (WouldRun) and what is
	// done already. A Check that fails after a step that would run counts
	// as would-run: it looks at state that step would create.
	DryRun bool
}

type task struct {
	step       *Step
	host       string
	waiting    int // dependencies not yet finished
	dependents []*task
	blockedBy  string
	ok         bool      // finished as Succeeded, AlreadyDone or WouldRun
	afterPlan  string    // dry run: a dependency that would run
	began      time.Time // when it started, for the duration of its end event
}

type run struct {
	eng      *Engine
	ctx      context.Context
	global   chan struct{}
	perStep  map[*Step]chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex // guards tasks' waiting, blockedBy and ok
	eventsMu sync.Mutex
	report   Report
	errs     *multierror.Error
}

// Run executes g and returns when no task is running any more. The error
// collects every failure (as *StepError) and the context's error if the run
// was cancelled; the report holds every event.
func (e *Engine) Run(ctx context.Context, g *Graph) (*Report, error) {
	limit := e.Concurrency
	if limit <= 0 {
		limit = 64
	}
	r := &run{eng: e, ctx: ctx, global: make(chan struct{}, limit), perStep: map[*Step]chan struct{}{}}
	// Pick the roots before starting any: once tasks run, waiting counts change.
	var roots []*task
	tasks := r.plan(g)
	if e.OnPlan != nil {
		e.OnPlan(g.planned())
	}
	for _, t := range tasks {
		if t.waiting == 0 {
			roots = append(roots, t)
		}
	}
	for _, t := range roots {
		r.start(t)
	}
	r.wg.Wait()
	if err := ctx.Err(); err != nil {
		r.errs = multierror.Append(r.errs, fmt.Errorf("run cancelled: %w", err))
	}
	return &r.report, r.errs.ErrorOrNil()
}

// plan expands steps into per-host tasks and wires their dependencies: a
// task waits for the same host's task of each dependency that targets that
// host, and for every task of a dependency that does not. Serial steps chain
// their hosts in order.
func (r *run) plan(g *Graph) []*task {
	byStep := map[string][]*task{}
	var all []*task
	for _, s := range g.steps {
		hosts := s.Hosts
		if len(hosts) == 0 {
			hosts = []string{""}
		}
		if s.MaxParallel > 0 {
			r.perStep[s] = make(chan struct{}, s.MaxParallel)
		}
		var prev *task
		for _, h := range hosts {
			t := &task{step: s, host: h}
			for _, d := range s.After {
				for _, dt := range depTasks(byStep[d], h) {
					dt.dependents = append(dt.dependents, t)
					t.waiting++
				}
			}
			if s.Serial && prev != nil {
				prev.dependents = append(prev.dependents, t)
				t.waiting++
			}
			prev = t
			byStep[s.Name] = append(byStep[s.Name], t)
			all = append(all, t)
		}
	}
	return all
}

func depTasks(dep []*task, host string) []*task {
	for _, t := range dep {
		if host != "" && t.host == host {
			return []*task{t}
		}
	}
	return dep
}

func (r *run) start(t *task) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.finish(t, r.execute(t))
	}()
}

type outcome struct {
	kind   Kind
	reason string
	err    error
}

func (r *run) execute(t *task) outcome {
	if sem := r.perStep[t.step]; sem != nil {
		if !acquire(r.ctx, sem) {
			return outcome{kind: Cancelled, reason: "run cancelled"}
		}
		defer func() { <-sem }()
	}
	if !acquire(r.ctx, r.global) {
		return outcome{kind: Cancelled, reason: "run cancelled"}
	}
	defer func() { <-r.global }()

	t.began = time.Now()
	r.emit(Event{Time: t.began, Kind: Started, Step: t.step.Name, Host: t.host, ReadOnly: t.step.ReadOnly})
	ctx := withStep(r.ctx, t.step)
	var pending string // what the check says is left to do
	if t.step.Check != nil {
		done, reason, err := t.step.Check(ctx, t.host)
		if err != nil && r.eng.DryRun && t.afterPlan != "" {
			return outcome{kind: WouldRun, reason: "after " + t.afterPlan}
		}
		if err != nil {
			return outcome{kind: Failed, err: fmt.Errorf("checking state: %w", err)}
		}
		if done {
			return outcome{kind: AlreadyDone, reason: reason}
		}
		pending = reason
	}
	if r.eng.DryRun && !t.step.ReadOnly {
		return outcome{kind: WouldRun, reason: pending}
	}
	if err := t.step.Run(ctx, t.host); err != nil {
		return outcome{kind: Failed, err: err}
	}
	return outcome{kind: Succeeded}
}

func acquire(ctx context.Context, sem chan struct{}) bool {
	if ctx.Err() != nil {
		return false
	}
	select {
	case sem <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	}
}

func (r *run) finish(t *task, o outcome) {
	ev := Event{Time: time.Now(), Kind: o.kind, Step: t.step.Name, Host: t.host, Reason: o.reason, Err: o.err, ReadOnly: t.step.ReadOnly}
	if !t.began.IsZero() {
		ev.Duration = ev.Time.Sub(t.began)
	}
	r.emit(ev)

	r.mu.Lock()
	defer r.mu.Unlock()
	t.ok = o.kind == Succeeded || o.kind == AlreadyDone || o.kind == WouldRun
	if o.kind == Failed {
		r.errs = multierror.Append(r.errs, &StepError{Step: t.step.Name, Host: t.host, Err: o.err})
	}
	why := ""
	switch o.kind {
	case Failed:
		why = fmt.Sprintf("%s failed%s", t.step.Name, onHost(t.host))
	case Cancelled:
		why = "run cancelled"
	case Blocked:
		why = t.blockedBy
	}
	for _, d := range t.dependents {
		if !t.ok && d.blockedBy == "" {
			d.blockedBy = why
		}
		if (o.kind == WouldRun || t.afterPlan != "") && d.afterPlan == "" {
			d.afterPlan = t.step.Name
			if t.afterPlan != "" && o.kind != WouldRun {
				d.afterPlan = t.afterPlan
			}
		}
		if d.waiting--; d.waiting > 0 {
			continue
		}
		if d.blockedBy != "" {
			r.wg.Add(1)
			go func() { // released outside the lock
				defer r.wg.Done()
				r.finish(d, outcome{kind: Blocked, reason: d.blockedBy})
			}()
			continue
		}
		r.start(d)
	}
}

func onHost(h string) string {
	if h == "" {
		return ""
	}
	return " on " + h
}

// emit records ev and hands it to OnEvent, one event at a time.
func (r *run) emit(ev Event) {
	r.eventsMu.Lock()
	defer r.eventsMu.Unlock()
	r.report.Events = append(r.report.Events, ev)
	if r.eng.OnEvent != nil {
		r.eng.OnEvent(ev)
	}
}
