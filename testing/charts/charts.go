// Package charts finds the real Helm charts fleet's tests render and
// apply. Cilium's chart is part of its Go module's source, so the Go
// module proxy (which the test machines reach) serves it where the chart
// repository is out of reach.
package charts

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// CiliumVersion is the Cilium release the tests install.
const CiliumVersion = "1.18.4"

// Cilium is the module of CiliumVersion in the Go module cache,
// downloaded if needed: its chart is Cilium(...).Chart().
type Cilium struct{ Dir string }

// Chart is the chart's directory.
func (c Cilium) Chart() string { return filepath.Join(c.Dir, "install", "kubernetes", "cilium") }

// CRD is the path of one of the CRDs the Cilium operator creates when it
// starts (cilium.io/v2), by its name ("ciliumbgpclusterconfigs.cilium.io").
func (c Cilium) CRD(name string) string {
	plural, _, _ := strings.Cut(name, ".")
	return filepath.Join(c.Dir, "pkg", "k8s", "apis", "cilium.io", "client", "crds", "v2", plural+".yaml")
}

// FetchCilium downloads (or finds) Cilium's module.
func FetchCilium(ctx context.Context) (Cilium, error) {
	dir, err := os.MkdirTemp("", "fleet-charts")
	if err != nil {
		return Cilium{}, err
	}
	defer os.RemoveAll(dir)
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", "github.com/cilium/cilium@v"+CiliumVersion)
	cmd.Dir = dir // outside any module: no go.sum is touched
	out, err := cmd.Output()
	if err != nil {
		return Cilium{}, fmt.Errorf("go mod download github.com/cilium/cilium@v%s: %w\n%s", CiliumVersion, err, out)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return Cilium{}, fmt.Errorf("go mod download github.com/cilium/cilium: %v %s", err, mod.Error)
	}
	return Cilium{Dir: mod.Dir}, nil
}
