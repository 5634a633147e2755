package lb

import (
	"bytes"
	"flag"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func haConfig() Config {
	return Config{ListenPort: 6443, Backends: []Backend{
		{"master0", "198.18.0.11", 6443}, {"master1", "198.18.0.12", 6443}, {"master2", "198.18.0.13", 6443},
	}}
}

func TestRenderGolden(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"ha", haConfig()},
		{"tuned", func() Config {
			c := haConfig()
			c.Backends = c.Backends[:1]
			c.ListenPort, c.ConnectTimeout, c.ProxyTimeout = 8443, 1500*time.Millisecond, 10*time.Minute
			return c
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Render(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tt.name+".conf")
			if *update {
				os.WriteFile(golden, got, 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
			nginxAccepts(t, got)
		})
	}
}

// nginxAccepts runs the real `nginx -t` on the rendered block inside a
// minimal main config, as the load balancer host will.
func nginxAccepts(t *testing.T, stream []byte) {
	t.Helper()
	nginx, err := osexec.LookPath("nginx")
	if err != nil {
		if os.Getenv("FLEET_INTEGRATION") == "1" {
			t.Fatal("nginx not installed (make setup)")
		}
		t.Skip("nginx not installed")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "stream.conf"), stream, 0o644)
	main := "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n" +
		"pid " + dir + "/nginx.pid;\nerror_log " + dir + "/error.log;\n" +
		"events {}\ninclude " + dir + "/stream.conf;\n"
	os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644)
	out, err := osexec.Command(nginx, "-t", "-p", dir, "-c", filepath.Join(dir, "nginx.conf")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "test is successful") {
		t.Fatalf("nginx -t rejected the config: %v\n%s", err, out)
	}
}

func TestRenderRejects(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no backends", func(c *Config) { c.Backends = nil }, "no backends"},
		{"listen port", func(c *Config) { c.ListenPort = 0 }, "listen port"},
		{"directive injection in address", func(c *Config) { c.Backends[0].Address = "1.2.3.4:6443; include /etc/passwd" }, "neither an IP"},
		{"newline in name", func(c *Config) { c.Backends[0].Name = "m0\n}" }, "not a node name"},
		{"backend port", func(c *Config) { c.Backends[1].Port = 70000 }, "port 70000"},
		{"duplicate", func(c *Config) { c.Backends[1] = c.Backends[0]; c.Backends[1].Name = "x" }, "listed twice"},
		{"sub-millisecond timeout", func(c *Config) { c.ProxyTimeout = time.Microsecond }, "at least 1ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := haConfig()
			tt.edit(&c)
			if _, err := Render(c); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}

func TestIPv6Backend(t *testing.T) {
	c := haConfig()
	c.Backends = []Backend{{"master0", "2001:db8::11", 6443}}
	got, err := Render(c)
	if err != nil || !strings.Contains(string(got), "server [2001:db8::11]:6443; # master0") {
		t.Fatalf("%v\n%s", err, got)
	}
}

// TestContainerMain: the container's nginx.conf, with the stream block
// beside it, passes the real nginx -t on its own (no other config), and a
// missing stream file fails it: the relative include is what is checked.
func TestContainerMain(t *testing.T) {
	main, err := ContainerMain("kube-apiserver.conf")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "container-nginx.conf")
	if *update {
		os.WriteFile(golden, main, 0o644)
	}
	if want, err := os.ReadFile(golden); err != nil || !bytes.Equal(main, want) {
		t.Errorf("got\n%s\nwant (%v)\n%s", main, err, want)
	}
	for _, bad := range []string{"", "/etc/passwd", "../x.conf", "a.conf; daemon on", "a.conf\n"} {
		if _, err := ContainerMain(bad); err == nil {
			t.Errorf("ContainerMain(%q) accepted", bad)
		}
	}
	nginx, err := osexec.LookPath("nginx")
	if err != nil {
		if os.Getenv("FLEET_INTEGRATION") == "1" {
			t.Fatal("nginx not installed (make setup)")
		}
		t.Skip("nginx not installed")
	}
	stream, err := Render(haConfig())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), ".staging")
	os.Mkdir(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "nginx.conf"), main, 0o644)
	check := func() ([]byte, error) {
		return osexec.Command(nginx, "-t", "-c", filepath.Join(dir, "nginx.conf")).CombinedOutput()
	}
	if out, err := check(); err == nil {
		t.Fatalf("nginx -t passed without the stream file:\n%s", out)
	}
	os.WriteFile(filepath.Join(dir, "kube-apiserver.conf"), stream, 0o644)
	if out, err := check(); err != nil || !strings.Contains(string(out), "test is successful") {
		t.Fatalf("nginx -t rejected the container config: %v\n%s", err, out)
	}
}

// TestNodeProxyMain: the node-local proxy's whole config, listening on
// 127.0.0.1 only, matches its golden file and passes the real nginx -t
// on its own.
func TestNodeProxyMain(t *testing.T) {
	c := haConfig()
	c.ListenAddress, c.ListenPort = "127.0.0.1", 6443
	stream, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	main, err := NodeProxyMain(stream, filepath.Join(dir, "proxy.pid"), filepath.Join(dir, "proxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(main, []byte("listen 127.0.0.1:6443;")) || bytes.Count(main, []byte(Header)) != 1 {
		t.Errorf("node proxy config:\n%s", main)
	}
	fixed, _ := NodeProxyMain(stream, "/run/fleet-apiserver-proxy.pid", "/var/log/fleet-apiserver-proxy.log")
	golden := filepath.Join("testdata", "node-proxy.conf")
	if *update {
		os.WriteFile(golden, fixed, 0o644)
	}
	if want, err := os.ReadFile(golden); err != nil || !bytes.Equal(fixed, want) {
		t.Errorf("got\n%s\nwant (%v)\n%s", fixed, err, want)
	}
	for _, bad := range []string{"", "run/x.pid", "/run/x.pid; daemon on"} {
		if _, err := NodeProxyMain(stream, bad, "/var/log/x.log"); err == nil {
			t.Errorf("NodeProxyMain with pid file %q accepted", bad)
		}
	}
	if _, err := Render(Config{ListenAddress: "localhost", ListenPort: 6443, Backends: c.Backends}); err == nil {
		t.Error("a listen address that is no IP accepted")
	}
	nginx, err := osexec.LookPath("nginx")
	if err != nil {
		t.Skip("nginx not installed")
	}
	os.WriteFile(filepath.Join(dir, "nginx.conf"), main, 0o644)
	if out, err := osexec.Command(nginx, "-t", "-c", filepath.Join(dir, "nginx.conf")).CombinedOutput(); err != nil || !strings.Contains(string(out), "test is successful") {
		t.Fatalf("nginx -t rejected the node proxy config: %v\n%s", err, out)
	}
}
