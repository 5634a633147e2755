// Package dockerd emulates the part of the Docker Engine API that the docker
// CLI uses to run a service container on a simulated host: ping, version,
// container create, start, inspect, logs, wait, kill and delete, and image
// pulls (refused: the simulation has no registry).
//
// A container is a process of the host in its own mount namespace: the
// volumes are bound where the container asked, /run, /tmp and /var/log are
// private and empty, and the rest is the host's own filesystem, so an
// "nginx" image runs the host's nginx. It shares the host's network, so a
// published port must be the container's own port. That is what the real
// engine gives a stream proxy with -p PORT:PORT, seen from outside.
package dockerd

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Spec is what a create request asks for.
type Spec struct {
	Name    string
	Image   string
	Cmd     []string // entrypoint + command, resolved against the image's defaults
	Env     []string
	Labels  map[string]string
	Binds   []string // "SRC:DST" or "SRC:DST:ro"
	Ports   map[string]string
	Restart string // "", "no", "always", "unless-stopped", "on-failure"
	Network string
}

// container is one container and its current run.
type container struct {
	id      string
	spec    Spec
	created time.Time

	mu         sync.Mutex
	running    bool
	pid        int
	exitCode   int
	started    time.Time
	finished   time.Time
	stopped    bool          // stopped by the user: the restart policy does not apply
	removed    bool          // deleted: never start again
	exited     chan struct{} // closed when the current run ends; replaced at each start
	restarts   int
	log        logBuffer
	lastErrMsg string
}

func newContainer(spec Spec) *container {
	b := make([]byte, 32)
	rand.Read(b)
	done := make(chan struct{})
	close(done) // a created container is not running: waits return at once
	return &container{id: hex.EncodeToString(b), spec: spec, created: time.Now(), exited: done}
}

// InitArg is the first argument that makes this program the container's
// init: it makes the mounts, then execs the container's command.
const InitArg = "sim-dockerd-container-init"

// start runs the container's command through the init re-exec of self.
func (c *container) start(self string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return nil
	}
	if c.removed {
		return fmt.Errorf("container %s is marked for removal", c.id[:12])
	}
	cmd := exec.Command(self, append([]string{InitArg, strings.Join(c.spec.Binds, "\n")}, c.spec.Cmd...)...)
	cmd.Env = c.spec.Env
	// Own pipes, not exec's copying: a daemon's children keep them open
	// after the main process died, and Wait would wait for them.
	outR, outW, err := os.Pipe()
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	// Its own session and process group: the group is the container's
	// processes, killed together as the end of a PID namespace kills them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Setsid: true}
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		c.lastErrMsg = err.Error()
		return err
	}
	for stream, r := range map[byte]*os.File{1: outR, 2: errR} {
		go func() {
			io.Copy(&streamWriter{log: &c.log, stream: stream}, r)
			r.Close()
		}()
	}
	c.running, c.pid, c.started, c.stopped = true, cmd.Process.Pid, time.Now(), false
	exited := make(chan struct{})
	c.exited = exited
	go c.reap(cmd, exited, self)
	return nil
}

// reap records the end of a run and applies the restart policy.
func (c *container) reap(cmd *exec.Cmd, exited chan struct{}, self string) {
	err := cmd.Wait()
	// The main process is gone: so is the rest of the container, and it is
	// over only once no process of it is left (the end of a PID namespace
	// waits for them all): a port its workers held is closed by then.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	waitGroupGone(cmd.Process.Pid, 5*time.Second)
	code := 0
	if err != nil {
		code = 1
		if ee, ok := err.(*exec.ExitError); ok {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			} else {
				code = ee.ExitCode()
			}
		}
	}
	c.mu.Lock()
	c.running, c.pid, c.exitCode, c.finished = false, 0, code, time.Now()
	restart := !c.stopped && !c.removed && (c.spec.Restart == "always" || c.spec.Restart == "unless-stopped" ||
		(c.spec.Restart == "on-failure" && code != 0))
	close(exited)
	c.mu.Unlock()
	if restart {
		time.Sleep(time.Second)
		c.mu.Lock()
		c.restarts++
		c.mu.Unlock()
		c.start(self)
	}
}

// signal sends sig to the container's process. A terminating signal is a
// stop by the user: the restart policy leaves the container down.
func (c *container) signal(sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return fmt.Errorf("container %s is not running", c.id[:12])
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM || sig == syscall.SIGINT {
		c.stopped = true
	}
	return syscall.Kill(c.pid, sig)
}

// remove kills a running container and waits for its end.
func (c *container) remove() {
	c.mu.Lock()
	c.removed = true
	if c.running {
		syscall.Kill(-c.pid, syscall.SIGKILL)
	}
	exited := c.exited
	c.mu.Unlock()
	<-exited
}

// logBuffer keeps the last maxLog bytes of a container's output, with the
// stream each chunk came from, for the logs endpoint's multiplexed format.
type logBuffer struct {
	mu     sync.Mutex
	chunks []logChunk
	size   int
}

type logChunk struct {
	stream byte
	data   []byte
}

const maxLog = 1 << 20

func (l *logBuffer) add(stream byte, p []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.chunks = append(l.chunks, logChunk{stream, bytes.Clone(p)})
	l.size += len(p)
	for l.size > maxLog && len(l.chunks) > 1 {
		l.size -= len(l.chunks[0].data)
		l.chunks = l.chunks[1:]
	}
}

// writeTo writes the chosen streams in the engine's multiplexed framing:
// an 8-byte header (stream, 0, 0, 0, big-endian length) before each chunk.
func (l *logBuffer) writeTo(w io.Writer, stdout, stderr bool) error {
	l.mu.Lock()
	chunks := append([]logChunk(nil), l.chunks...)
	l.mu.Unlock()
	for _, c := range chunks {
		if (c.stream == 1 && !stdout) || (c.stream == 2 && !stderr) {
			continue
		}
		n := len(c.data)
		hdr := []byte{c.stream, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
		if _, err := w.Write(append(hdr, c.data...)); err != nil {
			return err
		}
	}
	return nil
}

type streamWriter struct {
	log    *logBuffer
	stream byte
}

func (s *streamWriter) Write(p []byte) (int, error) {
	s.log.add(s.stream, p)
	return len(p), nil
}

// ContainerInit is the container's first moments, in its fresh mount
// namespace: private /run, /tmp and /var/log, the binds (newline-separated
// "SRC:DST[:ro]"), then exec of argv. It returns only on failure.
func ContainerInit(binds string, argv []string) error {
	// Hold each source open first: the private /tmp or /run below would
	// hide a source that lives there.
	type bind struct {
		src  *os.File
		dst  string
		ro   bool
		name string
	}
	var bs []bind
	for _, b := range strings.Split(binds, "\n") {
		if b == "" {
			continue
		}
		src, dst, ro, err := ParseBind(b)
		if err != nil {
			return err
		}
		// The engine creates a missing -v source folder, as here.
		if err := os.MkdirAll(src, 0o755); err != nil && !errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("bind source %s: %w", src, err)
		}
		f, err := os.OpenFile(src, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("bind source %s: %w", src, err)
		}
		bs = append(bs, bind{f, dst, ro, src})
	}
	for _, dir := range []string{"/run", "/tmp", "/var/log"} {
		if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755"); err != nil {
			return fmt.Errorf("tmpfs on %s: %w", dir, err)
		}
	}
	// Images of daemons log under /var/log/<name>; nginx opens its
	// compiled-in error log there before it reads its config.
	os.MkdirAll("/var/log/nginx", 0o755)
	for _, b := range bs {
		if err := os.MkdirAll(b.dst, 0o755); err != nil {
			return fmt.Errorf("bind target %s: %w", b.dst, err)
		}
		src := fmt.Sprintf("/proc/self/fd/%d", b.src.Fd())
		if err := syscall.Mount(src, b.dst, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s on %s: %w", b.name, b.dst, err)
		}
		if b.ro {
			if err := syscall.Mount("", b.dst, "", syscall.MS_BIND|syscall.MS_REMOUNT|syscall.MS_RDONLY|syscall.MS_REC, ""); err != nil {
				return fmt.Errorf("read-only %s: %w", b.dst, err)
			}
		}
		b.src.Close()
	}
	if len(argv) == 0 {
		return fmt.Errorf("no command")
	}
	os.Chdir("/")
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	return syscall.Exec(path, argv, os.Environ())
}

// ParseBind splits "SRC:DST[:ro|rw]"; both paths must be absolute (named
// volumes are not emulated).
func ParseBind(b string) (src, dst string, ro bool, err error) {
	parts := strings.Split(b, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return "", "", false, fmt.Errorf("bind %q: want SRC:DST[:ro]", b)
	}
	src, dst = parts[0], parts[1]
	if !strings.HasPrefix(src, "/") || !strings.HasPrefix(dst, "/") {
		return "", "", false, fmt.Errorf("bind %q: only absolute host paths are emulated, not named volumes", b)
	}
	if len(parts) == 3 {
		for _, opt := range strings.Split(parts[2], ",") {
			switch opt {
			case "ro":
				ro = true
			case "rw", "z", "Z":
			default:
				return "", "", false, fmt.Errorf("bind %q: option %q is not emulated", b, opt)
			}
		}
	}
	return src, dst, ro, nil
}

// waitGroupGone waits until no live process is in process group pgid
// (zombies have closed their files already), at most limit.
func waitGroupGone(pgid int, limit time.Duration) {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if !groupAlive(pgid) {
			return
		}
	}
}

// groupAlive reports whether a process of group pgid runs, from /proc:
// field 5 of /proc/PID/stat is the group, field 3 the state.
func groupAlive(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command (field 2) is in parentheses and may hold spaces.
		rest := stat[bytes.LastIndexByte(stat, ')')+1:]
		f := strings.Fields(string(rest))
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}
