package playbooks

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fleetops/fleet/internal/chart"
	"github.com/fleetops/fleet/internal/cilium"
	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/inventory"
)

// PodSubnetPlaceholder in a CNI manifest is replaced by the inventory's pod subnet.
const PodSubnetPlaceholder = "${POD_SUBNET}"

// sources renders what the inventory names for the cluster (the network,
// then each addon) on this machine; nothing here touches a host. A
// manifest's objects that name no namespace go to "default", as
// kubectl apply -f puts them; a chart's to its release's namespace.
type sources struct {
	inv  *inventory.Inventory
	http *http.Client // nil: http.DefaultClient
}

// network renders cluster.network as a release; nil when the inventory
// names none. notes says what a user should know (fleet's Cilium
// defaults their values replaced).
func (s sources) network(ctx context.Context) (rel *release, notes []string, err error) {
	n := s.inv.Cluster.Network
	switch {
	case n == nil:
		return nil, nil, nil
	case n.Manifest != "":
		objs, err := s.manifest(ctx, n.Manifest, n.SHA256)
		if err != nil {
			return nil, nil, err
		}
		return &release{name: "network", namespace: "default", source: "manifest " + n.Manifest, objects: objs}, nil, nil
	case n.Helm != nil:
		rel, err := s.helm(ctx, "network", n.Helm, nil)
		return rel, nil, err
	}
	return s.cilium(ctx, n.Cilium)
}

// addon renders one of cluster.addons.
func (s sources) addon(ctx context.Context, a inventory.Addon) (*release, error) {
	name := "addon-" + a.Name
	if a.Manifest != "" {
		objs, err := s.manifest(ctx, a.Manifest, a.SHA256)
		if err != nil {
			return nil, fmt.Errorf("addon %s: %w", a.Name, err)
		}
		return &release{name: name, namespace: "default", source: "manifest " + a.Manifest, objects: objs}, nil
	}
	rel, err := s.helm(ctx, name, a.Helm, nil)
	if err != nil {
		return nil, fmt.Errorf("addon %s: %w", a.Name, err)
	}
	return rel, nil
}

// helm renders a chart with its values file and set: over defaults.
func (s sources) helm(ctx context.Context, name string, h *inventory.Helm, defaults map[string]any) (*release, error) {
	vals, _, err := values(defaults, h.Values, h.Set)
	if err != nil {
		return nil, err
	}
	return s.render(ctx, name, chart.Request{
		Source:  chart.Source{Chart: h.Chart, Repo: h.Repo, Version: h.Version},
		Release: h.Release, Namespace: h.Namespace, Values: vals,
	})
}

// values lays the values file, then set:, over fleet's defaults, and
// names the defaults they replaced.
func values(defaults map[string]any, file string, set map[string]any) (map[string]any, []string, error) {
	user, err := chart.ReadValues(file)
	if err != nil {
		return nil, nil, err
	}
	if err := chart.Set(user, set); err != nil {
		return nil, nil, err
	}
	merged, overridden := chart.Merge(defaults, user)
	return merged, overridden, nil
}

func (s sources) render(ctx context.Context, name string, req chart.Request) (*release, error) {
	if req.Namespace == "" {
		req.Namespace = "kube-system"
	}
	req.KubeVersion = s.inv.Cluster.KubernetesVersion
	r, err := chart.Render(ctx, req)
	if err != nil {
		return nil, err
	}
	return &release{name: name, namespace: req.Namespace, source: "chart " + r.Name + " " + r.Version,
		crds: r.CRDs, objects: r.Objects}, nil
}

// cilium renders Cilium's chart with fleet's defaults for this topology
// under the user's values, and the BGP objects, applied once the Cilium
// operator has created their CRDs.
func (s sources) cilium(ctx context.Context, c *inventory.Cilium) (*release, []string, error) {
	host, port, err := s.apiEndpoint()
	if err != nil {
		return nil, nil, err
	}
	defaults := cilium.Defaults(cilium.Cluster{APIHost: host, APIPort: port, PodSubnet: s.inv.Cluster.PodSubnet,
		KubeProxy: s.inv.Cluster.KubeProxyEnabled()})
	vals, overridden, err := values(defaults, c.Values, c.Set)
	if err != nil {
		return nil, nil, err
	}
	src := chart.Source{Chart: c.Chart, Repo: c.Repo, Version: c.Version}
	if src.Chart == "" {
		src.Chart, src.Repo = cilium.ChartName, cilium.Repo
	}
	rel, err := s.render(ctx, "network", chart.Request{Source: src, Release: cilium.Release, Namespace: cilium.Namespace, Values: vals})
	if err != nil {
		return nil, nil, err
	}
	var notes []string
	if len(overridden) > 0 {
		notes = append(notes, "your Cilium values replace fleet's defaults for "+strings.Join(overridden, ", "))
	}
	if b := c.BGP; b != nil {
		peers := make([]cilium.Peer, len(b.Peers))
		for i, p := range b.Peers {
			peers[i] = cilium.Peer{Address: p.Address, ASN: p.ASN}
		}
		objs, err := cilium.BGPObjects(cilium.BGP{LocalASN: b.LocalASN, Peers: peers, LoadBalancerCIDRs: b.LoadBalancerCIDRs,
			NodeSelector: b.NodeSelector, Community: b.Community})
		if err != nil {
			return nil, nil, err
		}
		rel.late = objs
		for _, o := range objs {
			rel.lateCRDs = append(rel.lateCRDs, cilium.CRD(o.Kind))
		}
	}
	return rel, notes, nil
}

// apiEndpoint is where pods reach the API without kube-proxy: the
// node-local proxy where there is one, else the control-plane endpoint.
func (s sources) apiEndpoint() (string, int, error) {
	c := s.inv.Cluster
	if c.NodeLocalProxy {
		return "127.0.0.1", s.inv.NodeLocalPort(), nil
	}
	host, port, err := net.SplitHostPort(c.ControlPlaneEndpoint)
	if err != nil {
		return "", 0, fmt.Errorf("controlPlaneEndpoint %q: %w", c.ControlPlaneEndpoint, err)
	}
	p, err := strconv.Atoi(port)
	return host, p, err
}

// maxManifest bounds a CNI manifest (Calico's, among the largest, is under
// 1 MiB): a larger answer is refused, not cut.
const maxManifest = 16 << 20

// manifest reads a manifest file or URL, checks it against its pin, and
// fills in the pod subnet.
func (s sources) manifest(ctx context.Context, src, pin string) ([]chart.Object, error) {
	var data []byte
	var err error
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		client := s.http
		if client == nil {
			client = http.DefaultClient
		}
		data, err = fetch(ctx, client, src, maxManifest)
	} else {
		data, err = readLimited(src, maxManifest)
	}
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", src, err)
	}
	if pin != "" {
		if got := fmt.Sprintf("sha256:%x", sha256.Sum256(data)); got != pin {
			return nil, fmt.Errorf("manifest %s: content is %s, the inventory pins %s: not applied", src, got, pin)
		}
	}
	objs, err := chart.Split(strings.ReplaceAll(string(data), PodSubnetPlaceholder, s.inv.Cluster.PodSubnet))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", src, err)
	}
	return objs, nil
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
