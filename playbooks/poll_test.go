package playbooks

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPollUntil(t *testing.T) {
	failure := errors.New("host said no")
	cases := []struct {
		name      string
		doneAfter int   // calls before done says true; -1 never
		fail      error // returned by done on its first call
		cancel    bool  // the run is cancelled before polling
		want      error
		wantCalls int // at least this many calls
	}{
		{name: "done at once asks once", doneAfter: 0, want: nil, wantCalls: 1},
		{name: "done later", doneAfter: 3, want: nil, wantCalls: 4},
		{name: "never done times out", doneAfter: -1, want: errPollTimeout, wantCalls: 2},
		{name: "an error ends it", doneAfter: -1, fail: failure, want: failure, wantCalls: 1},
		{name: "a cancelled run says so", doneAfter: -1, cancel: true, want: context.Canceled, wantCalls: 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if c.cancel {
				cancel()
			}
			calls := 0
			err := pollUntil(ctx, 5*time.Millisecond, 100*time.Millisecond, func(context.Context) (bool, error) {
				calls++
				if c.fail != nil {
					return false, c.fail
				}
				return c.doneAfter >= 0 && calls > c.doneAfter, nil
			})
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if calls < c.wantCalls {
				t.Fatalf("done asked %d times, want at least %d", calls, c.wantCalls)
			}
			if c.want == nil && calls != c.wantCalls {
				t.Fatalf("done asked %d times after it said true, want %d", calls, c.wantCalls)
			}
		})
	}
}
