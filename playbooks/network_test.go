package playbooks

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/fleetops/fleet/internal/chart"
	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/testing/charts"
)

func TestCNIManifest(t *testing.T) {
	small := []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: net-conf\ndata:\n  cidr: " + PodSubnetPlaceholder + "\n")
	huge := []byte(strings.Repeat("#", maxManifest+1))
	pinOf := func(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }
	serve := func(body []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) { w.Write(body) }
	}
	file := filepath.Join(t.TempDir(), "cni.yaml")
	if err := os.WriteFile(file, huge, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		body    []byte
		tls     bool
		src     string // "" for the test server's URL
		pin     string
		wantErr string // "" for success
	}{
		{name: "https, no pin", body: small, tls: true},
		{name: "http with the right pin", body: small, pin: pinOf(small)},
		{name: "a wrong pin is refused before apply", body: small, tls: true, pin: pinOf([]byte("other")), wantErr: "the inventory pins"},
		{name: "a manifest over the limit is refused, not cut", body: huge, tls: true, wantErr: "refused rather than cut"},
		{name: "a file over the limit too", src: file, wantErr: "refused rather than cut"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := &sources{inv: &inventory.Inventory{Cluster: inventory.Cluster{PodSubnet: "10.244.0.0/16"}}}
			src := c.src
			if c.src == "" {
				srv := httptest.NewUnstartedServer(serve(c.body))
				if c.tls {
					srv.StartTLS()
				} else {
					srv.Start()
				}
				defer srv.Close()
				src, p.http = srv.URL+"/cni.yaml", srv.Client()
			}
			objs, err := p.manifest(context.Background(), src, c.pin)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := chart.Join(objs); !strings.Contains(string(got), "cidr: 10.244.0.0/16") {
				t.Errorf("pod subnet not filled in:\n%s", got)
			}
		})
	}
}

// ciliumChart is the chart directory of Cilium's module.
func ciliumChart(t *testing.T) string {
	t.Helper()
	c, err := charts.FetchCilium(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c.Chart()
}

// The example renders with the real Cilium chart into what the seeds
// run, twice the same (so a second apply has nothing to do).
func TestCiliumExampleRenders(t *testing.T) {
	inv, err := inventory.Load("../inventory/examples/cilium-bgp.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c := inv.Cluster.Network.Cilium
	if c.Version != charts.CiliumVersion {
		t.Fatalf("the example names Cilium %s, the test renders %s: keep them one", c.Version, charts.CiliumVersion)
	}
	c.Chart, c.Repo = ciliumChart(t), ""
	src := sources{inv: inv}
	rel, notes, err := src.network(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := src.network(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rel.hashes(), again.hashes()) {
		t.Error("two renders of the example differ: every apply would change the cluster")
	}
	if len(notes) != 0 {
		t.Errorf("the example's values override fleet's defaults: %v", notes)
	}
	if inv.Cluster.KubeProxyEnabled() {
		t.Error("cilium leaves kube-proxy on")
	}
	byRef := map[string]chart.Object{}
	for _, o := range rel.all() {
		byRef[o.Ref()] = o
	}
	for _, ref := range []string{"DaemonSet.apps/cilium", "DaemonSet.apps/cilium-envoy", "Deployment.apps/cilium-operator",
		"Deployment.apps/hubble-relay", "Deployment.apps/hubble-ui", "CronJob.batch/hubble-generate-certs",
		"CiliumLoadBalancerIPPool.cilium.io/fleet-bgp", "CiliumBGPClusterConfig.cilium.io/fleet-bgp",
		"CiliumBGPPeerConfig.cilium.io/fleet-bgp", "CiliumBGPAdvertisement.cilium.io/fleet-bgp"} {
		if _, ok := byRef[ref]; !ok {
			t.Errorf("%s not rendered", ref)
		}
	}
	config := string(byRef["ConfigMap/cilium-config"].YAML)
	for _, want := range []string{`kube-proxy-replacement: "true"`, `enable-bgp-control-plane: "true"`, `bpf-lb-external-clusterip: "true"`,
		`ipam: "cluster-pool"`, `cluster-pool-ipv4-cidr: "10.244.0.0/16"`, `enable-hubble: "true"`, `enable-gateway-api: "true"`} {
		if !strings.Contains(config, want) {
			t.Errorf("cilium-config lacks %s", want)
		}
	}
	agent := string(byRef["DaemonSet.apps/cilium"].YAML)
	for _, want := range []string{`name: KUBERNETES_SERVICE_HOST\s+value: "?192\.0\.2\.10"?\n`, `name: KUBERNETES_SERVICE_PORT\s+value: "?6443"?\n`, `cilium:v1\.18\.4`} {
		if !regexp.MustCompile(want).MatchString(agent) {
			t.Errorf("the agent's DaemonSet lacks %q", want)
		}
	}
	cluster := string(byRef["CiliumBGPClusterConfig.cilium.io/fleet-bgp"].YAML)
	for _, want := range []string{"localASN: 64512", "peerASN: 64513", "peerAddress: 192.0.2.1", "bgp: worker"} {
		if !strings.Contains(cluster, want) {
			t.Errorf("CiliumBGPClusterConfig lacks %q:\n%s", want, cluster)
		}
	}
	if len(rel.late) != 4 || len(rel.lateCRDs) != 4 || rel.lateCRDs[1] != "ciliumbgpclusterconfigs.cilium.io" {
		t.Errorf("the BGP objects wait for the operator's CRDs: late %d, CRDs %v", len(rel.late), rel.lateCRDs)
	}
	// Workers get the BGP selector's label; masters do not.
	if w := wantOf(inv, inv.Host("worker0")); w.Labels["bgp"] != "worker" {
		t.Errorf("worker0's labels %v", w.Labels)
	}
	if m := wantOf(inv, inv.Host("master0")); m.Labels["bgp"] != "" {
		t.Errorf("master0 labelled for BGP: %v", m.Labels)
	}

	// A value of the user's over one of fleet's is said.
	c.Set = map[string]any{"kubeProxyReplacement": false, "k8sServicePort": 6443}
	if _, notes, err := src.network(context.Background()); err != nil || len(notes) != 1 || !strings.HasSuffix(notes[0], "for kubeProxyReplacement") {
		t.Errorf("notes %v, err %v: want one naming kubeProxyReplacement alone", notes, err)
	}
}
