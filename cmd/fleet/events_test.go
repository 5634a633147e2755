package main

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fleetops/fleet/playbooks"
)

func TestCommandJSON(t *testing.T) {
	start := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	redact := func(s string) string { return strings.ReplaceAll(s, "abcdef.0123456789abcdef", "[REDACTED]") }
	for _, tc := range []struct {
		name  string
		trace playbooks.CommandTrace
		want  map[string]any
	}{
		{"a join on its own host",
			playbooks.CommandTrace{Host: "worker1", Step: "join-workers", StepHost: "worker1", Command: "kubeadm join --token abcdef.0123456789abcdef",
				Start: start, Duration: 1500 * time.Millisecond},
			map[string]any{"kind": "command", "host": "worker1", "step": "join-workers", "command": "kubeadm join --token [REDACTED]",
				"duration_ms": 1500.0, "exit_code": 0.0, "time": "2026-12-06T12:00:00Z"}},
		{"for another host's task, failed",
			playbooks.CommandTrace{Host: "master0", Step: "remove", StepHost: "worker3", Command: "kubectl drain worker3",
				Start: start, Duration: time.Second, ExitCode: 1, Err: errors.New("exit status 1: abcdef.0123456789abcdef")},
			map[string]any{"kind": "command", "host": "master0", "step": "remove", "for": "worker3", "command": "kubectl drain worker3",
				"duration_ms": 1000.0, "exit_code": 1.0, "error": "exit status 1: [REDACTED]", "time": "2026-12-06T12:00:00Z"}},
		{"outside every step",
			playbooks.CommandTrace{Host: "master0", Command: "uname -s", Start: start},
			map[string]any{"kind": "command", "host": "master0", "command": "uname -s", "duration_ms": 0.0, "exit_code": 0.0, "time": "2026-12-06T12:00:00Z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got map[string]any
			if err := json.Unmarshal(commandJSON(tc.trace, redact), &got); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("%s = %v, want %v", k, got[k], v)
				}
			}
		})
	}
}
