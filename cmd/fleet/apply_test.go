package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/hashicorp/go-multierror"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
)

func TestExcludeHintOnlyWhenWorkersAloneFailedPreflight(t *testing.T) {
	inv, err := inventory.Load("../../inventory/examples/ha.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := playbooks.NewSession(inv, playbooks.Options{KnownHosts: t.TempDir() + "/kh"})
	if err != nil {
		t.Fatal(err)
	}
	fail := func(step, host string) error {
		return &steps.StepError{Step: step, Host: host, Err: errors.New("unreachable")}
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"two workers", multierror.Append(nil, fail("preflight", "worker0"), fail("preflight", "worker1")), "worker0,worker1"},
		{"a master too", multierror.Append(nil, fail("preflight", "worker0"), fail("preflight", "master1")), ""},
		{"a later step", multierror.Append(nil, fail("join-workers", "worker0")), ""},
		{"not a step error", errors.New("boom"), ""},
	}
	for _, tt := range tests {
		if got := strings.Join(failedWorkerPreflights(s, tt.err), ","); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
