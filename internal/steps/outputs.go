package steps

import (
	"context"
	"fmt"
	"sync"
)

// Output is a typed value that one step produces and the steps after it
// consume: the credentials a join needs, the client of a cluster just
// made. A step declares what it produces and consumes; Graph.Add refuses
// a consumer that does not depend, directly or through others, on the
// producer, and at run time a step may only Set what it produces and Get
// what it declared. So no step can read a value that a step running
// beside it is still writing.
type Output[T any] struct {
	slot
	value T
}

// Slot is what Step.Produces and Step.Consumes list: an *Output of any type.
type Slot interface{ state() *slot }

type slot struct {
	name     string
	producer string // the step that sets it; "" until that step is added
	given    bool   // known before the run: no step produces it
	mu       sync.Mutex
	set      bool
}

func (s *slot) state() *slot { return s }

// NewOutput declares an output; the step that lists it in Produces sets it.
func NewOutput[T any](name string) *Output[T] { return &Output[T]{slot: slot{name: name}} }

// Given is an output known before the run (a cluster found by the
// command): every step that declares it may read it, none may set it.
func Given[T any](name string, v T) *Output[T] {
	return &Output[T]{slot: slot{name: name, given: true, set: true}, value: v}
}

// Name is the output's name, as errors and Print show it.
func (o *Output[T]) Name() string { return o.name }

// Set records the value; only the producing step may call it, from its
// Check (what it found) or its Run (what it made).
func (o *Output[T]) Set(ctx context.Context, v T) error {
	step := stepOf(ctx)
	if step == nil || o.given || step.Name != o.producer {
		return fmt.Errorf("steps: %s sets output %q, which it does not produce", describe(step), o.name)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.value, o.set = v, true
	return nil
}

// Get returns the value. It fails when the calling step did not declare
// the output, or its producer did not set it (a dry run, a producer that
// found nothing to do).
func (o *Output[T]) Get(ctx context.Context) (T, error) {
	v, ok, err := o.Lookup(ctx)
	if err == nil && !ok {
		err = fmt.Errorf("steps: output %q was not produced: step %s did not make it in this run", o.name, o.producer)
	}
	return v, err
}

// Lookup is Get for outputs a producer may rightly leave unset: ok says
// whether it was set.
func (o *Output[T]) Lookup(ctx context.Context) (v T, ok bool, err error) {
	step := stepOf(ctx)
	if !declares(step, &o.slot) {
		return v, false, fmt.Errorf("steps: %s reads output %q without declaring it (Step.Consumes)", describe(step), o.name)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.value, o.set, nil
}

// declares: the step produces or consumes s.
func declares(step *Step, s *slot) bool {
	if step == nil {
		return false
	}
	for _, c := range append(append([]Slot{}, step.Consumes...), step.Produces...) {
		if c.state() == s {
			return true
		}
	}
	return false
}

func describe(step *Step) string {
	if step == nil {
		return "code outside any step"
	}
	return "step " + step.Name
}

// checkSlots is Graph.Add's part for outputs: every output s produces is
// new, and every one it consumes comes from a step it depends on.
func (g *Graph) checkSlots(s *Step) error {
	for _, p := range s.Produces {
		st := p.state()
		switch {
		case st.given:
			return fmt.Errorf("steps: step %q produces %q, which is given before the run", s.Name, st.name)
		case st.producer != "":
			return fmt.Errorf("steps: step %q produces %q, which step %q produces already", s.Name, st.name, st.producer)
		}
	}
	for _, c := range s.Consumes {
		st := c.state()
		switch {
		case st.given:
		case st.producer == "":
			return fmt.Errorf("steps: step %q consumes %q, which no step before it produces", s.Name, st.name)
		case !g.dependsOn(s.After, st.producer):
			return fmt.Errorf("steps: step %q consumes %q of step %q without depending on it (add it to After)", s.Name, st.name, st.producer)
		}
	}
	for _, p := range s.Produces {
		p.state().producer = s.Name
	}
	return nil
}

// dependsOn: target is among after or their dependencies, transitively.
func (g *Graph) dependsOn(after []string, target string) bool {
	seen := map[string]bool{}
	todo := append([]string{}, after...)
	for len(todo) > 0 {
		n := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if n == target {
			return true
		}
		if seen[n] {
			continue
		}
		seen[n] = true
		todo = append(todo, g.index[n].After...)
	}
	return false
}

// stepKey carries the running step in its context, for the outputs.
type stepKey struct{}

func withStep(ctx context.Context, s *Step) context.Context {
	return context.WithValue(ctx, stepKey{}, s)
}

func stepOf(ctx context.Context) *Step {
	s, _ := ctx.Value(stepKey{}).(*Step)
	return s
}
