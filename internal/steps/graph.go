// Package steps runs a graph of named steps over hosts: independent steps
// in parallel under a concurrency limit, each step fanned out per host,
// dependents of a failure skipped, and every start, finish, skip and failure
// reported as an Event. It knows nothing of SSH or Kubernetes: a step is a
// function of a context and a host name.
package steps

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Step is one node of the graph.
type Step struct {
	Name        string
	Description string   // one line, shown by Print (fleet plan)
	Hosts       []string // targets; empty means the step runs once, with host ""
	After       []string // names of steps this one depends on
	// Serial runs the hosts one at a time in the order given, stopping at the
	// first failure (control-plane joins). MaxParallel bounds the hosts of
	// this step running at once (0: only the engine's limit).
	Serial      bool
	MaxParallel int
	// ReadOnly steps (probes, verification) never count as a change, so a
	// run whose only successes are read-only reports "no changes".
	ReadOnly bool
	// Check says whether the work is already done on host, with a reason; a
	// done step is skipped and counts as a success for its dependents. When
	// not done, the reason (if any) says what is left, for a dry run to show.
	Check func(ctx context.Context, host string) (done bool, reason string, err error)
	Run   func(ctx context.Context, host string) error
	// Produces and Consumes declare the outputs the step sets and reads
	// (see Output): a consumer must depend on the producer.
	Produces []Slot
	Consumes []Slot
}

// Graph is a set of steps with their dependencies, validated as it grows.
type Graph struct {
	steps []*Step
	index map[string]*Step
}

// New returns an empty graph.
func New() *Graph { return &Graph{index: map[string]*Step{}} }

// Add appends a step. Dependencies must already be in the graph, which keeps
// the graph acyclic and its insertion order a valid execution order.
func (g *Graph) Add(s Step) error {
	if s.Name == "" {
		return fmt.Errorf("steps: a step has no name")
	}
	if _, dup := g.index[s.Name]; dup {
		return fmt.Errorf("steps: step %q added twice", s.Name)
	}
	if s.Run == nil {
		return fmt.Errorf("steps: step %q has no Run function", s.Name)
	}
	for _, d := range s.After {
		if _, ok := g.index[d]; !ok {
			return fmt.Errorf("steps: step %q depends on %q, which is not (yet) in the graph", s.Name, d)
		}
	}
	seen := map[string]bool{}
	for _, h := range s.Hosts {
		if seen[h] {
			return fmt.Errorf("steps: step %q lists host %q twice", s.Name, h)
		}
		seen[h] = true
	}
	if err := g.checkSlots(&s); err != nil {
		return err
	}
	st := s
	g.steps = append(g.steps, &st)
	g.index[s.Name] = &st
	return nil
}

// MustAdd is Add for graphs built from code, where an error is a bug.
func (g *Graph) MustAdd(s Step) {
	if err := g.Add(s); err != nil {
		panic(err)
	}
}

// Steps returns the steps in execution order.
func (g *Graph) Steps() []Step {
	out := make([]Step, len(g.steps))
	for i, s := range g.steps {
		out[i] = *s
	}
	return out
}

// Print writes the graph as fleet plan shows it: steps in order, with their
// hosts and dependencies.
func (g *Graph) Print(w io.Writer) error {
	for i, s := range g.steps {
		hosts := "(once)"
		if len(s.Hosts) > 0 {
			hosts = strings.Join(s.Hosts, ", ")
		}
		mode := ""
		switch {
		case s.Serial:
			mode = " [one at a time]"
		case s.MaxParallel > 0:
			mode = fmt.Sprintf(" [at most %d at once]", s.MaxParallel)
		}
		if _, err := fmt.Fprintf(w, "%2d. %s: %s\n    hosts: %s%s\n", i+1, s.Name, s.Description, hosts, mode); err != nil {
			return err
		}
		if len(s.After) > 0 {
			if _, err := fmt.Fprintf(w, "    after: %s\n", strings.Join(s.After, ", ")); err != nil {
				return err
			}
		}
		if len(s.Consumes) > 0 {
			var uses []string
			for _, c := range s.Consumes {
				uses = append(uses, c.state().name)
			}
			if _, err := fmt.Fprintf(w, "    uses: %s\n", strings.Join(uses, ", ")); err != nil {
				return err
			}
		}
	}
	return nil
}

// planned lists the steps in insertion order (a valid execution order).
func (g *Graph) planned() []Planned {
	out := make([]Planned, 0, len(g.steps))
	for _, s := range g.steps {
		out = append(out, Planned{Step: s.Name, Hosts: slices.Clone(s.Hosts), After: slices.Clone(s.After), Serial: s.Serial, ReadOnly: s.ReadOnly})
	}
	return out
}
