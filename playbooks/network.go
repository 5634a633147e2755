package playbooks

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/inventory"
)

// PodSubnetPlaceholder in a CNI manifest is replaced by the inventory's pod subnet.
const PodSubnetPlaceholder = "${POD_SUBNET}"

// networkPhase applies the inventory's CNI manifest with kubectl on the
// first master. The manifest goes on kubectl's stdin: the check (kubectl
// diff) writes nothing on the host.
type networkPhase struct {
	inv  *inventory.Inventory
	http *http.Client // nil: http.DefaultClient
}

// check: the cluster already holds the manifest as it is (kubectl diff
// finds nothing), or the inventory names none.
func (p *networkPhase) check(ctx context.Context, pr probe, master string) (bool, string, error) {
	if p.inv.Cluster.CNI == "" {
		return true, "no CNI manifest in the inventory", nil
	}
	manifest, err := p.manifest(ctx)
	if err != nil {
		return false, "", err
	}
	// kubectl diff exits 0 for no difference, 1 for differences.
	res, err := pr.queryInput(ctx, master, kubectl("diff", "-f", "-")+" >/dev/null; echo $?", manifest)
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

func (p *networkPhase) run(ctx context.Context, r remote, master string) error {
	manifest, err := p.manifest(ctx)
	if err != nil {
		return err
	}
	if _, err := r.runInput(ctx, master, kubectl("apply", "-f", "-"), manifest); err != nil {
		return fmt.Errorf("apply CNI manifest: %w", err)
	}
	return nil
}

// maxManifest bounds a CNI manifest (Calico's, among the largest, is under
// 1 MiB): a larger answer is refused, not cut.
const maxManifest = 16 << 20

// manifest reads the manifest the inventory names, checks it against the
// inventory's pin, and fills in the pod subnet.
func (p *networkPhase) manifest(ctx context.Context) ([]byte, error) {
	src := p.inv.Cluster.CNI
	var data []byte
	var err error
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		client := p.http
		if client == nil {
			client = http.DefaultClient
		}
		data, err = fetch(ctx, client, src, maxManifest)
	} else {
		data, err = readLimited(src, maxManifest)
	}
	if err != nil {
		return nil, fmt.Errorf("CNI manifest %s: %w", src, err)
	}
	if pin := p.inv.Cluster.CNISHA256; pin != "" {
		if got := fmt.Sprintf("sha256:%x", sha256.Sum256(data)); got != pin {
			return nil, fmt.Errorf("CNI manifest %s: content is %s, the inventory pins %s (cluster.cniSHA256): not applied", src, got, pin)
		}
	}
	return []byte(strings.ReplaceAll(string(data), PodSubnetPlaceholder, p.inv.Cluster.PodSubnet)), nil
}

func fetch(ctx context.Context, client *http.Client, url string, limit int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return readAtMost(resp.Body, limit)
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAtMost(f, limit)
}

// readAtMost reads all of r, or fails if it holds more than limit bytes.
func readAtMost(r io.Reader, limit int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("larger than %d MiB: refused rather than cut", limit>>20)
	}
	return data, nil
}

// kubectl on the first master, with its admin.conf.
func kubectl(args ...string) string {
	return exec.Command(append([]string{"kubectl", "--kubeconfig", adminConf}, args...)...)
}
