package sim

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// IntegrationEnv turns the integration tests on (`make test` sets it). Without
// it they skip, so `go test ./...` works on a laptop without root.
const IntegrationEnv = "FLEET_INTEGRATION"

// RunTests is a TestMain body: with FLEET_INTEGRATION=1 it brings topo up,
// stores it in *c, runs the tests and tears it down; otherwise it runs the
// tests with *c nil (see Need).
func RunTests(m *testing.M, topo Topology, c **Cluster) int {
	if os.Getenv(IntegrationEnv) != "1" {
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	start := time.Now()
	cluster, err := Up(ctx, filepath.Join("/var/tmp/fleet-sim", topo.ID), topo)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sim up:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "sim: %d hosts up in %s\n", len(cluster.Hosts), time.Since(start).Round(time.Millisecond))
	*c = cluster
	code := m.Run()
	if err := cluster.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "sim down:", err)
		code = 1
	}
	return code
}

// Need skips a test when integration tests are off, and fails it when they
// are on but the cluster is missing.
func Need(t testing.TB, c *Cluster) {
	t.Helper()
	if c != nil {
		return
	}
	if os.Getenv(IntegrationEnv) == "1" {
		t.Fatal("integration cluster missing")
	}
	t.Skipf("integration test: run with %s=1 as root (make test)", IntegrationEnv)
}
