package playbooks_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/playbooks"
)

// The package's bare cluster has no Kubernetes binaries: apply must stop at
// preflight, say why per host, and change nothing.
func TestApplyStopsBeforeChangingAnythingWhenPreflightFails(t *testing.T) {
	sim := cluster
	if sim == nil {
		t.Skip("integration test: run with FLEET_INTEGRATION=1 as root (make test)")
	}
	if _, err := sim.Exec("worker0", "sh", "-c", "nohup python3 -m http.server 10250 >/dev/null 2>&1 & "+
		"for i in $(seq 100); do ss -Hltn 'sport = :10250' | grep -q . && exit 0; sleep 0.1; done; exit 1"); err != nil {
		t.Fatal(err)
	}
	s := session(t, playbooks.Options{})
	opts := playbooks.DefaultApplyOptions()
	opts.Kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	report, err := playbooks.Apply(context.Background(), s, opts)
	if err == nil {
		t.Fatal("apply passed preflight on hosts without kubeadm")
	}
	msg := err.Error()
	for _, want := range []string{"step preflight on master0: kubeadm is not installed", "step preflight on worker0:", "ports in use by something else: 10250"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	for _, e := range report.Events {
		if e.Kind == steps.Succeeded && !e.ReadOnly {
			t.Errorf("step %s ran on %s after a failed preflight", e.Step, e.Host)
		}
	}
	if _, err := os.Stat(filepath.Join(sim.Host("lb").Dir, "etc/nginx/fleet.d")); err == nil {
		t.Error("the load balancer was configured despite the failed preflight")
	}
	if report.Changed() {
		t.Errorf("changes: %+v", report.Changes())
	}
}
