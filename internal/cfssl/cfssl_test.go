package cfssl

import (
	"encoding/json"
	"encoding/xml"
	"flag"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file:\n%s", name, got)
	}
}

var serve = Serve{Address: "198.18.0.16", Port: 8888}

func TestPlatformFor(t *testing.T) {
	tests := []struct {
		uname, cfssl, manager string
		wantErr               bool
	}{
		{"Linux\n", "/usr/local/bin/cfssl", "/etc/systemd/system/fleet-cfssl.service", false},
		{"SunOS", "/opt/ooce/bin/cfssl", "/var/svc/manifest/site/fleet-cfssl.xml", false},
		{"Darwin", "", "", true},
		{"", "", "", true},
	}
	for _, tt := range tests {
		p, err := PlatformFor(tt.uname)
		if (err != nil) != tt.wantErr || p.Cfssl != tt.cfssl || p.ServiceFile != tt.manager {
			t.Errorf("PlatformFor(%q) = %+v, %v", tt.uname, p, err)
		}
	}
}

func TestServiceFilesMatchGolden(t *testing.T) {
	linux, _ := PlatformFor("Linux")
	illumos, _ := PlatformFor("SunOS")
	unit, err := linux.Unit(serve)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "fleet-cfssl.service", unit)
	method, err := illumos.Method(serve)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "fleet-cfssl.method", method)
	manifest, err := illumos.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "fleet-cfssl.xml", manifest)
	if _, err := linux.Manifest(); err == nil {
		t.Error("an SMF manifest for Linux was rendered")
	}
	// Each platform's command line names its own binary and folders only.
	if !strings.Contains(string(method), "/opt/ooce/bin/cfssl serve") || strings.Contains(string(method), "/etc/cfssl/") {
		t.Errorf("illumos method uses Linux paths:\n%s", method)
	}
}

func TestArgsRefuseInjection(t *testing.T) {
	p, _ := PlatformFor("Linux")
	for _, addr := range []string{"1.2.3.4; reboot", "$(id)", "a b", ""} {
		if _, err := p.Args(Serve{Address: addr, Port: 8888}); err == nil {
			t.Errorf("address %q accepted", addr)
		}
	}
	if _, err := p.Args(Serve{Address: "::1", Port: 70000}); err == nil {
		t.Error("port 70000 accepted")
	}
}

// The service_bundle DTD (usr/src/cmd/svc/dtd/service_bundle.dtd.1), the
// parts a service manifest uses: the children of <service> in their order.
var serviceChildOrder = []string{
	"create_default_instance", "single_instance", "restarter", "dependency", "dependent",
	"method_context", "exec_method", "notification_parameters", "property_group", "instance",
	"stability", "template",
}

type node struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []node     `xml:",any"`
}

func (n node) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// TestManifestFollowsTheDTD checks what svccfg import validates: the
// document type, the bundle, one service with its children in DTD order,
// start and stop methods with timeouts, the network dependency, an
// instance, and the start method pointing at the method script.
func TestManifestFollowsTheDTD(t *testing.T) {
	p, _ := PlatformFor("SunOS")
	raw, err := p.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `<!DOCTYPE service_bundle SYSTEM "/usr/share/lib/xml/dtd/service_bundle.dtd.1">`) {
		t.Error("no service_bundle DOCTYPE")
	}
	var bundle node
	if err := xml.Unmarshal(raw, &bundle); err != nil {
		t.Fatalf("not well-formed XML: %v", err)
	}
	if bundle.XMLName.Local != "service_bundle" || bundle.attr("type") != "manifest" || bundle.attr("name") == "" {
		t.Fatalf("root %s type=%q name=%q, want a named service_bundle of type manifest", bundle.XMLName.Local, bundle.attr("type"), bundle.attr("name"))
	}
	if len(bundle.Children) != 1 || bundle.Children[0].XMLName.Local != "service" {
		t.Fatalf("bundle children %v, want one service", bundle.Children)
	}
	svc := bundle.Children[0]
	if svc.attr("name") != SMFService || svc.attr("type") != "service" || svc.attr("version") == "" {
		t.Errorf("service attributes %v", svc.Attrs)
	}
	last := -1
	methods := map[string]node{}
	var deps []string
	for _, c := range svc.Children {
		i := slices.Index(serviceChildOrder, c.XMLName.Local)
		if i < 0 {
			t.Errorf("<%s> is not a child the DTD allows in <service>", c.XMLName.Local)
			continue
		}
		if i < last {
			t.Errorf("<%s> comes after <%s>: out of DTD order", c.XMLName.Local, serviceChildOrder[last])
		}
		last = i
		switch c.XMLName.Local {
		case "exec_method":
			methods[c.attr("name")] = c
		case "dependency":
			for _, f := range c.Children {
				deps = append(deps, f.attr("value"))
			}
		}
	}
	for _, name := range []string{"start", "stop"} {
		m, ok := methods[name]
		if !ok || m.attr("type") != "method" || m.attr("exec") == "" || m.attr("timeout_seconds") == "" {
			t.Errorf("exec_method %s: %+v, want type, exec and timeout_seconds", name, m.Attrs)
		}
	}
	if got := methods["start"].attr("exec"); got != p.MethodFile+" start" {
		t.Errorf("start method runs %q, want the method script %s", got, p.MethodFile)
	}
	if !slices.Contains(deps, "svc:/milestone/network:default") {
		t.Errorf("dependencies %v: want the network milestone", deps)
	}
	if svc.Children[0].XMLName.Local != "create_default_instance" {
		t.Error("no default instance: svcadm enable would have nothing to enable")
	}
	// xmllint, where installed, checks well-formedness independently.
	if xmllint, err := exec.LookPath("xmllint"); err == nil {
		path := filepath.Join(t.TempDir(), "m.xml")
		os.WriteFile(path, raw, 0o644)
		if out, err := exec.Command(xmllint, "--noout", "--nonet", path).CombinedOutput(); err != nil {
			t.Errorf("xmllint: %v: %s", err, out)
		}
	}
}

func TestMethodScriptParses(t *testing.T) {
	p, _ := PlatformFor("SunOS")
	method, _ := p.Method(serve)
	path := filepath.Join(t.TempDir(), "method")
	if err := os.WriteFile(path, method, 0o755); err != nil {
		t.Fatal(err)
	}
	// sh -n parses without running: a quoting slip fails here.
	if out, err := exec.Command("/bin/sh", "-n", path).CombinedOutput(); err != nil {
		t.Errorf("sh -n: %v: %s", err, out)
	}
}

func TestConfig(t *testing.T) {
	raw, err := Config(Signing{OCSPURL: "http://198.18.0.16:8889"}, "/etc/cfssl/auth.key")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "config.json", raw)
	type config struct {
		Signing struct {
			Default  profile            `json:"default"`
			Profiles map[string]profile `json:"profiles"`
		} `json:"signing"`
		AuthKeys map[string]authKey `json:"auth_keys"`
	}
	var doc config
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Signing.Profiles) != 1 {
		t.Errorf("the API offers profiles %v: want the kubelet's only", slices.Collect(maps.Keys(doc.Signing.Profiles)))
	}
	for name, p := range map[string]profile{"kubelet": doc.Signing.Profiles[ProfileKubelet], "default": doc.Signing.Default} {
		if p.AuthKey != AuthKeyName || p.NameWhitelist != NodeNames || !slices.Contains(p.Usages, "client auth") || p.CAConstraint != nil {
			t.Errorf("profile %s: %+v, want the auth key, node names only, client auth, no CA", name, p)
		}
	}
	if k := doc.AuthKeys[AuthKeyName]; k.Type != "standard" || k.Key != "file:/etc/cfssl/auth.key" {
		t.Errorf("auth key %+v: want a file reference, never the key itself", k)
	}
	if _, err := Config(Signing{Expiry: time.Minute}, "/k"); err == nil {
		t.Error("a one-minute expiry was accepted")
	}
	if _, err := Config(Signing{}, ""); err == nil {
		t.Error("a config without an auth key file was rendered")
	}

	raw, err = MaterialConfig(Signing{})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, MaterialConfigFile, raw)
	var material config
	if err := json.Unmarshal(raw, &material); err != nil {
		t.Fatal(err)
	}
	if c := material.Signing.Profiles[ProfileIntermediate].CAConstraint; c == nil || !c.IsCA || !c.MaxPathLenZero {
		t.Errorf("intermediate constraint %+v: want a CA that signs leaves only", c)
	}
	if _, ok := material.Signing.Profiles[ProfileOCSP]; !ok {
		t.Error("no OCSP profile for the material script")
	}
}

func TestNodeNames(t *testing.T) {
	re := regexp.MustCompile(NodeNames)
	for name, want := range map[string]bool{
		"system:node:worker0": true, "worker0": true, "w-1.example.com": true,
		"system:masters": false, "admin": true /* a bare name is a DNS name; the CN check is fleet's own */, "system:node:": false,
		"kubernetes-admin@x": false, "system:kube-controller-manager": false, "": false,
	} {
		if re.MatchString(name) != want {
			t.Errorf("%q matches %v, want %v", name, !want, want)
		}
	}
}

func TestNewAuthKey(t *testing.T) {
	a, err := NewAuthKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewAuthKey()
	if len(a) != 32 || a == b || strings.Trim(a, "0123456789abcdef") != "" {
		t.Errorf("keys %q %q: want two different 32-digit hex keys", a, b)
	}
}
