package dockerd

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary be a container's init, as sim-dockerd is.
func TestMain(m *testing.M) {
	if len(os.Args) > 2 && os.Args[1] == InitArg {
		err := ContainerInit(os.Args[2], os.Args[3:])
		fmt.Fprintln(os.Stderr, "container init:", err)
		os.Exit(127)
	}
	os.Exit(m.Run())
}

func TestParseBind(t *testing.T) {
	for _, tc := range []struct {
		in       string
		src, dst string
		ro, bad  bool
	}{
		{in: "/etc/fleet/lb:/etc/nginx/fleet:ro", src: "/etc/fleet/lb", dst: "/etc/nginx/fleet", ro: true},
		{in: "/a:/b", src: "/a", dst: "/b"},
		{in: "/a:/b:rw", src: "/a", dst: "/b"},
		{in: "data:/b", bad: true},    // named volume
		{in: "/a:/b:ro:x", bad: true}, // too many fields
		{in: "/a:/b:shared", bad: true},
		{in: "/a", bad: true},
	} {
		src, dst, ro, err := ParseBind(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && (src != tc.src || dst != tc.dst || ro != tc.ro)) {
			t.Errorf("ParseBind(%q) = %q %q %v %v", tc.in, src, dst, ro, err)
		}
	}
}

func TestImageCmd(t *testing.T) {
	for ref, present := range map[string]bool{
		"nginx": true, "nginx:1.27": true, "docker.io/library/nginx:stable": true,
		"localhost:5000/nginx": true, "nginx@sha256:abc": true,
		"haproxy": false, "nginx-proxy": false, "localhost:5000/x:nginx": false,
	} {
		if got := imageCmd(ref) != nil; got != present {
			t.Errorf("imageCmd(%q) present = %v, want %v", ref, got, present)
		}
	}
}

// needed skips a test that cannot run here, unless FLEET_INTEGRATION=1
// says the machine is set up for it (make test): then it fails, so that
// CI cannot pass with the test skipped.
func needed(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("FLEET_INTEGRATION") == "1" {
		t.Fatal(why)
	}
	t.Skip(why)
}

// TestDockerCLI drives the emulated engine with the real docker CLI and a
// real nginx, the way fleet's load-balancer step does: create, start,
// reload by HUP after the bound config folder changed, logs, wait, rm.
func TestDockerCLI(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		needed(t, "no docker CLI (scripts/setup.sh installs one)")
	}
	if os.Geteuid() != 0 {
		needed(t, "containers need mount namespaces: run as root")
	}
	if _, err := os.Stat("/usr/sbin/nginx"); err != nil {
		needed(t, "no nginx (scripts/setup.sh installs it)")
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	srv := &http.Server{Handler: NewServer(self)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	run := func(args ...string) (string, error) {
		cmd := exec.Command(docker, args...)
		cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+sock, "DOCKER_CONFIG="+dir)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	must := func(args ...string) string {
		t.Helper()
		out, err := run(args...)
		if err != nil {
			t.Fatalf("docker %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return out
	}

	if v := must("version", "--format", "{{.Server.Version}} {{.Server.APIVersion}}"); v != "20.10.24-sim "+APIVersion {
		t.Errorf("server version %q", v)
	}

	port := freePort(t)
	conf := filepath.Join(dir, "conf")
	os.Mkdir(conf, 0o755)
	writeConf := func(reply string) {
		t.Helper()
		c := fmt.Sprintf("include /etc/nginx/modules-enabled/*.conf;\nerror_log stderr notice;\nevents {}\nstream {\n  server { listen 127.0.0.1:%d; return %q; }\n}\n", port, reply)
		if err := os.WriteFile(filepath.Join(conf, "nginx.conf.tmp"), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(conf, "nginx.conf.tmp"), filepath.Join(conf, "nginx.conf")); err != nil {
			t.Fatal(err)
		}
	}
	writeConf("one")
	publish := fmt.Sprintf("%d:%d", port, port)
	id := must("create", "--name", "lb", "--restart", "unless-stopped", "-p", publish,
		"-v", conf+":/run/conf:ro", "--label", "fleet.role=lb", "nginx:1.27",
		"nginx", "-c", "/run/conf/nginx.conf", "-g", "daemon off;")
	if len(id) != 64 {
		t.Fatalf("create printed %q, want a container id", id)
	}
	if out, err := run("create", "--name", "lb", "nginx"); err == nil || !strings.Contains(out, "already in use") {
		t.Errorf("second container named lb: %v %s", err, out)
	}
	must("start", "lb")
	if got := readFrom(t, port); got != "one" {
		logs, _ := run("logs", "lb")
		st, _ := run("container", "inspect", "-f", "{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}", "lb")
		t.Fatalf("nginx in the container answered %q, want one; state %s; logs:\n%s", got, st, logs)
	}
	if st := must("container", "inspect", "-f", "{{.State.Running}} {{.Config.Image}} {{index .Config.Labels \"fleet.role\"}} {{.HostConfig.RestartPolicy.Name}}", "lb"); st != "true nginx:1.27 lb unless-stopped" {
		t.Errorf("inspect: %q", st)
	}

	// A renamed file in the bound folder reaches the container; HUP reloads.
	writeConf("two")
	must("kill", "-s", "HUP", "lb")
	deadline := time.Now().Add(10 * time.Second)
	for readFrom(t, port) != "two" {
		if time.Now().After(deadline) {
			t.Fatal("nginx did not serve the new config after HUP")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if logs := must("logs", "lb"); !strings.Contains(logs, "reconfiguring") {
		t.Errorf("logs lack nginx's reload message: %q", logs)
	}

	// The bind is read-only, the exit code comes back through wait.
	must("create", "--name", "probe", "-v", conf+":/run/conf:ro", "nginx", "sh", "-c", "echo out; touch /run/conf/x")
	must("start", "probe")
	if code := must("wait", "probe"); code == "0" {
		t.Error("writing into a read-only bind succeeded")
	}
	if logs := must("logs", "probe"); !strings.Contains(logs, "out") || !strings.Contains(logs, "Read-only file system") {
		t.Errorf("probe logs: %q", logs)
	}
	if _, err := os.Stat(filepath.Join(conf, "x")); err == nil {
		t.Error("the probe wrote into the host folder")
	}

	// What the emulation cannot do, it refuses with a reason.
	if out, err := run("create", "-p", "1:2", "nginx"); err == nil || !strings.Contains(out, "shares the host's network") {
		t.Errorf("-p 1:2: %v %s", err, out)
	}
	if out, err := run("create", "haproxy:2.9"); err == nil || !strings.Contains(out, "no registry") {
		t.Errorf("missing image: %v %s", err, out)
	}

	if ps := must("ps", "--format", "{{.Names}} {{.State}}"); ps != "lb running" {
		t.Errorf("docker ps: %q", ps)
	}
	if ps := must("ps", "-a", "--format", "{{.Names}} {{.State}}"); ps != "probe exited\nlb running" {
		t.Errorf("docker ps -a: %q", ps)
	}

	// rm -f kills nginx: the port closes, the name is free again.
	must("rm", "-f", "lb", "probe")
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Error("port still open after rm -f")
	}
	if out, err := run("container", "inspect", "lb"); err == nil || !strings.Contains(strings.ToLower(out), "no such container") {
		t.Errorf("inspect after rm: %v %s", err, out)
	}
}

// readFrom reads what the server on port says, or "" when it does not answer.
func readFrom(t *testing.T, port int) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			var b bytes.Buffer
			io.Copy(&b, c)
			c.Close()
			return b.String()
		}
		if time.Now().After(deadline) {
			return ""
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
