package binaries

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// releaseServer serves files as a release does: each at /v1.34.4/NAME,
// its sum at NAME.sha256, and counts what it hands out.
type releaseServer struct {
	*httptest.Server
	mu     sync.Mutex
	files  map[string][]byte
	sums   map[string]string
	served map[string]int
}

func newReleaseServer(t *testing.T, files map[string][]byte) *releaseServer {
	rs := &releaseServer{files: files, sums: map[string]string{}, served: map[string]int{}}
	for name, data := range files {
		sum := sha256.Sum256(data)
		rs.sums[name] = hex.EncodeToString(sum[:])
	}
	rs.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.mu.Lock()
		defer rs.mu.Unlock()
		path := strings.TrimPrefix(r.URL.Path, "/v1.34.4/")
		rs.served[path]++
		if name, ok := strings.CutSuffix(path, ".sha256"); ok && rs.sums[name] != "" {
			w.Write([]byte(rs.sums[name] + "\n"))
			return
		}
		if data, ok := rs.files[path]; ok {
			w.Write(data)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(rs.Close)
	return rs
}

func TestFill(t *testing.T) {
	files := map[string][]byte{"kubeadm": []byte("kubeadm binary"), "kubelet": []byte("kubelet binary"), "kubectl": []byte("kubectl binary")}
	rs := newReleaseServer(t, files)
	rel := Release{URL: rs.URL + "/{version}/{name}", Version: "v1.34.4"}
	dir := filepath.Join(t.TempDir(), "airgap")
	ctx := context.Background()

	if err := Fill(ctx, rs.Client(), dir, rel); err != nil {
		t.Fatal(err)
	}
	sums, err := os.ReadFile(filepath.Join(dir, SumsFile))
	if err != nil {
		t.Fatal(err)
	}
	want := rs.sums["kubeadm"] + "  kubeadm\n" + rs.sums["kubectl"] + "  kubectl\n" + rs.sums["kubelet"] + "  kubelet\n"
	if string(sums) != want {
		t.Errorf("SHA256SUMS:\n%s\nwant\n%s", sums, want)
	}
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(got) != string(data) {
			t.Errorf("%s: %q, %v", name, got, err)
		}
		if st, _ := os.Stat(filepath.Join(dir, name)); st.Mode().Perm() != 0o755 {
			t.Errorf("%s: mode %v", name, st.Mode())
		}
	}

	t.Run("a second fill downloads nothing", func(t *testing.T) {
		before := rs.servedOf("kubeadm")
		if err := Fill(ctx, rs.Client(), dir, rel); err != nil {
			t.Fatal(err)
		}
		if rs.servedOf("kubeadm") != before {
			t.Error("kubeadm downloaded again")
		}
	})

	t.Run("a binary the server changed is refused against the folder's pinned sum", func(t *testing.T) {
		os.Remove(filepath.Join(dir, "kubelet"))
		rs.mu.Lock()
		rs.files["kubelet"] = []byte("another kubelet")
		pinned := rs.sums["kubelet"]
		rs.mu.Unlock()
		err := Fill(ctx, rs.Client(), dir, rel)
		var ce *ChecksumError
		if !errors.As(err, &ce) || ce.Want != pinned || ce.Path != rs.URL+"/v1.34.4/kubelet" {
			t.Fatalf("got %v, want the kubelet refused against %s", err, pinned)
		}
		if _, err := os.Stat(filepath.Join(dir, "kubelet")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the refused kubelet was kept: %v", err)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, ".kubelet.download-*")); len(left) > 0 {
			t.Errorf("temporary files left: %v", left)
		}
	})

	t.Run("a published sum that does not match the file is refused", func(t *testing.T) {
		fresh := filepath.Join(t.TempDir(), "airgap")
		rs.mu.Lock()
		rs.sums["kubectl"] = strings.Repeat("0", 64)
		rs.mu.Unlock()
		err := Fill(ctx, rs.Client(), fresh, Release{URL: rel.URL, Version: rel.Version, Names: []string{"kubectl"}})
		var ce *ChecksumError
		if !errors.As(err, &ce) || ce.Want != strings.Repeat("0", 64) {
			t.Fatalf("got %v, want kubectl refused", err)
		}
	})

	t.Run("a missing file names its URL", func(t *testing.T) {
		err := Fill(ctx, rs.Client(), filepath.Join(t.TempDir(), "x"), Release{URL: rs.URL + "/{version}/{name}", Version: "v1.34.4", Names: []string{"crictl"}})
		if err == nil || !strings.Contains(err.Error(), rs.URL+"/v1.34.4/crictl.sha256: 404") {
			t.Errorf("got %v", err)
		}
	})
}

func (rs *releaseServer) servedOf(path string) int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.served[path]
}
