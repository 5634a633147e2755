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
// user supplies or fleet generates there; kubeadm init on the first master
// uses it, so every certificate of the cluster chains to the CA host's.

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
	// generateRoot lets fleet make a root CA on the CA host when it has
	// none and the inventory names none.
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
	// The user's root, when the inventory names one, must be the host's:
	// the setup refuses another, and must get to say so.
	if rootCert, _, supplied := suppliedRoot(c.inv); supplied {
		cert, err := os.ReadFile(rootCert)
		if err != nil {
			return false, "", fmt.Errorf("ca.cfssl.rootCert: %w", err)
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
	// The user's root first: a key file fleet refuses stops the step
	// before anything else is written.
	if err := supplyRoot(ctx, r, c.inv, host, p); err != nil {
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
	generate := "no"
	if c.generateRoot {
		generate = "yes"
	}
	res, err := r.run(ctx, host, exec.Command("sh", "-c", p.MaterialScript(), "fleet-ca", generate, p.Path("certdb-schema.sql")))
	switch {
	case err != nil && res.ExitCode == cfssl.MaterialExitNoRoot:
		return fmt.Errorf("the CA host has no root CA: name ca.cfssl.rootCert and rootKey in the inventory, or run fleet apply --generate-ca to make one on the CA host")
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

// suppliedRoot is where the inventory names the user's root, if it does;
// relative paths are the inventory's, like the rest of it.
func suppliedRoot(inv *inventory.Inventory) (cert, key string, ok bool) {
	c := inv.CA.CFSSL
	if c == nil || c.RootCert == "" {
		return "", "", false
	}
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(filepath.Dir(inv.Path), p)
	}
	return abs(c.RootCert), abs(c.RootKey), true
}

// supplyRoot uploads the user's root (from the inventory) when the CA host
// has none; a CA host with another root is an error: fleet does not
// replace a CA under a running cluster.
func supplyRoot(ctx context.Context, r remote, inv *inventory.Inventory, host string, p cfssl.Platform) error {
	rootCert, rootKey, supplied := suppliedRoot(inv)
	if !supplied {
		return nil
	}
	cert, err := os.ReadFile(rootCert)
	if err != nil {
		return fmt.Errorf("ca.cfssl.rootCert: %w", err)
	}
	fi, err := os.Stat(rootKey)
	if err != nil {
		return fmt.Errorf("ca.cfssl.rootKey: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("ca.cfssl.rootKey %s is readable by others (mode %v): chmod 600 it", rootKey, fi.Mode().Perm())
	}
	have, err := r.query(ctx, host, exec.Command("cat", p.Path(cfssl.RootCert))+" 2>/dev/null || true")
	if err != nil {
		return err
	}
	switch {
	case have.Stdout == string(cert):
		return nil
	case have.Stdout != "":
		return fmt.Errorf("the CA host already has another root in %s; fleet does not replace a CA (remove it there by hand if you mean to)", p.Path(cfssl.RootCert))
	}
	key, err := os.ReadFile(rootKey)
	if err != nil {
		return fmt.Errorf("ca.cfssl.rootKey: %w", err)
	}
	r.redactPEM(key)
	if err := r.upload(ctx, host, p.Path(cfssl.RootKey), key, 0o600); err != nil {
		return err
	}
	return r.upload(ctx, host, p.Path(cfssl.RootCert), cert, 0o644)
}

// addSecretPEM keeps a private key out of every output: as it is, and
// base64-encoded as kubeconfigs embed it.
func (s *Session) addSecretPEM(pemKey []byte) {
	s.Redactor.Add(string(bytes.TrimSpace(pemKey)), base64.StdEncoding.EncodeToString(pemKey))
}
