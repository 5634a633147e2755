package playbooks

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetops/fleet/internal/chart"
	"github.com/fleetops/fleet/inventory"
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
