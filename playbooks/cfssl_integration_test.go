package playbooks_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/fleetops/fleet/internal/cfssl"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/reliability"
	"github.com/fleetops/fleet/testing/sim"
)

// TestCFSSLJoin: the CA host of seed 000 on the real test bed. fleet sets
// the CFSSL API up on it (root only with --generate-ca), kubeadm init makes
// the cluster with the CA host's cluster CA, and a worker with no kubeadm
// joins with a certificate the CA host signed by authenticated remote
// signing: Ready, the subject and SANs as specified, recorded in the
// sqlite certdb. No key leaks into the output; a second apply changes
// nothing; a dead API is started again by the next apply.
func TestCFSSLJoin(t *testing.T) {
	sim.Need(t, cluster)
	topo := sim.Topology{ID: "cf", Subnet: 25, Hosts: []sim.HostSpec{
		{Name: "lb", Role: "loadbalancer"}, {Name: "master0", Role: "master"}, {Name: "worker0", Role: "worker"}, {Name: "worker1", Role: "worker"}, {Name: "ca", Role: "ca"}}}
	c := upWithNodeBinaries(t, topo)
	if _, err := c.Exec("worker0", "rm", "-f", "/usr/bin/kubeadm"); err != nil {
		t.Fatal(err)
	}
	inv := editInventory(t, c.Inventory, nil, [2]string{"\ncluster:\n", "\ncluster:\n  joinMode: cfssl\n"})
	opts := playbooks.DefaultApplyOptions()
	opts.Kubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	opts.Exclude = []string{"worker1"} // joins later, by cloud-init
	var everything bytes.Buffer        // every byte the runs showed
	apply := func(o playbooks.ApplyOptions) (*steps.Report, error) {
		t.Helper()
		report, _, shown, err := runApply(t, inv, o, nil)
		everything.WriteString(shown)
		return report, err
	}
	caDir := filepath.Join(c.Host("ca").Dir, "etc/cfssl")

	// No root and no leave to make one: stopped before kubeadm init.
	if _, err := apply(opts); err == nil || !strings.Contains(err.Error(), "--generate-ca") {
		t.Fatalf("apply without a root: %v, want a pointer to --generate-ca", err)
	}
	if _, err := os.Stat(filepath.Join(c.Host("master0").Dir, "etc/kubernetes/admin.conf")); err == nil {
		t.Fatal("kubeadm init ran without the CA host's CA")
	}

	opts.GenerateCA = true
	report, err := apply(opts)
	if err != nil {
		t.Fatalf("apply --generate-ca: %v\n%s", err, everything.String())
	}
	for _, step := range []string{"ca-host", "cluster-ca", "init", "join-workers"} {
		if !ran(report, step) {
			t.Errorf("step %s did not run", step)
		}
	}

	// The cluster's CA is the CA host's, and the API serves it.
	caPEM, err := os.ReadFile(filepath.Join(caDir, cfssl.CACert))
	if err != nil {
		t.Fatal(err)
	}
	clusterCA, _ := os.ReadFile(filepath.Join(c.Host("master0").Dir, "etc/kubernetes/pki/ca.crt"))
	if !bytes.Equal(caPEM, clusterCA) {
		t.Error("master0's ca.crt is not the CA host's cluster CA")
	}
	// The API is on the CA host's loopback only: nothing on the network
	// reaches it (fleet does, through SSH), and there it serves the CA.
	if conn, err := net.DialTimeout("tcp", net.JoinHostPort(c.Host("ca").Address, "8888"), 2*time.Second); err == nil {
		conn.Close()
		t.Error("the CFSSL API answers on the network")
	}
	if served := caServed(t, c); !bytes.Equal(bytes.TrimSpace(served), bytes.TrimSpace(caPEM)) {
		t.Errorf("the API on the CA host's loopback serves another CA:\n%s", served)
	}

	// The worker's certificate: subject, SANs, chain, certdb.
	kubeletConf := filepath.Join(c.Host("worker0").Dir, "etc/kubernetes/kubelet.conf")
	if fi, err := os.Stat(kubeletConf); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("worker0 kubelet.conf: %v %v, want 0600", err, fi)
	}
	cfg, err := clientcmd.LoadFromFile(kubeletConf)
	if err != nil {
		t.Fatal(err)
	}
	user := cfg.AuthInfos[cfg.Contexts[cfg.CurrentContext].AuthInfo]
	block, _ := pem.Decode(user.ClientCertificateData)
	if block == nil {
		t.Fatal("no client certificate in worker0's kubelet.conf")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "system:node:worker0" || !slices.Equal(cert.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("subject %v", cert.Subject)
	}
	if !slices.Equal(cert.DNSNames, []string{"worker0"}) || len(cert.IPAddresses) != 1 || cert.IPAddresses[0].String() != c.Host("worker0").Address {
		t.Errorf("SANs %v %v", cert.DNSNames, cert.IPAddresses)
	}
	caBlock, _ := pem.Decode(caPEM)
	ca, _ := x509.ParseCertificate(caBlock.Bytes)
	if err := cert.CheckSignatureFrom(ca); err != nil {
		t.Errorf("worker0's certificate is not signed by the cluster CA: %v", err)
	}
	if out, err := c.Exec("ca", "sqlite3", "/var/lib/cfssl/certdb.db", "SELECT common_name, status FROM certificates WHERE common_name = 'system:node:worker0'"); err != nil || strings.TrimSpace(string(out)) != "system:node:worker0|good" {
		t.Errorf("certdb: %q %v", out, err)
	}
	if out, _ := c.Exec("worker0", "sh", "-c", "command -v kubeadm || echo none"); strings.TrimSpace(string(out)) != "none" {
		t.Errorf("kubeadm on worker0: %s", out)
	}

	// Secrets: 0600 on the CA host, never in the output.
	authKey, err := os.ReadFile(filepath.Join(caDir, cfssl.AuthFile))
	if err != nil {
		t.Fatal(err)
	}
	// The root --generate-ca made is on this machine, beside the
	// inventory; its key is on no host.
	localRoot := filepath.Join(c.Dir, inv.Cluster.Name+"-root-ca-key.pem")
	if fi, err := os.Stat(localRoot); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the generated root's key %s: %v %v, want 0600", localRoot, err, fi)
	}
	localRootKey, _ := os.ReadFile(localRoot)
	noHostHolds(t, c, "the root's key", keyBody(localRootKey))
	for _, f := range []string{cfssl.AuthFile, cfssl.CAKey, "ocsp-key.pem"} {
		if fi, err := os.Stat(filepath.Join(caDir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want 0600", f, err, fi)
		}
	}
	caKey, _ := os.ReadFile(filepath.Join(caDir, cfssl.CAKey))
	for name, secret := range map[string]string{"auth key": strings.TrimSpace(string(authKey)), "cluster CA key": keyBody(caKey), "worker key": keyBody(user.ClientKeyData)} {
		if secret == "" || strings.Contains(everything.String(), secret) {
			t.Errorf("the %s appears in the output (or is empty)", name)
		}
	}

	t.Run("second apply changes nothing", func(t *testing.T) {
		report, err := apply(opts)
		if err != nil {
			t.Fatal(err)
		}
		if report.Changed() {
			t.Errorf("changed: %+v", report.Changes())
		}
	})

	t.Run("cloud-init user-data joins a fresh worker with a CA-host certificate", func(t *testing.T) {
		doc := cloudInitJoins(t, c, inv, opts.Kubeconfig, "worker1", strings.TrimSpace(string(authKey)), keyBody(caKey))
		if !strings.Contains(string(doc), "client-certificate-data") {
			t.Errorf("a cfssl-mode user-data without the signed certificate:\n%s", firstLine(string(doc)))
		}
		if out, err := c.Exec("ca", "sqlite3", "/var/lib/cfssl/certdb.db", "SELECT count(*) FROM certificates WHERE common_name = 'system:node:worker1'"); err != nil || strings.TrimSpace(string(out)) != "1" {
			t.Errorf("certdb rows for worker1: %q %v", out, err)
		}
	})

	t.Run("an API that answers with another CA is refused, and apply restores the real one", func(t *testing.T) {
		// Someone on the CA host serves the API's port with a CA of their
		// own and the real signing config: the certificates it signs would
		// make a worker trust them.
		rogue := `set -e; cd /tmp
/usr/local/bin/cfssl gencert -initca /etc/cfssl/root-csr.json 2>/dev/null | /usr/local/bin/cfssljson -bare rogue
kill $(cat ` + cfssl.NoInitPidFile + `); sleep 0.5
setsid /usr/local/bin/cfssl serve -address 127.0.0.1 -port 8888 -ca rogue.pem -ca-key rogue-key.pem -config /etc/cfssl/config.json </dev/null >/tmp/rogue.log 2>&1 &
echo $! > /tmp/rogue.pid`
		if out, err := c.Exec("ca", "sh", "-c", rogue); err != nil {
			t.Fatalf("start the rogue API: %v\n%s", err, out)
		}
		deadline := time.Now().Add(15 * time.Second)
		for served := caServed(t, c); bytes.Equal(bytes.TrimSpace(served), bytes.TrimSpace(caPEM)) || len(served) == 0; served = caServed(t, c) {
			if time.Now().After(deadline) {
				t.Fatal("the rogue API did not come up")
			}
			time.Sleep(200 * time.Millisecond)
		}
		var out output
		s, err := playbooks.NewSession(inv, playbooks.Options{OnEvent: out.event})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		_, err = playbooks.CloudInit(context.Background(), s, "worker1", playbooks.CloudInitOptions{TokenTTL: 10 * time.Minute})
		if err == nil || !strings.Contains(err.Error(), "not the CA host's ca.pem") {
			t.Fatalf("a certificate from the rogue API: %v", err)
		}
		reliability.Record(t, reliability.Row{N: 18, Did: s.Redactor.String(err.Error()),
			Rerun: "with the rogue API stopped, apply found the CA host's API not serving its ca.pem, started the real one again, and info matched ca.pem"})

		if _, err := c.Exec("ca", "sh", "-c", "kill $(cat /tmp/rogue.pid)"); err != nil {
			t.Fatal(err)
		}
		report, err := apply(opts)
		if err != nil {
			t.Fatal(err)
		}
		if !ran(report, "ca-host") {
			t.Errorf("apply did not restore the CA host's API: %+v", report.Changes())
		}
		if served := caServed(t, c); !bytes.Equal(bytes.TrimSpace(served), bytes.TrimSpace(caPEM)) {
			t.Error("after apply the API still serves another CA")
		}
	})

	t.Run("a dead API is started again", func(t *testing.T) {
		if _, err := c.Exec("ca", "sh", "-c", "kill $(cat "+cfssl.NoInitPidFile+")"); err != nil {
			t.Fatal(err)
		}
		report, err := apply(opts)
		if err != nil {
			t.Fatal(err)
		}
		if !ran(report, "ca-host") || ran(report, "init") {
			t.Errorf("want only the CA host's service started again: %+v", report.Changes())
		}
		if served := caServed(t, c); !bytes.Equal(bytes.TrimSpace(served), bytes.TrimSpace(caPEM)) {
			t.Errorf("the API does not serve the cluster CA after the apply: %q", served)
		}
		if again, _ := os.ReadFile(filepath.Join(caDir, cfssl.CACert)); !bytes.Equal(again, caPEM) {
			t.Error("the cluster CA was replaced")
		}
	})
}

// noHostHolds: no file on any host of c contains secret (the start of a
// key's body, as keyBody gives it).
func noHostHolds(t *testing.T, c *sim.Cluster, what, secret string) {
	t.Helper()
	if len(secret) < 40 {
		t.Fatalf("%s: %q is too short to search for", what, secret)
	}
	searched := 0
	for _, h := range c.Hosts {
		filepath.WalkDir(c.Host(h.Name).Dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !d.Type().IsRegular() {
				return nil
			}
			if info, err := d.Info(); err != nil || info.Size() > 1<<20 {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			searched++
			if bytes.Contains(data, []byte(secret)) {
				t.Errorf("%s is on %s: %s", what, h.Name, path)
			}
			return nil
		})
	}
	if searched < 20 {
		t.Errorf("only %d files searched for %s: the search proves nothing", searched, what)
	}
}

// caServed is the CA the CFSSL API on the CA host's loopback answers
// with, asked there with cfssl info; empty when it does not answer.
func caServed(t *testing.T, c *sim.Cluster) []byte {
	t.Helper()
	out, err := c.Exec("ca", "/usr/local/bin/cfssl", "info", "-remote", "http://127.0.0.1:8888")
	if err != nil {
		return nil
	}
	var info struct {
		Certificate string `json:"certificate"`
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("cfssl info: %v\n%s", err, out)
	}
	return []byte(info.Certificate)
}

// ran: the step changed something on some host in this run.
func ran(r *steps.Report, step string) bool {
	for _, e := range r.Events {
		if e.Step == step && e.Kind == steps.Succeeded && !e.ReadOnly {
			return true
		}
	}
	return false
}

// keyBody is a PEM key's base64 body on one line: what a leak would show.
func keyBody(p []byte) string {
	block, _ := pem.Decode(p)
	if block == nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(block.Bytes)[:48]
}

// TestCFSSLSuppliedRoot: a root the user supplies (ca.cfssl.rootCert and
// rootKey on the operator's machine) is refused while its key file is
// readable by others, then uploaded to the CA host (key 0600) and used: the
// cluster CA the CA host makes is signed by it, and kubeadm init made the
// cluster with that CA. No --generate-ca.
func TestCFSSLSuppliedRoot(t *testing.T) {
	sim.Need(t, cluster)
	c := upWithNodeBinaries(t, sim.Topology{ID: "rt", Subnet: 28, Hosts: []sim.HostSpec{
		{Name: "lb", Role: "loadbalancer"}, {Name: "master0", Role: "master"}, {Name: "ca", Role: "ca"}}})
	rootPEM, rootCert, rootKey := makeRoot(t, c.Dir, "root")
	os.Chmod(rootKey, 0o644) // as a careless copy leaves it: refused first
	inv := editInventory(t, c.Inventory, nil, [2]string{"  os: linux\n", "  os: linux\n  cfssl:\n    rootCert: " + rootCert + "\n    rootKey: " + rootKey + "\n"})
	opts := playbooks.DefaultApplyOptions()
	opts.Kubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	apply := func() error { // runApply fails the test on a secret in the output
		_, _, _, err := runApply(t, inv, opts, nil)
		return err
	}
	caDir := filepath.Join(c.Host("ca").Dir, "etc/cfssl")
	if err := apply(); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("apply with a 0644 root key: %v, want it refused", err)
	}
	if _, err := os.Stat(filepath.Join(caDir, cfssl.RootKey)); err == nil {
		t.Fatal("the root key reached the CA host from a file readable by others")
	}
	os.Chmod(rootKey, 0o600)
	if err := apply(); err != nil {
		t.Fatalf("apply with the supplied root: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(caDir, cfssl.RootCert)); !bytes.Equal(got, rootPEM) {
		t.Error("the CA host's root is not the supplied one")
	}
	if _, err := os.Stat(filepath.Join(caDir, cfssl.RootKey)); err == nil {
		t.Error("the supplied root's key is on the CA host")
	}
	keyPEM, _ := os.ReadFile(rootKey)
	noHostHolds(t, c, "the root's key", keyBody(keyPEM))
	clusterCA, _ := os.ReadFile(filepath.Join(c.Host("master0").Dir, "etc/kubernetes/pki/ca.crt"))
	block, _ := pem.Decode(clusterCA)
	if block == nil {
		t.Fatal("no ca.crt on master0")
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	rootBlock, _ := pem.Decode(rootPEM)
	root, _ := x509.ParseCertificate(rootBlock.Bytes)
	if err := ca.CheckSignatureFrom(root); err != nil || ca.Subject.CommonName != "kubernetes" {
		t.Errorf("the cluster CA %q is not signed by the supplied root: %v", ca.Subject.CommonName, err)
	}

	// Another root in the inventory, under a running cluster: refused,
	// naming the CA host's root; nothing of the CA changes.
	_, otherCert, otherKey := makeRoot(t, c.Dir, "other-root")
	inv = editInventory(t, c.Inventory, nil, [2]string{rootCert, otherCert}, [2]string{rootKey, otherKey})
	err = apply()
	if err == nil || !strings.Contains(err.Error(), "already has another root") || !strings.Contains(err.Error(), "ca-host on ca") {
		t.Fatalf("apply with another root: %v, want the CA host's step refusing it", err)
	}
	if got, _ := os.ReadFile(filepath.Join(caDir, cfssl.RootCert)); !bytes.Equal(got, rootPEM) {
		t.Error("the CA host's root changed")
	}
	if now, _ := os.ReadFile(filepath.Join(c.Host("master0").Dir, "etc/kubernetes/pki/ca.crt")); !bytes.Equal(now, clusterCA) {
		t.Error("the cluster CA changed")
	}
}

// makeRoot makes a self-signed root CA as an operator would (any tool will
// do) and writes it to dir as name.pem and name-key.pem (0600).
func makeRoot(t *testing.T, dir, name string) (certPEM []byte, certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(42), Subject: pkix.Name{CommonName: "operator " + name, Organization: []string{"example"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	certPath, keyPath = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPEM, certPath, keyPath
}
