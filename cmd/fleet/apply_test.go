package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/go-multierror"

	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
)

func TestExcludeHintOnlyWhenWorkersAloneFailedPreflight(t *testing.T) {
	// As the engine wraps them: the step and host, then the phase's error.
	preflight := func(host string, role inventory.Role) error {
		return fmt.Errorf("step preflight on %s: %w", host, &playbooks.PreflightError{Host: host, Role: role, Err: errors.New("unreachable")})
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"two workers", multierror.Append(nil, preflight("worker0", inventory.RoleWorker), preflight("worker1", inventory.RoleWorker)), "worker0,worker1"},
		{"a master too", multierror.Append(nil, preflight("worker0", inventory.RoleWorker), preflight("master1", inventory.RoleMaster)), ""},
		{"a later step", multierror.Append(nil, errors.New("step join-workers on worker0: unreachable")), ""},
		{"not a multierror", errors.New("boom"), ""},
	}
	for _, tt := range tests {
		if got := strings.Join(failedWorkerPreflights(tt.err), ","); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
