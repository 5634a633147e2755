package chart

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	// The same chart as a directory and packaged as a .tgz (tar it here:
	// a packaged chart in testdata would be a generated file).
	tgz := filepath.Join(t.TempDir(), "demo-0.3.1.tgz")
	if out, err := exec.Command("tar", "-czf", tgz, "-C", "testdata", "demo").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	cases := []struct {
		name    string
		req     Request
		refs    []string // Objects' Refs, in order
		crds    []string
		has     string // in the rendered YAML
		wantErr string
	}{
		{name: "directory, chart defaults",
			req:  Request{Source: Source{Chart: "testdata/demo"}, Release: "web", Namespace: "apps", KubeVersion: "v1.34.4"},
			refs: []string{"ServiceAccount/web", "ClusterRole.rbac.authorization.k8s.io/web-reader", "DaemonSet.apps/web-agent", "Deployment.apps/web-server", "Job.batch/web-migrate"},
			crds: []string{"widgets.demo.example.com"}, has: "replicas: 1"},
		{name: "packaged chart with values: a value turns an object off, another changes",
			req: Request{Source: Source{Chart: tgz, Version: "0.3.1"}, Release: "web", Namespace: "apps", KubeVersion: "v1.34.4",
				Values: map[string]any{"replicas": 3, "agent": map[string]any{"enabled": false}}},
			refs: []string{"ServiceAccount/web", "ClusterRole.rbac.authorization.k8s.io/web-reader", "Deployment.apps/web-server", "Job.batch/web-migrate"},
			crds: []string{"widgets.demo.example.com"}, has: "replicas: 3"},
		{name: "no release name: the chart's own",
			req:  Request{Source: Source{Chart: tgz}, Namespace: "apps", KubeVersion: "v1.34.4"},
			refs: []string{"ServiceAccount/demo", "ClusterRole.rbac.authorization.k8s.io/demo-reader", "DaemonSet.apps/demo-agent", "Deployment.apps/demo-server", "Job.batch/demo-migrate"},
			crds: []string{"widgets.demo.example.com"}, has: "name: demo-server"},
		{name: "the chart's kubeVersion is honoured",
			req:     Request{Source: Source{Chart: "testdata/demo"}, Release: "web", Namespace: "apps", KubeVersion: "v1.29.0"},
			wantErr: "kubeVersion"},
		{name: "a version the chart is not",
			req:     Request{Source: Source{Chart: "testdata/demo", Version: "0.4.0"}, Release: "web", Namespace: "apps"},
			wantErr: "chart testdata/demo is version 0.3.1, the inventory asks for 0.4.0"},
		{name: "a missing chart",
			req:     Request{Source: Source{Chart: "testdata/nothing"}, Release: "web", Namespace: "apps"},
			wantErr: "chart testdata/nothing: no such file or directory"},
		{name: "a repository chart without a version is refused before any download",
			req:     Request{Source: Source{Chart: "demo", Repo: "https://charts.example"}, Release: "web", Namespace: "apps"},
			wantErr: "needs a version"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := Render(context.Background(), c.req)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var refs, crds []string
			for _, o := range r.Objects {
				refs = append(refs, o.Ref())
			}
			for _, o := range r.CRDs {
				crds = append(crds, o.Name)
			}
			if !reflect.DeepEqual(refs, c.refs) || !reflect.DeepEqual(crds, c.crds) {
				t.Errorf("objects %v, CRDs %v\nwant %v, %v", refs, crds, c.refs, c.crds)
			}
			if r.Name != "demo" || r.Version != "0.3.1" {
				t.Errorf("chart %s %s, want demo 0.3.1", r.Name, r.Version)
			}
			if all := string(Join(r.All())); !strings.Contains(all, c.has) || strings.Contains(all, "web-test") {
				t.Errorf("rendered YAML lacks %q or holds the test hook:\n%s", c.has, all)
			}
			for _, o := range r.Objects {
				if want := map[string]string{"Deployment": "apps"}[o.Kind]; o.Namespace != want {
					t.Errorf("%s in namespace %q, want %q (as its template sets it)", o.Ref(), o.Namespace, want)
				}
			}
		})
	}
}

func TestSplit(t *testing.T) {
	objs, err := Split("---\n# only a comment\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: x}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(objs) != 2 || objs[0].Kind != "Namespace" || objs[1].Key("def") != "x/Deployment.apps/d" || objs[0].Key("def") != "def/Namespace/x" {
		t.Errorf("got %+v", objs)
	}
	if _, err := Split("apiVersion: v1\nkind: ConfigMap\n"); err == nil || !strings.Contains(err.Error(), "without apiVersion, kind or name") {
		t.Errorf("an object without a name: err = %v", err)
	}
	if _, err := Split("apiVersion: v1\nkind: [\n"); err == nil {
		t.Error("broken YAML accepted")
	}
}

func TestMergeAndSet(t *testing.T) {
	defaults := map[string]any{"k8sServicePort": 6443, "kubeProxyReplacement": true,
		"ipam": map[string]any{"mode": "cluster-pool", "operator": map[string]any{"clusterPoolIPv4PodCIDRList": []any{"10.244.0.0/16"}}}}
	user, err := ReadValues(writeFile(t, "values.yaml", "k8sServicePort: 6443\nipam:\n  mode: kubernetes\nhubble:\n  enabled: true\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := Set(user, map[string]any{"hubble.relay.enabled": true, "kubeProxyReplacement": false, "list[1]": "b"}); err != nil {
		t.Fatal(err)
	}
	merged, overridden := Merge(defaults, user)
	// 6443 in the file is the same value as fleet's: not an override.
	if want := []string{"ipam.mode", "kubeProxyReplacement"}; !reflect.DeepEqual(overridden, want) {
		t.Errorf("overridden %v, want %v", overridden, want)
	}
	ipam := merged["ipam"].(map[string]any)
	if ipam["mode"] != "kubernetes" || ipam["operator"] == nil || merged["kubeProxyReplacement"] != false {
		t.Errorf("merged %v", merged)
	}
	if relay := merged["hubble"].(map[string]any)["relay"].(map[string]any); relay["enabled"] != true {
		t.Errorf("set hubble.relay.enabled: %v", merged["hubble"])
	}
	if l := merged["list"].([]any); len(l) != 2 || l[1] != "b" {
		t.Errorf("set list[1]: %v", merged["list"])
	}
	if defaults["ipam"].(map[string]any)["mode"] != "cluster-pool" {
		t.Error("Merge changed its base")
	}
	if _, err := ReadValues(writeFile(t, "bad.yaml", "a: [\n")); err == nil {
		t.Error("broken values file accepted")
	}
	if v, err := ReadValues(writeFile(t, "empty.yaml", "")); err != nil || v == nil {
		t.Errorf("empty values file: %v %v", v, err)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A chart named in a repository is found in its index and downloaded (to
// Helm's cache, here a temporary one), at the version asked for.
func TestRenderFromRepository(t *testing.T) {
	for _, env := range []string{"HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"} {
		t.Setenv(env, t.TempDir())
	}
	tgz, err := exec.Command("tar", "-czf", "-", "-C", "testdata", "demo").Output()
	if err != nil {
		t.Fatal(err)
	}
	var fetched []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetched = append(fetched, r.URL.Path)
		switch r.URL.Path {
		case "/index.yaml":
			fmt.Fprintf(w, "apiVersion: v1\nentries:\n  demo:\n  - name: demo\n    version: 0.3.1\n    apiVersion: v2\n    urls: [%s/demo-0.3.1.tgz]\n    digest: %x\n", "http://"+r.Host, sha256.Sum256(tgz))
		case "/demo-0.3.1.tgz":
			w.Write(tgz)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	r, err := Render(context.Background(), Request{Source: Source{Chart: "demo", Repo: srv.URL, Version: "0.3.1"}, Release: "web", Namespace: "apps", KubeVersion: "v1.34.4"})
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "demo" || r.Version != "0.3.1" || len(r.Objects) != 5 {
		t.Errorf("rendered %s %s with %d objects", r.Name, r.Version, len(r.Objects))
	}
	if !reflect.DeepEqual(fetched, []string{"/index.yaml", "/demo-0.3.1.tgz"}) {
		t.Errorf("fetched %v", fetched)
	}
	if _, err := Render(context.Background(), Request{Source: Source{Chart: "demo", Repo: srv.URL, Version: "9.9.9"}, Release: "web", Namespace: "apps"}); err == nil || !strings.Contains(err.Error(), "9.9.9") {
		t.Errorf("a version the repository lacks: err = %v", err)
	}
}
