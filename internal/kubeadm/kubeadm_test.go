package kubeadm

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	corev1 "k8s.io/api/core/v1"
	"math/big"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

var (
	cluster = Cluster{Name: "prod", KubernetesVersion: "v1.34.4", ControlPlaneEndpoint: "198.18.0.10:6443",
		PodSubnet: "10.244.0.0/16", ServiceSubnet: "10.96.0.0/12"}
	token   = Token{ID: "abcdef", Secret: "0123456789abcdef"}
	certKey = strings.Repeat("ab", 32)
)

func TestConfigsGolden(t *testing.T) {
	initCfg, err := InitConfig(cluster, Node{Name: "master0", AdvertiseAddress: "198.18.0.11"}, token, "15m0s", certKey)
	if err != nil {
		t.Fatal(err)
	}
	cpJoin, err := JoinConfig(cluster, Node{Name: "master1", AdvertiseAddress: "198.18.0.12"}, token, "sha256:"+strings.Repeat("0", 64), certKey)
	if err != nil {
		t.Fatal(err)
	}
	workerJoin, err := JoinConfig(cluster, Node{Name: "worker0", AdvertiseAddress: "198.18.0.14"}, token, "sha256:"+strings.Repeat("0", 64), "")
	if err != nil {
		t.Fatal(err)
	}
	old := cluster
	old.KubernetesVersion = "v1.30.5"
	v1beta3, err := InitConfig(old, Node{Name: "master0", AdvertiseAddress: "198.18.0.11"}, token, "15m0s", certKey)
	if err != nil {
		t.Fatal(err)
	}
	labelled, err := JoinConfig(cluster, Node{Name: "worker1", AdvertiseAddress: "198.18.0.15",
		Labels: map[string]string{"pool": "general", "example.com/tier": "web"},
		Taints: []corev1.Taint{{Key: "dedicated", Value: "web", Effect: corev1.TaintEffectNoSchedule}, {Key: "spot", Effect: corev1.TaintEffectNoExecute}}},
		token, "sha256:"+strings.Repeat("0", 64), "")
	if err != nil {
		t.Fatal(err)
	}
	swapping := cluster
	swapping.AllowSwap = true
	allowSwap, err := InitConfig(swapping, Node{Name: "master0", AdvertiseAddress: "198.18.0.11"}, token, "15m0s", certKey)
	if err != nil {
		t.Fatal(err)
	}
	cgroupV1 := cluster
	cgroupV1.AllowCgroupV1 = true
	allowCgroupV1, err := InitConfig(cgroupV1, Node{Name: "master0", AdvertiseAddress: "198.18.0.11"}, token, "15m0s", certKey)
	if err != nil {
		t.Fatal(err)
	}
	noProxy := cluster
	noProxy.NoKubeProxy = true
	noKubeProxy, err := InitConfig(noProxy, Node{Name: "master0", AdvertiseAddress: "198.18.0.11"}, token, "15m0s", certKey)
	if err != nil {
		t.Fatal(err)
	}
	// upload-certs reads the certificate key from this file, and no token.
	uploadCerts, err := InitConfig(cluster, Node{Name: "master0", AdvertiseAddress: "198.18.0.11"}, Token{}, "", certKey)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string][]byte{"init.yaml": initCfg, "join-control-plane.yaml": cpJoin, "join-worker.yaml": workerJoin,
		"init-v1beta3.yaml": v1beta3, "upload-certs.yaml": uploadCerts, "join-worker-labelled.yaml": labelled, "init-allow-swap.yaml": allowSwap,
		"init-no-kube-proxy.yaml": noKubeProxy, "init-allow-cgroup-v1.yaml": allowCgroupV1} {
		golden := filepath.Join("testdata", name)
		if *update {
			os.WriteFile(golden, got, 0o644)
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n%s\nwant\n%s", name, got, want)
		}
	}
	validateWithKubeadm(t, "init.yaml", initCfg)
	validateWithKubeadm(t, "join-control-plane.yaml", cpJoin)
	validateWithKubeadm(t, "join-worker.yaml", workerJoin)
	validateWithKubeadm(t, "init-allow-swap.yaml", allowSwap)
	validateWithKubeadm(t, "init-no-kube-proxy.yaml", noKubeProxy)
	validateWithKubeadm(t, "init-allow-cgroup-v1.yaml", allowCgroupV1)
}

// validateWithKubeadm runs the real `kubeadm config validate` from the test
// bed's tools when they are built.
func validateWithKubeadm(t *testing.T, name string, cfg []byte) {
	t.Helper()
	kubeadm := "/var/cache/fleet-sim/bin/kubeadm"
	if _, err := os.Stat(kubeadm); err != nil {
		if os.Getenv("FLEET_INTEGRATION") == "1" {
			t.Fatal("kubeadm not built (make sim-tools)")
		}
		t.Skip("kubeadm not built")
	}
	path := filepath.Join(t.TempDir(), name)
	os.WriteFile(path, cfg, 0o600)
	out, err := osexec.Command(kubeadm, "config", "validate", "--config", path).CombinedOutput()
	if err != nil {
		t.Errorf("kubeadm config validate %s: %v\n%s", name, err, out)
	}
}

func TestAPIVersion(t *testing.T) {
	tests := []struct{ in, want string }{
		{"v1.34.4", "kubeadm.k8s.io/v1beta4"}, {"v1.31.0", "kubeadm.k8s.io/v1beta4"},
		{"v1.30.9", "kubeadm.k8s.io/v1beta3"}, {"1.28.0", "kubeadm.k8s.io/v1beta3"},
		{"v1.25.0", ""}, {"v2.0.0", ""}, {"latest", ""},
	}
	for _, tt := range tests {
		got, err := APIVersion(tt.in)
		if (err != nil) != (tt.want == "") || got != tt.want {
			t.Errorf("APIVersion(%s) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestTokens(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		tok, err := NewToken()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseToken(tok.String())
		if err != nil || back != tok {
			t.Fatalf("round trip of %q: %v %v", tok, back, err)
		}
		if seen[tok.ID] {
			t.Fatalf("token ID %s repeated", tok.ID)
		}
		seen[tok.ID] = true
	}
	for _, bad := range []string{"", "abcdef", "ABCDEF.0123456789abcdef", "abcdef.0123456789abcde", "abcdef-0123456789abcdef"} {
		if _, err := ParseToken(bad); err == nil {
			t.Errorf("ParseToken(%q) accepted", bad)
		}
	}
	if _, err := ParseToken("abcdef.0123456789abcdeX"); err == nil || strings.Contains(err.Error(), "0123456789") {
		t.Errorf("error must not carry the secret: %v", err)
	}
	k, err := NewCertificateKey()
	if err != nil || len(k) != 64 {
		t.Errorf("certificate key %q %v", k, err)
	}
}

// TestCAHashMatchesOpenSSL computes the hash the way kubeadm's docs do it by
// hand, with openssl, and compares.
func TestCAHashMatchesOpenSSL(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	got, err := CAHash(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ca.crt")
	os.WriteFile(path, caPEM, 0o644)
	out, err := osexec.Command("sh", "-c", "openssl x509 -pubkey -in "+path+" | openssl rsa -pubin -outform der 2>/dev/null | openssl dgst -sha256 -hex | sed 's/^.* //'").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := "sha256:" + strings.TrimSpace(string(out)); got != want {
		t.Errorf("CAHash = %s, openssl says %s", got, want)
	}
	if _, err := CAHash([]byte("not pem")); err == nil {
		t.Error("accepted garbage")
	}
}
