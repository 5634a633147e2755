package cfssl

import (
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMaterialScript runs the material script with the real cfssl in a
// scratch config folder: a root, the cluster CA it signs (CN kubernetes, a
// CA that may sign leaves only), the OCSP signer, keys 0600, the database.
// A second run changes nothing; a run interrupted before the cluster CA's
// certificate was in place is finished; without a root and without leave
// to generate one it stops with its own exit code.
func TestMaterialScript(t *testing.T) {
	p, schema := materialFolder(t)
	run := func(generate string) (string, error) {
		out, err := exec.Command("sh", "-c", p.MaterialScript(), "material", generate, schema).CombinedOutput()
		return string(out), err
	}

	out, err := run(RootOnHost)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != MaterialExitNoRoot || !strings.Contains(out, "no root CA") {
		t.Fatalf("without a root and without --generate-ca: %v %s", err, out)
	}
	if out, err := run(RootMakeOnHost); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	read := func(name string) *x509.Certificate {
		t.Helper()
		data, err := os.ReadFile(p.Path(name))
		if err != nil {
			t.Fatal(err)
		}
		c, err := parseCert(data)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	root, ca, ocsp := read(RootCert), read(CACert), read(OCSPCert)
	if !root.IsCA || !ca.IsCA || ca.Subject.CommonName != "kubernetes" || !ca.MaxPathLenZero {
		t.Errorf("root CA %v, cluster CA %v %q max path zero %v", root.IsCA, ca.IsCA, ca.Subject.CommonName, ca.MaxPathLenZero)
	}
	if err := ca.CheckSignatureFrom(root); err != nil {
		t.Errorf("the cluster CA is not signed by the root: %v", err)
	}
	if err := ocsp.CheckSignatureFrom(ca); err != nil || !slices.Contains(ocsp.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
		t.Errorf("OCSP signer: %v, usages %v", err, ocsp.ExtKeyUsage)
	}
	for _, k := range []string{RootKey, CAKey, "ocsp-key.pem"} {
		if fi, err := os.Stat(p.Path(k)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want 0600", k, err, fi)
		}
	}
	if leftovers, _ := filepath.Glob(p.Path("*.tmp*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
	if out, err := exec.Command("sqlite3", p.Path("certdb.db"), ".tables").CombinedOutput(); err != nil || !strings.Contains(string(out), "certificates") {
		t.Errorf("certdb: %v %s", err, out)
	}

	// Again: nothing is remade.
	if out, err := run(RootMakeOnHost); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if again := read(CACert); !again.Equal(ca) || !read(RootCert).Equal(root) {
		t.Error("a second run replaced the material")
	}

	// Interrupted after the new key, before its certificate: finished.
	os.Remove(p.Path(CACert))
	if out, err := run(RootOnHost); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	fresh := read(CACert)
	if fresh.Equal(ca) || fresh.CheckSignatureFrom(root) != nil {
		t.Error("the cluster CA was not remade under the same root")
	}
	keyPEM, _ := os.ReadFile(p.Path(CAKey))
	if !strings.Contains(string(keyPEM), "PRIVATE KEY") {
		t.Error("no cluster CA key")
	}
}

// TestStartScripts: each platform's start script parses, and names only
// its own service manager.
func TestStartScripts(t *testing.T) {
	for _, os := range []string{"Linux", "SunOS"} {
		p, _ := PlatformFor(os)
		script, err := p.StartScript(serve)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("sh", "-n", "-c", script).CombinedOutput(); err != nil {
			t.Errorf("%s: %v %s", os, err, out)
		}
		smf := strings.Contains(script, "svcadm")
		if smf != (os == "SunOS") || strings.Contains(script, "systemctl") == (os == "SunOS") {
			t.Errorf("%s start script uses the wrong service manager:\n%s", os, script)
		}
		golden(t, "start-"+strings.ToLower(os)+".sh", []byte(script))
	}
	if _, err := (Platform{OS: "Linux"}).StartScript(Serve{Address: "a; b", Port: 1}); err == nil {
		t.Error("a bad address was accepted")
	}
}

// TestIllumosStartCaptured runs the illumos start script as fleet sends it,
// with svccfg, svcadm and svcs replaced by recorders that log their
// arguments and answer as SMF would in three states of the service: the
// calls must be exactly the golden ones. (No illumos here: what runs is
// the script; what is faked is only the service manager's side.)
func TestIllumosStartCaptured(t *testing.T) {
	p, _ := PlatformFor("SunOS")
	script, err := p.StartScript(serve)
	if err != nil {
		t.Fatal(err)
	}
	for _, state := range []string{"absent", "online", "maintenance"} {
		t.Run(state, func(t *testing.T) {
			bin := t.TempDir()
			log := filepath.Join(bin, "calls")
			answer := ""
			if state != "absent" {
				answer = "echo " + state
			}
			for name, body := range map[string]string{
				"svccfg": "",
				"svcadm": "",
				// svcs -H -o state FMRI: nothing (and an error) for an unknown service.
				"svcs": "[ -n \"" + answer + "\" ] || exit 1\n" + answer,
			} {
				rec := "#!/bin/sh\necho \"" + name + " $*\" >> " + log + "\n" + body + "\n"
				if err := os.WriteFile(filepath.Join(bin, name), []byte(rec), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			cmd := exec.Command("sh", "-c", script, "fleet-ca", p.ServiceFile)
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			calls, _ := os.ReadFile(log)
			golden(t, "smf-calls-"+state+".txt", calls)
		})
	}
}

// materialFolder lays out a scratch CA host folder as fleet writes it
// (configs, auth key, CSRs) for the real cfssl, and the schema file.
func materialFolder(t *testing.T) (Platform, string) {
	t.Helper()
	bin := realCfssl(t)
	dir := t.TempDir()
	p := Platform{OS: "Linux", Cfssl: bin, Cfssljson: filepath.Join(filepath.Dir(bin), "cfssljson"),
		ConfigDir: filepath.Join(dir, "etc"), DataDir: filepath.Join(dir, "lib")}
	os.Mkdir(p.ConfigDir, 0o700)
	key, _ := NewAuthKey()
	cfg, err := Config(Signing{}, p.Path(AuthFile))
	if err != nil {
		t.Fatal(err)
	}
	material, err := MaterialConfig(Signing{})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{AuthFile: []byte(key), "config.json": cfg, MaterialConfigFile: material}
	csrs, err := CSRs("prod")
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range csrs {
		files[name] = body
	}
	for name, body := range files {
		if err := os.WriteFile(p.Path(name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	schema := filepath.Join(dir, "schema.sql")
	if err := os.WriteFile(schema, []byte(Schema), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, schema
}

// TestMaterialScriptRootOffHost: with the root's key on the operator's
// machine, the script makes the cluster CA's key and request and stops;
// the request signed off the host (SignCA) and uploaded, the next run puts
// the cluster CA in place and signs the OCSP signer with it. No root key
// is ever on the host.
func TestMaterialScriptRootOffHost(t *testing.T) {
	p, schema := materialFolder(t)
	rootPEM, rootKey, err := NewRoot("prod", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p.Path(RootCert), rootPEM, 0o644)
	run := func() (int, string) {
		out, err := exec.Command("sh", "-c", p.MaterialScript(), "material", RootOffHost, schema).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	if code, out := run(); code != MaterialExitSignCSR {
		t.Fatalf("first run: exit %d, want %d (a request to sign)\n%s", code, MaterialExitSignCSR, out)
	}
	csr, err := os.ReadFile(p.Path(CARequest))
	if err != nil {
		t.Fatal(err)
	}
	if code, _ := run(); code != MaterialExitSignCSR {
		t.Fatal("a second run before the signature did not wait again")
	}
	if again, _ := os.ReadFile(p.Path(CARequest)); string(again) != string(csr) {
		t.Error("a second run before the signature made a new request")
	}
	signed, err := SignCA(csr, rootPEM, rootKey, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p.Path(CASigned), signed, 0o644)
	if code, out := run(); code != 0 {
		t.Fatalf("after the signature: exit %d\n%s", code, out)
	}
	root, _ := parseCert(rootPEM)
	caPEM, _ := os.ReadFile(p.Path(CACert))
	ca, err := parseCert(caPEM)
	if err != nil || ca.CheckSignatureFrom(root) != nil || !ca.IsCA || !ca.MaxPathLenZero || ca.Subject.CommonName != "kubernetes" {
		t.Fatalf("cluster CA %v: want kubernetes, a CA that signs leaves only, under the root", err)
	}
	ocspPEM, _ := os.ReadFile(p.Path(OCSPCert))
	if ocsp, err := parseCert(ocspPEM); err != nil || ocsp.CheckSignatureFrom(ca) != nil {
		t.Errorf("OCSP signer: %v", err)
	}
	if _, err := os.Stat(p.Path(RootKey)); err == nil {
		t.Error("a root key is on the host")
	}
	if leftovers, _ := filepath.Glob(p.Path("*.tmp*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
	if code, _ := run(); code != 0 {
		t.Error("a run with everything in place did not succeed")
	}
}
