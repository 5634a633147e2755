package cfssl

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// realCfssl is the cfssl binary make sim-tools builds from the published
// module; the tests that need it run wherever the integration tests do.
func realCfssl(t *testing.T) string {
	t.Helper()
	layer := os.Getenv("FLEET_SIM_LAYER")
	if layer == "" {
		layer = "/var/cache/fleet-sim/layer"
	}
	bin := filepath.Join(layer, "local/bin/cfssl")
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("FLEET_INTEGRATION") != "" {
			t.Fatalf("cfssl not built (make sim-tools): %v", err)
		}
		t.Skip("needs the real cfssl (make sim-tools; FLEET_INTEGRATION=1)")
	}
	return bin
}

// testCA makes a self-signed CA like a cluster's ca.crt and ca.key.
func testCA(t *testing.T, dir string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	for name, block := range map[string]*pem.Block{"ca.pem": {Type: "CERTIFICATE", Bytes: der}, "ca-key.pem": {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ca, _ := x509.ParseCertificate(der)
	return ca
}

// serveCfssl runs `cfssl serve` on loopback with fleet's signing config
// and extra flags, and returns its URL and the auth key.
func serveCfssl(t *testing.T, extra ...string) (url, authKey string, ca *x509.Certificate, db string) {
	bin := realCfssl(t)
	dir := t.TempDir()
	// The certificate database, made the way the CA host makes it.
	db = filepath.Join(dir, "certdb.db")
	for range 2 { // twice: the schema is idempotent
		sqlite := exec.Command("sqlite3", db)
		sqlite.Stdin = strings.NewReader(Schema)
		if out, err := sqlite.CombinedOutput(); err != nil {
			t.Fatalf("sqlite3: %v: %s", err, out)
		}
	}
	dbConfig, err := DBConfig(db)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "db-config.json"), dbConfig, 0o600)
	ca = testCA(t, dir)
	authKey, err = NewAuthKey()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "auth.key")
	if err := os.WriteFile(keyFile, []byte(authKey), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Config(Signing{}, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o600)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, append([]string{"serve", "-address=127.0.0.1", fmt.Sprintf("-port=%d", port),
		"-ca=" + filepath.Join(dir, "ca.pem"), "-ca-key=" + filepath.Join(dir, "ca-key.pem"), "-config=" + filepath.Join(dir, "config.json"), "-db-config=" + filepath.Join(dir, "db-config.json")},
		extra...)...)
	log, _ := os.Create(filepath.Join(dir, "serve.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url = fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(url + "/api/v1/cfssl/health")
		if err == nil {
			resp.Body.Close()
			return url, authKey, ca, db
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(filepath.Join(dir, "serve.log"))
			t.Fatalf("cfssl serve did not answer: %v\n%s", err, out)
		}
	}
}

func TestClientAgainstRealCfssl(t *testing.T) {
	url, authKey, ca, db := serveCfssl(t, DisableFlag)
	ctx := context.Background()
	c, err := NewClient(url, &http.Client{Timeout: 10 * time.Second}, authKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := c.Info(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := parseCert(caPEM); got == nil || !got.Equal(ca) {
		t.Fatal("info returned another CA")
	}

	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, hosts, err := NodeCSR("worker3", []string{"198.18.0.15"}, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := c.AuthSign(ctx, csr, ProfileKubelet, hosts)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := parseCert(certPEM)
	if cert.Subject.CommonName != "system:node:worker3" || !slices.Equal(cert.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("subject %v: want CN system:node:worker3, O system:nodes", cert.Subject)
	}
	if !slices.Equal(cert.DNSNames, []string{"worker3"}) || len(cert.IPAddresses) != 1 || cert.IPAddresses[0].String() != "198.18.0.15" {
		t.Errorf("SANs %v %v: want worker3 and 198.18.0.15", cert.DNSNames, cert.IPAddresses)
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Errorf("extended key usages %v: the kubelet could not log in with it", cert.ExtKeyUsage)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the certificate does not chain to the CA: %v", err)
	}

	// The certificate database recorded it.
	out, err := exec.Command("sqlite3", db, "SELECT common_name, status FROM certificates").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "system:node:worker3|good" {
		t.Errorf("certdb holds %q (%v), want the node certificate, good", out, err)
	}

	// Another key is refused, and the error names neither key.
	wrongKey, _ := NewAuthKey()
	wrong, _ := NewClient(url, nil, wrongKey)
	_, err = wrong.AuthSign(ctx, csr, ProfileKubelet, hosts)
	if err == nil {
		t.Fatal("a request signed with another key was served")
	}
	if strings.Contains(err.Error(), wrongKey) || strings.Contains(err.Error(), authKey) {
		t.Errorf("the error shows an auth key: %v", err)
	}
	// Without authentication there is no signing at all.
	resp, err := http.Post(url+"/api/v1/cfssl/sign", "application/json", strings.NewReader(`{"certificate_request":"x"}`))
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("the unauthenticated sign endpoint answered 200")
		}
	}
}

// masterRequest asks newcert for a key and a certificate that would make
// its holder cluster-admin: O=system:masters, from the cluster CA.
const masterRequest = `{"request":{"CN":"intruder","names":[{"O":"system:masters"}],"key":{"algo":"ecdsa","size":256}},"profile":"kubelet"}`

// TestServeExposesOnlyWhatFleetUses: cfssl serve's newcert signs without
// the auth key; with fleet's DisableFlag it, and every other endpoint fleet
// does not call, is gone, while info and authsign still serve.
func TestServeExposesOnlyWhatFleetUses(t *testing.T) {
	post := func(url, endpoint, body string) int {
		resp, err := http.Post(url+"/api/v1/cfssl/"+endpoint, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	open, _, _, _ := serveCfssl(t)
	if code := post(open, "newcert", masterRequest); code != http.StatusOK {
		t.Fatalf("plain cfssl serve answered newcert with %d: the hole this flag closes is not there (cfssl changed?)", code)
	}
	url, authKey, _, _ := serveCfssl(t, DisableFlag)
	for _, endpoint := range []string{"newcert", "sign", "revoke", "certadd", "ocspsign", "init_ca", "newkey", "gencrl", "crl", "bundle", "scan", "scaninfo", "certinfo"} {
		if code := post(url, endpoint, masterRequest); code != http.StatusNotFound {
			t.Errorf("%s answered %d with fleet's flags: want 404", endpoint, code)
		}
	}
	c, err := NewClient(url, &http.Client{Timeout: 10 * time.Second}, authKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Info(context.Background(), ""); err != nil {
		t.Errorf("info: %v", err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	csr, hosts, err := NodeCSR("worker3", []string{"198.18.0.15"}, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuthSign(context.Background(), csr, ProfileKubelet, hosts); err != nil {
		t.Errorf("authsign: %v", err)
	}
}

func TestNewClientRefusesANonHexKey(t *testing.T) {
	_, err := NewClient("http://x", nil, "not-hex-secret")
	if err == nil || strings.Contains(err.Error(), "not-hex-secret") {
		t.Errorf("got %v: want an error that does not repeat the key", err)
	}
}

func TestClientWithoutKeyOnlyAsks(t *testing.T) {
	c, err := NewClient("http://127.0.0.1:1", nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuthSign(context.Background(), []byte("csr"), ProfileKubelet, nil); err == nil || !strings.Contains(err.Error(), "no auth key") {
		t.Errorf("AuthSign without a key: %v", err)
	}
	if _, err := NewClient("http://x", nil, "   "); err != nil {
		t.Errorf("a blank key: %v", err)
	}
}

// TestAuthKeySignsNodeNamesOnly: with the auth key, the API signs a
// kubelet's certificate and nothing else: no CN outside node names (a
// system: user of the control plane), no wildcard, and another profile's
// name gets the kubelet's profile (cfssl falls back to the default), never
// a CA. CFSSL cannot restrict the subject's O: the API listens on the CA
// host's loopback, so the auth key is useless without an SSH login there.
func TestAuthKeySignsNodeNamesOnly(t *testing.T) {
	url, authKey, _, _ := serveCfssl(t, DisableFlag)
	c, err := NewClient(url, &http.Client{Timeout: 10 * time.Second}, authKey)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	node, hosts, err := NodeCSR("worker3", []string{"198.18.0.15"}, key)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.AuthSign(ctx, node, ProfileKubelet, hosts); err != nil {
		t.Fatalf("a kubelet's certificate: %v", err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:kube-controller-manager"}}, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.AuthSign(ctx, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), ProfileKubelet, nil); err == nil {
		t.Error("signed a control-plane user's certificate")
	}
	if _, err := c.AuthSign(ctx, node, ProfileKubelet, []string{"worker3", "*.example.com"}); err == nil {
		t.Error("signed a wildcard DNS name")
	}
	for _, profile := range []string{"client", ProfileIntermediate} {
		certPEM, err := c.AuthSign(ctx, node, profile, hosts)
		if err != nil {
			continue // refused: as good
		}
		cert, err := parseCert(certPEM)
		if err != nil {
			t.Fatal(err)
		}
		if cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign != 0 {
			t.Errorf("profile %q signed a CA", profile)
		}
	}
}
