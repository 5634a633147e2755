package playbooks

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/fleetops/fleet/internal/exec"
)

const cniManifest = fleetDir + "/cni.yaml"

// PodSubnetPlaceholder in a CNI manifest is replaced by the inventory's pod subnet.
const PodSubnetPlaceholder = "${POD_SUBNET}"

// cniSource reads the manifest the inventory names and fills in the pod subnet.
func (a *applyRun) cniSource(ctx context.Context) ([]byte, error) {
	src := a.s.Inv.Cluster.CNI
	var data []byte
	var err error
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		data, err = fetch(ctx, src)
	} else {
		data, err = os.ReadFile(src)
	}
	if err != nil {
		return nil, fmt.Errorf("CNI manifest %s: %w", src, err)
	}
	return []byte(strings.ReplaceAll(string(data), PodSubnetPlaceholder, a.s.Inv.Cluster.PodSubnet)), nil
}

func fetch(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 16<<20))
}

// kubectl on the first master, with its admin.conf.
func kubectl(args ...string) string {
	return exec.Command(append([]string{"kubectl", "--kubeconfig", adminConf}, args...)...)
}

// cniCurrent: the cluster already holds the manifest as it is (kubectl diff
// finds nothing), or the inventory names none.
func (a *applyRun) cniCurrent(ctx context.Context, _ string) (bool, string, error) {
	if a.s.Inv.Cluster.CNI == "" {
		return true, "no CNI manifest in the inventory", nil
	}
	manifest, err := a.cniSource(ctx)
	if err != nil {
		return false, "", err
	}
	if err := a.s.upload(ctx, a.first, cniManifest, manifest, 0o600); err != nil {
		return false, "", err
	}
	// kubectl diff exits 0 for no difference, 1 for differences.
	res, err := a.s.run(ctx, a.first, kubectl("diff", "-f", cniManifest)+" >/dev/null; echo $?")
	if err != nil {
		return false, "", err
	}
	switch strings.TrimSpace(res.Stdout) {
	case "0":
		return true, "CNI manifest already applied", nil
	case "1":
		return false, "", nil
	}
	return false, "", fmt.Errorf("kubectl diff failed (exit %s): %s", strings.TrimSpace(res.Stdout), res.Stderr)
}

// applyCNI applies the manifest cniCurrent has just uploaded and diffed.
func (a *applyRun) applyCNI(ctx context.Context, _ string) error {
	if _, err := a.s.run(ctx, a.first, kubectl("apply", "-f", cniManifest)); err != nil {
		return fmt.Errorf("apply CNI manifest: %w", err)
	}
	return nil
}
