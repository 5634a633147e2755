package steps

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// gauge measures how many Run functions are inside at once.
type gauge struct {
	now, peak atomic.Int32
}

func (g *gauge) enter() {
	n := g.now.Add(1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			return
		}
	}
}
func (g *gauge) leave() { g.now.Add(-1) }

func sleeper(g *gauge, d time.Duration) func(context.Context, string) error {
	return func(ctx context.Context, _ string) error {
		g.enter()
		defer g.leave()
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func TestIndependentStepsOverlap(t *testing.T) {
	tests := []struct {
		name        string
		concurrency int
		wantPeak    int32
	}{
		{"unbounded", 0, 8},
		{"limited", 3, 3},
		{"serial engine", 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := New()
			var gg gauge
			g.MustAdd(Step{Name: "a", Hosts: []string{"h0", "h1", "h2", "h3"}, Run: sleeper(&gg, 100*time.Millisecond)})
			g.MustAdd(Step{Name: "b", Hosts: []string{"h4", "h5", "h6", "h7"}, Run: sleeper(&gg, 100*time.Millisecond)})
			start := time.Now()
			rep, err := (&Engine{Concurrency: tt.concurrency}).Run(context.Background(), g)
			if err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(start)
			if got := gg.peak.Load(); got != tt.wantPeak {
				t.Errorf("peak concurrency %d, want %d", got, tt.wantPeak)
			}
			// 8 tasks of 100ms: the wall time follows from the concurrency.
			waves := (8 + int(tt.wantPeak) - 1) / int(tt.wantPeak)
			if min, max := time.Duration(waves)*100*time.Millisecond, time.Duration(waves)*100*time.Millisecond+150*time.Millisecond; elapsed < min || elapsed > max {
				t.Errorf("took %s, want %s..%s", elapsed, min, max)
			}
			if rep.Count(Succeeded) != 8 {
				t.Errorf("%d succeeded, want 8", rep.Count(Succeeded))
			}
		})
	}
}

func TestFailureOnOneHostStopsOnlyItsDependents(t *testing.T) {
	g := New()
	var ran sync.Map
	record := func(step string) func(context.Context, string) error {
		return func(_ context.Context, h string) error {
			ran.Store(step+"/"+h, true)
			if step == "prepare" && h == "w1" {
				return errors.New("disk full")
			}
			return nil
		}
	}
	workers := []string{"w0", "w1", "w2"}
	g.MustAdd(Step{Name: "init", Hosts: []string{"m0"}, Run: record("init")})
	g.MustAdd(Step{Name: "prepare", Hosts: workers, After: []string{"init"}, Run: record("prepare")})
	g.MustAdd(Step{Name: "join", Hosts: workers, After: []string{"prepare"}, Run: record("join")})
	g.MustAdd(Step{Name: "label", Hosts: workers, After: []string{"join"}, Run: record("label")})
	g.MustAdd(Step{Name: "report", After: []string{"join"}, Run: record("report")})

	rep, err := (&Engine{}).Run(context.Background(), g)
	var se *StepError
	if !errors.As(err, &se) || se.Step != "prepare" || se.Host != "w1" || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("error %v, want prepare on w1: disk full", err)
	}
	for _, want := range []string{"join/w0", "join/w2", "label/w0", "label/w2"} {
		if _, ok := ran.Load(want); !ok {
			t.Errorf("%s did not run", want)
		}
	}
	for _, never := range []string{"join/w1", "label/w1", "report/"} {
		if _, ok := ran.Load(never); ok {
			t.Errorf("%s ran after its dependency failed", never)
		}
	}
	if got := rep.Count(Blocked); got != 3 {
		t.Errorf("%d blocked, want 3 (join/w1, label/w1, report)", got)
	}
	for _, e := range rep.Events {
		if e.Kind == Blocked && e.Step == "label" && e.Reason != "prepare failed on w1" {
			t.Errorf("label/w1 blocked with reason %q", e.Reason)
		}
	}
}

func TestSerialStepRunsInOrderAndStopsAtFirstFailure(t *testing.T) {
	g := New()
	var mu sync.Mutex
	var order []string
	var gg gauge
	g.MustAdd(Step{Name: "join-masters", Hosts: []string{"m1", "m2", "m3"}, Serial: true,
		Run: func(_ context.Context, h string) error {
			gg.enter()
			defer gg.leave()
			time.Sleep(20 * time.Millisecond)
			mu.Lock()
			order = append(order, h)
			mu.Unlock()
			if h == "m2" {
				return errors.New("etcd not healthy")
			}
			return nil
		}})
	rep, err := (&Engine{}).Run(context.Background(), g)
	if err == nil {
		t.Fatal("want an error")
	}
	if strings.Join(order, ",") != "m1,m2" {
		t.Errorf("ran %v, want m1,m2", order)
	}
	if gg.peak.Load() != 1 {
		t.Errorf("peak %d, want 1", gg.peak.Load())
	}
	if rep.Count(Blocked) != 1 {
		t.Errorf("m3 should be blocked: %+v", rep.Events)
	}
}

func TestMaxParallelBoundsOneStep(t *testing.T) {
	g := New()
	var gg gauge
	hosts := make([]string, 10)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("w%d", i)
	}
	g.MustAdd(Step{Name: "join-workers", Hosts: hosts, MaxParallel: 4, Run: sleeper(&gg, 30*time.Millisecond)})
	if _, err := (&Engine{}).Run(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	if gg.peak.Load() != 4 {
		t.Errorf("peak %d, want 4", gg.peak.Load())
	}
}

func TestCheckSkipsDoneWorkAndReportsNoChange(t *testing.T) {
	g := New()
	runs := 0
	g.MustAdd(Step{Name: "init", Hosts: []string{"m0"},
		Check: func(context.Context, string) (bool, string, error) { return true, "admin.conf present", nil },
		Run:   func(context.Context, string) error { runs++; return nil }})
	g.MustAdd(Step{Name: "after", After: []string{"init"},
		Check: func(context.Context, string) (bool, string, error) { return true, "nothing to do", nil },
		Run:   func(context.Context, string) error { runs++; return nil }})
	rep, err := (&Engine{}).Run(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	if runs != 0 || rep.Changed() || rep.Count(AlreadyDone) != 2 {
		t.Errorf("runs=%d changed=%v events=%+v", runs, rep.Changed(), rep.Events)
	}
	if rep.Events[1].Reason != "admin.conf present" {
		t.Errorf("reason %q", rep.Events[1].Reason)
	}
}

func TestCancellationStartsNothingNewAndWaitsForRunning(t *testing.T) {
	g := New()
	var running, startedAfterCancel atomic.Int32
	var cancelled atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	hosts := make([]string, 20)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("w%d", i)
	}
	g.MustAdd(Step{Name: "join", Hosts: hosts, MaxParallel: 4, Run: func(ctx context.Context, _ string) error {
		if cancelled.Load() {
			startedAfterCancel.Add(1)
		}
		running.Add(1)
		defer running.Add(-1)
		<-ctx.Done()
		time.Sleep(50 * time.Millisecond) // a command winding down
		return ctx.Err()
	}})
	g.MustAdd(Step{Name: "cleanup", After: []string{"join"}, Run: func(context.Context, string) error {
		t.Error("cleanup ran after cancellation")
		return nil
	}})
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancelled.Store(true)
		cancel()
	}()
	rep, err := (&Engine{}).Run(ctx, g)
	if n := running.Load(); n != 0 {
		t.Errorf("Run returned with %d steps still running", n)
	}
	if n := startedAfterCancel.Load(); n != 0 {
		t.Errorf("%d steps started after cancel", n)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if rep.Count(Failed) != 4 || rep.Count(Cancelled) != 16 || rep.Count(Blocked) != 1 {
		t.Errorf("failed %d cancelled %d blocked %d, want 4/16/1",
			rep.Count(Failed), rep.Count(Cancelled), rep.Count(Blocked))
	}
}

func TestReadOnlyStepsAreNoChange(t *testing.T) {
	g := New()
	g.MustAdd(Step{Name: "probe", Hosts: []string{"a", "b"}, ReadOnly: true, Run: func(context.Context, string) error { return nil }})
	g.MustAdd(Step{Name: "write", After: []string{"probe"},
		Check: func(context.Context, string) (bool, string, error) { return true, "up to date", nil },
		Run:   func(context.Context, string) error { return nil }})
	rep, err := (&Engine{}).Run(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Changed() || rep.Count(Succeeded) != 2 {
		t.Errorf("changed=%v events=%+v", rep.Changed(), rep.Events)
	}
}

func TestEventsCarryDurations(t *testing.T) {
	g := New()
	g.MustAdd(Step{Name: "s", Hosts: []string{"h"}, Run: func(context.Context, string) error {
		time.Sleep(30 * time.Millisecond)
		return nil
	}})
	var seen []Event
	rep, err := (&Engine{OnEvent: func(e Event) { seen = append(seen, e) }}).Run(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[0].Kind != Started || seen[1].Kind != Succeeded {
		t.Fatalf("events %+v", seen)
	}
	if d := rep.Events[1].Duration; d < 30*time.Millisecond || d > 200*time.Millisecond {
		t.Errorf("duration %s", d)
	}
}

func TestPlanIsSeenBeforeTheFirstEvent(t *testing.T) {
	noop := func(context.Context, string) error { return nil }
	g := New()
	g.MustAdd(Step{Name: "look", ReadOnly: true, Run: noop})
	g.MustAdd(Step{Name: "join", Hosts: []string{"w1", "w2"}, After: []string{"look"}, Run: noop})
	var plan []Planned
	eventsBeforePlan := 0
	eng := &Engine{
		OnPlan: func(p []Planned) { plan = p },
		OnEvent: func(Event) {
			if plan == nil {
				eventsBeforePlan++
			}
		},
	}
	if _, err := eng.Run(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	want := []Planned{{Step: "look", ReadOnly: true}, {Step: "join", Hosts: []string{"w1", "w2"}, After: []string{"look"}}}
	if !reflect.DeepEqual(plan, want) || eventsBeforePlan != 0 {
		t.Errorf("plan %+v (%d events before it), want %+v first", plan, eventsBeforePlan, want)
	}
}

func TestGraphRejectsBadSteps(t *testing.T) {
	noop := func(context.Context, string) error { return nil }
	tests := []struct {
		name string
		step Step
		want string
	}{
		{"no name", Step{Run: noop}, "no name"},
		{"duplicate", Step{Name: "a", Run: noop}, "added twice"},
		{"unknown dependency", Step{Name: "b", After: []string{"zz"}, Run: noop}, `depends on "zz"`},
		{"no run", Step{Name: "c"}, "no Run"},
		{"duplicate host", Step{Name: "d", Hosts: []string{"h", "h"}, Run: noop}, "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := New()
			g.MustAdd(Step{Name: "a", Run: noop})
			err := g.Add(tt.step)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestPrint(t *testing.T) {
	noop := func(context.Context, string) error { return nil }
	g := New()
	g.MustAdd(Step{Name: "preflight", Description: "check hosts", Hosts: []string{"lb", "m0"}, Run: noop})
	g.MustAdd(Step{Name: "join", Description: "join masters", Hosts: []string{"m1", "m2"}, Serial: true, After: []string{"preflight"}, Run: noop})
	var b strings.Builder
	if err := g.Print(&b); err != nil {
		t.Fatal(err)
	}
	want := ` 1. preflight: check hosts
    hosts: lb, m0
 2. join: join masters
    hosts: m1, m2 [one at a time]
    after: preflight
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

// BenchmarkSchedule10000 measures the engine alone: 10,000 tasks in 100
// steps of 100 hosts, each step depending on the one before.
func BenchmarkSchedule10000(b *testing.B) {
	hosts := make([]string, 100)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("h%d", i)
	}
	noop := func(context.Context, string) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		g := New()
		prev := []string(nil)
		for s := 0; s < 100; s++ {
			name := fmt.Sprintf("s%d", s)
			g.MustAdd(Step{Name: name, Hosts: hosts, After: prev, Run: noop})
			prev = []string{name}
		}
		if _, err := (&Engine{}).Run(context.Background(), g); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDryRunRunsOnlyReadOnlyStepsAndChecks(t *testing.T) {
	var runs atomic.Int32
	run := func(context.Context, string) error { runs.Add(1); return nil }
	looked := map[string]bool{}
	var mu sync.Mutex
	look := func(context.Context, string) error {
		mu.Lock()
		defer mu.Unlock()
		looked["probe"] = true
		return nil
	}
	noState := errors.New("admin.conf: no such file")
	g := New()
	g.MustAdd(Step{Name: "probe", Hosts: []string{"m0", "w0"}, ReadOnly: true, Run: look})
	g.MustAdd(Step{Name: "lb", After: []string{"probe"}, Run: run,
		Check: func(context.Context, string) (bool, string, error) { return true, "config current", nil }})
	g.MustAdd(Step{Name: "init", Hosts: []string{"m0"}, After: []string{"lb"}, Run: run,
		Check: func(context.Context, string) (bool, string, error) { return false, "", nil }})
	// A check that says what is left: the plan shows it.
	g.MustAdd(Step{Name: "labels", After: []string{"lb"}, Run: run,
		Check: func(context.Context, string) (bool, string, error) { return false, "+pool=general", nil }})
	// Its state would only exist after init: the check fails.
	g.MustAdd(Step{Name: "kubeconfig", After: []string{"init"}, Run: run,
		Check: func(context.Context, string) (bool, string, error) { return false, "", noState }})
	g.MustAdd(Step{Name: "cleanup", After: []string{"kubeconfig"}, Run: run,
		Check: func(context.Context, string) (bool, string, error) { return false, "", noState }})
	// A failing check with nothing planned before it is a real failure.
	g.MustAdd(Step{Name: "broken", After: []string{"lb"}, Run: run,
		Check: func(context.Context, string) (bool, string, error) { return false, "", noState }})

	rep, err := (&Engine{DryRun: true}).Run(context.Background(), g)
	if runs.Load() != 0 {
		t.Errorf("a dry run called Run %d times", runs.Load())
	}
	if !looked["probe"] {
		t.Error("the read-only step did not run")
	}
	var se *StepError
	if !errors.As(err, &se) || se.Step != "broken" {
		t.Errorf("error %v, want the failing check of broken only", err)
	}
	got := map[string]string{}
	for _, e := range rep.Events {
		if e.Kind != Started {
			got[e.Step] = string(e.Kind) + " " + e.Reason
		}
	}
	want := map[string]string{
		"probe": "succeeded ", "lb": "already-done config current", "init": "would-run ", "labels": "would-run +pool=general",
		"kubeconfig": "would-run after init", "cleanup": "would-run after kubeconfig", "broken": "failed ",
	}
	for step, w := range want {
		if got[step] != w {
			t.Errorf("%s: %q, want %q", step, got[step], w)
		}
	}
	for _, e := range rep.Events {
		if e.Kind == Succeeded && !e.ReadOnly {
			t.Errorf("%s reported as done in a dry run", e.Step)
		}
	}
}
