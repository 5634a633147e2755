package playbooks

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestOnEachKeepsOrderAndLimit(t *testing.T) {
	for _, tc := range []struct {
		name      string
		hosts     int
		limit     int
		wantAtMax int // most asks running at once, at most
	}{
		{"no limit", 12, 0, 12},
		{"limit below the hosts", 12, 3, 3},
		{"limit above the hosts", 4, 32, 4},
		{"no hosts", 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hosts := make([]string, tc.hosts)
			for i := range hosts {
				hosts[i] = fmt.Sprintf("h%d", i)
			}
			var running, most atomic.Int32
			answers, errs := onEach(hosts, tc.limit, func(h string) (string, error) {
				n := running.Add(1)
				defer running.Add(-1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(20 * time.Millisecond) // long enough for the others to start
				if strings.HasSuffix(h, "3") {
					return "", errors.New("down")
				}
				return "answer of " + h, nil
			})
			if len(answers) != tc.hosts || len(errs) != tc.hosts {
				t.Fatalf("%d answers, %d errors for %d hosts", len(answers), len(errs), tc.hosts)
			}
			for i, h := range hosts {
				wantErr := strings.HasSuffix(h, "3")
				if (errs[i] != nil) != wantErr || (!wantErr && answers[i] != "answer of "+h) {
					t.Errorf("host %s: answer %q, error %v", h, answers[i], errs[i])
				}
			}
			if int(most.Load()) > tc.wantAtMax || (tc.hosts > 1 && most.Load() < 2) {
				t.Errorf("%d asks at once, want between 2 and %d", most.Load(), tc.wantAtMax)
			}
		})
	}
}
