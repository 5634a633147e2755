package steps

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func noop(context.Context, string) error { return nil }

// A consumer must depend on its producer: the graph refuses it otherwise,
// however the steps would happen to be ordered at run time.
func TestGraphRefusesUndeclaredDependencies(t *testing.T) {
	tests := []struct {
		name    string
		build   func(g *Graph, out *Output[string]) error
		wantErr string // "" when the graph is fine
	}{
		{"direct dependency", func(g *Graph, out *Output[string]) error {
			g.MustAdd(Step{Name: "make", Produces: []Slot{out}, Run: noop})
			return g.Add(Step{Name: "use", After: []string{"make"}, Consumes: []Slot{out}, Run: noop})
		}, ""},
		{"dependency through another step", func(g *Graph, out *Output[string]) error {
			g.MustAdd(Step{Name: "make", Produces: []Slot{out}, Run: noop})
			g.MustAdd(Step{Name: "middle", After: []string{"make"}, Run: noop})
			return g.Add(Step{Name: "use", After: []string{"middle"}, Consumes: []Slot{out}, Run: noop})
		}, ""},
		{"sibling, not a dependency", func(g *Graph, out *Output[string]) error {
			g.MustAdd(Step{Name: "root", Run: noop})
			g.MustAdd(Step{Name: "make", After: []string{"root"}, Produces: []Slot{out}, Run: noop})
			return g.Add(Step{Name: "use", After: []string{"root"}, Consumes: []Slot{out}, Run: noop})
		}, `step "use" consumes "secret" of step "make" without depending on it`},
		{"no producer", func(g *Graph, out *Output[string]) error {
			return g.Add(Step{Name: "use", Consumes: []Slot{out}, Run: noop})
		}, `consumes "secret", which no step before it produces`},
		{"two producers", func(g *Graph, out *Output[string]) error {
			g.MustAdd(Step{Name: "make", Produces: []Slot{out}, Run: noop})
			return g.Add(Step{Name: "again", Produces: []Slot{out}, Run: noop})
		}, `which step "make" produces already`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.build(New(), NewOutput[string]("secret"))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Add: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Add: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// At run time the value flows from producer to consumer; a step that did
// not declare an output, or one that only consumes, cannot touch it.
func TestOutputsAtRunTime(t *testing.T) {
	out := NewOutput[int]("answer")
	other := NewOutput[int]("unrelated")
	var got int
	var undeclared, setByConsumer, unset error
	g := New()
	g.MustAdd(Step{Name: "make", Produces: []Slot{out}, Run: func(ctx context.Context, _ string) error { return out.Set(ctx, 42) }})
	g.MustAdd(Step{Name: "other", Produces: []Slot{other}, Check: func(context.Context, string) (bool, string, error) {
		return true, "nothing to make", nil
	}, Run: noop})
	g.MustAdd(Step{Name: "use", After: []string{"make", "other"}, Consumes: []Slot{out, other}, Run: func(ctx context.Context, _ string) error {
		var err error
		got, err = out.Get(ctx)
		setByConsumer = out.Set(ctx, 7)
		_, unset = other.Get(ctx)
		return err
	}})
	g.MustAdd(Step{Name: "sneak", After: []string{"make"}, Run: func(ctx context.Context, _ string) error {
		_, undeclared = out.Get(ctx)
		return nil
	}})
	if _, err := (&Engine{}).Run(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	if got != 42 {
		t.Errorf("consumer got %d, want 42", got)
	}
	for name, c := range map[string]struct {
		err  error
		want string
	}{
		"read without declaring": {undeclared, `step sneak reads output "answer" without declaring it`},
		"set by a consumer":      {setByConsumer, `step use sets output "answer", which it does not produce`},
		"producer found it done": {unset, `output "unrelated" was not produced`},
	} {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, c.err, c.want)
		}
	}
	if _, err := out.Get(context.Background()); err == nil {
		t.Error("Get outside any step succeeded")
	}
}

// A given output is there before the run; nobody may produce it.
func TestGivenOutputs(t *testing.T) {
	given := Given("cluster", "master1")
	g := New()
	if err := g.Add(Step{Name: "make", Produces: []Slot{given}, Run: noop}); err == nil {
		t.Fatal("a step may produce a given output")
	}
	var got string
	g.MustAdd(Step{Name: "use", Consumes: []Slot{given}, Run: func(ctx context.Context, _ string) (err error) {
		got, err = given.Get(ctx)
		return err
	}})
	if _, err := (&Engine{}).Run(context.Background(), g); err != nil {
		t.Fatal(err)
	}
	if got != "master1" {
		t.Errorf("got %q", got)
	}
}

// In a dry run a producer that would run sets nothing; its consumers'
// checks fail on the missing value and count as would-run, not failed.
func TestDryRunConsumersOfUnmadeOutputs(t *testing.T) {
	out := NewOutput[string]("token")
	g := New()
	g.MustAdd(Step{Name: "make", Produces: []Slot{out}, Check: func(context.Context, string) (bool, string, error) { return false, "", nil },
		Run: func(ctx context.Context, _ string) error { return out.Set(ctx, "t") }})
	g.MustAdd(Step{Name: "use", After: []string{"make"}, Consumes: []Slot{out}, Check: func(ctx context.Context, _ string) (bool, string, error) {
		_, err := out.Get(ctx)
		return false, "", err
	}, Run: func(context.Context, string) error { return errors.New("dry run ran a step") }})
	rep, err := (&Engine{DryRun: true}).Run(context.Background(), g)
	if err != nil {
		t.Fatal(err)
	}
	if n := rep.Count(WouldRun); n != 2 {
		t.Errorf("%d would-run events, want 2: %+v", n, rep.Events)
	}
}
