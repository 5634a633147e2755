package playbooks

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"os"
	pathpkg "path"
	"path/filepath"
	"strconv"
	"time"

	"github.com/fleetops/fleet/internal/cfssl"
	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/inventory"
)

// The CA host (seed 000): the CFSSL API that signs kubelet certificates
// with the cluster CA. The cluster CA is an intermediate under a root the
// user supplies or fleet generates, both on the operator's machine: the CA
// host makes the cluster CA's key and request, fleet signs it here and
// uploads the certificate, so the root's key never leaves this machine
// (unless --root-on-ca-host asks for the seed's homelab layout). kubeadm
// init on the first master uses the cluster CA, so every certificate of
// the cluster chains to the CA host's.

// caPlatform asks the CA host what it is (uname -s) and returns the paths
// and service manager of that platform; the answer is kept for the run.
func (s *Session) caPlatform(ctx context.Context) (cfssl.Platform, error) {
	s.caMu.Lock()
	defer s.caMu.Unlock()
	return s.caPlatformLocked(ctx)
}

func (s *Session) caPlatformLocked(ctx context.Context) (cfssl.Platform, error) {
	if s.caPlat.OS != "" {
		return s.caPlat, nil
	}
	res, err := s.run(ctx, s.Inv.CA.Name, "uname -s")
	if err != nil {
		return cfssl.Platform{}, err
	}
	p, err := cfssl.PlatformFor(res.Stdout)
	if err != nil {
		return cfssl.Platform{}, err
	}
	s.caPlat = p
	return p, nil
}

// caServe is where the API listens: the CA host's loopback only. Nothing
// on the network reaches it; fleet does through its SSH connection to the
// CA host (a forwarded connection, as ssh -L), so the answers come over
// the host-key-verified channel and the auth key alone signs nothing.
func caServe(inv *inventory.Inventory) cfssl.Serve {
	return cfssl.Serve{Address: caListen, Port: inv.CFSSLPort()}
}

const caListen = "127.0.0.1"

func caURL(inv *inventory.Inventory) string {
	return "http://" + net.JoinHostPort(caListen, strconv.Itoa(inv.CFSSLPort()))
}

// caHTTP is an HTTP client whose connections go through the SSH
// connection to the CA host (the session's current one: a client kept for
// the run survives a reconnect).
func caHTTP(_ context.Context, pr probe, inv *inventory.Inventory, timeout time.Duration) (*http.Client, error) {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		forward, err := pr.dialer(ctx, inv.CA.Name)
		if err != nil {
			return nil, err
		}
		return forward(ctx, network, addr)
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: dial, Proxy: nil, DisableKeepAlives: true}}, nil
}

// caFiles are the files fleet writes to the CA host (beside the material
// and the auth key, which it makes only once), by path.
func caFiles(inv *inventory.Inventory, p cfssl.Platform) (map[string][]byte, error) {
	files := map[string][]byte{}
	cfg, err := cfssl.Config(cfssl.Signing{}, p.Path(cfssl.AuthFile))
	if err != nil {
		return nil, err
	}
	files[p.Path("config.json")] = cfg
	material, err := cfssl.MaterialConfig(cfssl.Signing{})
	if err != nil {
		return nil, err
	}
	files[p.Path(cfssl.MaterialConfigFile)] = material
	db, err := cfssl.DBConfig(p.Path("certdb.db"))
	if err != nil {
		return nil, err
	}
	files[p.Path("db-config.json")] = db
	csrs, err := cfssl.CSRs(inv.Cluster.Name)
	if err != nil {
		return nil, err
	}
	for name, body := range csrs {
		files[p.Path(name)] = body
	}
	files[p.Path("certdb-schema.sql")] = []byte(cfssl.Schema)
	if p.MethodFile != "" {
		method, err := p.Method(caServe(inv))
		if err != nil {
			return nil, err
		}
		manifest, err := p.Manifest()
		if err != nil {
			return nil, err
		}
		files[p.MethodFile], files[p.ServiceFile] = method, manifest
	} else {
		unit, err := p.Unit(caServe(inv))
		if err != nil {
			return nil, err
		}
		files[p.ServiceFile] = unit
	}
	return files, nil
}

// caHostPhase sets up the CFSSL API on the CA host: signing config, auth
// key, root, cluster CA, OCSP signer, certdb and its service.
type caHostPhase struct {
	inv *inventory.Inventory
	// rootOnHost makes a generated root on the CA host instead (the seed's
	// homelab layout), its key kept there.
	rootOnHost bool
	// generateRoot lets fleet make a root CA when the CA host has none and
	// the inventory names none: on this machine, beside the inventory.
	generateRoot bool
}

// check: every file is what fleet would write, the material and the auth
// key exist, and the API answers with the host's cluster CA.
func (c *caHostPhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	p, err := pr.caPlatform(ctx)
	if err != nil {
		return false, "", err
	}
	want, err := caFiles(c.inv, p)
	if err != nil {
		return false, "", err
	}
	// A root on this machine, when there is one, must be the host's: the
	// setup refuses another, and must get to say so.
	if root := rootOf(c.inv); root.supplied || root.exists() {
		cert, err := os.ReadFile(root.cert)
		if err != nil {
			return false, "", fmt.Errorf("the root certificate: %w", err)
		}
		want[p.Path(cfssl.RootCert)] = cert
	}
	// Every apply checks the CA host: one round trip for what fleet
	// wrote and the certificates, one for the auth key (never read).
	paths := []string{p.Path(cfssl.OCSPCert), p.Path(cfssl.CACert)}
	for path := range want {
		paths = append(paths, path)
	}
	got, err := pr.readFiles(ctx, host, paths...)
	if err != nil {
		return false, "", err
	}
	for path, w := range want {
		if !bytes.Equal(got[path], w) {
			return false, "", nil
		}
	}
	caPEM, hasCA := got[p.Path(cfssl.CACert)]
	if _, hasOCSP := got[p.Path(cfssl.OCSPCert)]; !hasCA || !hasOCSP {
		return false, "", nil
	}
	if ok, err := pr.allExist(ctx, host, p.Path(cfssl.AuthFile)); err != nil || !ok {
		return false, "", err
	}
	if err := caAnswers(ctx, pr, c.inv, caPEM); err != nil {
		return false, "", nil
	}
	return true, "the CFSSL API on " + p.OS + " serves the cluster CA", nil
}

// caAnswers: /api/v1/cfssl/info returns the CA host's ca.pem (want).
func caAnswers(ctx context.Context, pr probe, inv *inventory.Inventory, want []byte) error {
	hc, err := caHTTP(ctx, pr, inv, 5*time.Second)
	if err != nil {
		return err
	}
	c, err := cfssl.NewClient(caURL(inv), hc, "")
	if err != nil {
		return err
	}
	got, err := c.Info(ctx, "")
	if err != nil {
		return err
	}
	return cfssl.SameCA(got, want)
}

// run writes the configuration, makes the auth key and the material that
// are missing, and (re)starts the service.
func (c *caHostPhase) run(ctx context.Context, r remote, host string) error {
	p, err := r.caPlatform(ctx)
	if err != nil {
		return err
	}
	if err := r.ensureDir(ctx, host, p.ConfigDir, 0o700); err != nil {
		return err
	}
	// The root first: a key file fleet refuses stops the step before
	// anything else is written.
	mode, root, err := c.rootMode(ctx, r, host, p)
	if err != nil {
		return err
	}
	// The auth key is made once, on the first run, and kept: workers and
	// cloud-init data of earlier runs sign with it.
	if ok, err := r.allExist(ctx, host, p.Path(cfssl.AuthFile)); err != nil {
		return err
	} else if !ok {
		key, err := cfssl.NewAuthKey()
		if err != nil {
			return err
		}
		r.redact(key)
		if err := r.upload(ctx, host, p.Path(cfssl.AuthFile), []byte(key), 0o600); err != nil {
			return err
		}
	}
	files, err := caFiles(c.inv, p)
	if err != nil {
		return err
	}
	for path, data := range files {
		if err := r.ensureDir(ctx, host, pathpkg.Dir(path), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o600)
		switch path {
		case p.ServiceFile:
			mode = 0o644
		case p.MethodFile:
			mode = 0o755
		}
		if err := r.upload(ctx, host, path, data, mode); err != nil {
			return err
		}
	}
	material := exec.Command("sh", "-c", p.MaterialScript(), "fleet-ca", mode, p.Path("certdb-schema.sql"))
	res, err := r.run(ctx, host, material)
	if err != nil && res.ExitCode == cfssl.MaterialExitSignCSR && root != nil {
		if err := signOffHost(ctx, r, host, p, root); err != nil {
			return err
		}
		res, err = r.run(ctx, host, material)
	}
	switch {
	case err != nil && res.ExitCode == cfssl.MaterialExitNoRoot:
		return fmt.Errorf("the CA host has no root CA to sign the cluster CA with: name ca.cfssl.rootCert and rootKey in the inventory, or run fleet apply --generate-ca to make one on this machine")
	case err != nil:
		return fmt.Errorf("make the CA material: %w", err)
	}
	start, err := p.StartScript(caServe(c.inv))
	if err != nil {
		return err
	}
	if _, err := r.run(ctx, host, exec.Command("sh", "-c", start, "fleet-ca", p.ServiceFile)); err != nil {
		return fmt.Errorf("start the CFSSL API: %w", err)
	}
	caPEM, err := r.readFile(ctx, host, p.Path(cfssl.CACert))
	if err != nil {
		return err
	}
	var last error
	err = pollUntil(ctx, 200*time.Millisecond, 30*time.Second, func(ctx context.Context) (bool, error) {
		last = caAnswers(ctx, r.probe, c.inv, caPEM)
		return last == nil, nil
	})
	if err == errPollTimeout {
		return fmt.Errorf("the CFSSL API does not answer at %s: %w", caURL(c.inv), last)
	}
	return err
}

// offHostRoot is a root whose key is on the operator's machine: the
// inventory's (ca.cfssl.rootCert and rootKey), or the one --generate-ca
// made beside the inventory. The CA host gets its certificate only.
type offHostRoot struct {
	cert, key string // paths on this machine
	supplied  bool   // named in the inventory (else made by fleet)
}

// rootOf is the inventory's root, or else the one fleet makes (or made)
// beside the inventory; relative paths are the inventory's.
func rootOf(inv *inventory.Inventory) offHostRoot {
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(filepath.Dir(inv.Path), p)
	}
	if c := inv.CA.CFSSL; c != nil && c.RootCert != "" {
		return offHostRoot{cert: abs(c.RootCert), key: abs(c.RootKey), supplied: true}
	}
	base := abs(inv.Cluster.Name + "-root-ca")
	return offHostRoot{cert: base + ".pem", key: base + "-key.pem"}
}

// exists: both files are there (a made root is kept and reused).
func (r offHostRoot) exists() bool {
	_, errCert := os.Stat(r.cert)
	_, errKey := os.Stat(r.key)
	return errCert == nil && errKey == nil
}

// read returns the root's certificate and key; a key others may read is
// refused.
func (r offHostRoot) read() (cert, key []byte, err error) {
	what := func(f string) string {
		if r.supplied {
			return "ca.cfssl." + f
		}
		return "the root made by --generate-ca"
	}
	if cert, err = os.ReadFile(r.cert); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what("rootCert"), err)
	}
	fi, err := os.Stat(r.key)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what("rootKey"), err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, nil, fmt.Errorf("%s %s is readable by others (mode %v): chmod 600 it", what("rootKey"), r.key, fi.Mode().Perm())
	}
	if key, err = os.ReadFile(r.key); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", what("rootKey"), err)
	}
	return cert, key, nil
}

// make creates the root on this machine, key 0600 first, then the
// certificate; a file already there is never overwritten.
func (r offHostRoot) make(cluster string) error {
	for _, f := range []string{r.cert, r.key} {
		if _, err := os.Stat(f); err == nil {
			return fmt.Errorf("%s exists without its pair: fleet does not overwrite a root; move it away or complete the pair", f)
		}
	}
	cert, key, err := cfssl.NewRoot(cluster, time.Now())
	if err != nil {
		return err
	}
	if err := writeFileAtomic(r.key, key, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(r.cert, cert, 0o644)
}

// rootMode decides where the cluster CA's root is and readies it: on this
// machine (the inventory's, or made or reused by --generate-ca, its
// certificate uploaded), or on the CA host (what it has, or made there with
// --root-on-ca-host). It returns the material script's mode and, off the
// host, the root.
func (c *caHostPhase) rootMode(ctx context.Context, r remote, host string, p cfssl.Platform) (string, *offHostRoot, error) {
	have, err := r.query(ctx, host, exec.Command("cat", p.Path(cfssl.RootCert))+" 2>/dev/null || true")
	if err != nil {
		return "", nil, err
	}
	root := rootOf(c.inv)
	switch {
	case root.supplied || root.exists():
	case have.Stdout != "":
		return cfssl.RootOnHost, nil, nil // the host's own root, as it was
	case c.generateRoot && c.rootOnHost:
		r.note("ca-host", host, "making the root CA on the CA host, its key kept there (--root-on-ca-host: the homelab layout; losing the CA host loses the root)")
		return cfssl.RootMakeOnHost, nil, nil
	case c.generateRoot:
		if err := root.make(c.inv.Cluster.Name); err != nil {
			return "", nil, err
		}
		r.note("ca-host", host, "made the root CA on this machine: "+root.cert+" and its key "+root.key+" (0600): keep the key offline; the CA host gets the certificate only")
	default:
		return cfssl.RootOnHost, nil, nil // the script says there is no root
	}
	cert, _, err := root.read()
	if err != nil {
		return "", nil, err
	}
	switch {
	case have.Stdout == string(cert):
	case have.Stdout != "":
		return "", nil, fmt.Errorf("the CA host already has another root in %s than %s; fleet does not replace a CA (remove it there by hand if you mean to)", p.Path(cfssl.RootCert), root.cert)
	default:
		if err := r.upload(ctx, host, p.Path(cfssl.RootCert), cert, 0o644); err != nil {
			return "", nil, err
		}
	}
	return cfssl.RootOffHost, &root, nil
}

// signOffHost signs the cluster CA's request the CA host made with the
// root on this machine, and uploads the certificate only.
func signOffHost(ctx context.Context, r remote, host string, p cfssl.Platform, root *offHostRoot) error {
	csr, err := r.readFile(ctx, host, p.Path(cfssl.CARequest))
	if err != nil {
		return err
	}
	cert, key, err := root.read()
	if err != nil {
		return err
	}
	r.redactPEM(key)
	signed, err := cfssl.SignCA(csr, cert, key, time.Now())
	if err != nil {
		return fmt.Errorf("sign the cluster CA with the root %s: %w", root.cert, err)
	}
	return r.upload(ctx, host, p.Path(cfssl.CASigned), signed, 0o644)
}

// addSecretPEM keeps a private key out of every output: as it is, and
// base64-encoded as kubeconfigs embed it.
func (s *Session) addSecretPEM(pemKey []byte) {
	s.Redactor.Add(string(bytes.TrimSpace(pemKey)), base64.StdEncoding.EncodeToString(pemKey))
}
