package mux_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/mux"
	"github.com/fleetops/fleet/testing/sim"
)

var cluster *sim.Cluster

func TestMain(m *testing.M) {
	os.Exit(sim.RunTests(m, sim.Sized("mx", 48, 2, 1), &cluster))
}

// holder runs a connection holder in a folder of its own for the test; its
// Dialer logs in to the named simulated host as root, and counts.
type holder struct {
	dir    string
	dials  atomic.Int32
	mu     sync.Mutex
	conns  []*exec.Conn
	served chan error
}

func startHolder(t *testing.T, idle time.Duration) *holder {
	t.Helper()
	sim.Need(t, cluster)
	h := &holder{dir: filepath.Join(t.TempDir(), "mux"), served: make(chan error, 1)}
	keys, err := exec.LoadHostKeys(cluster.KnownHosts, false)
	if err != nil {
		t.Fatal(err)
	}
	s := &mux.Server{Dir: h.dir, Idle: idle, Dial: func(ctx context.Context, target json.RawMessage) (*ssh.Client, error) {
		h.dials.Add(1)
		var name string
		if err := json.Unmarshal(target, &name); err != nil {
			return nil, err
		}
		addr := ""
		for _, host := range cluster.Hosts {
			if host.Name == name {
				addr = host.Address
			}
		}
		if addr == "" {
			return nil, fmt.Errorf("no host %q on the test bed", name)
		}
		c, err := exec.Dial(ctx, exec.Config{Host: name, Address: addr, User: "root",
			IdentityFiles: []string{cluster.KeyFile}, HostKeys: keys, ConnectTimeout: 5 * time.Second})
		if err != nil {
			return nil, err
		}
		h.mu.Lock()
		h.conns = append(h.conns, c)
		h.mu.Unlock()
		return c.SSHClient(), nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { h.served <- s.Serve(ctx) }()
	t.Cleanup(cancel)
	deadline := time.Now().Add(5 * time.Second)
	for {
		// Listening, not only bound: a connection is taken.
		if c, err := net.Dial("unix", filepath.Join(h.dir, mux.SocketName)); err == nil {
			c.Close()
			return h
		}
		if time.Now().After(deadline) {
			t.Fatal("the holder does not listen")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *holder) connect(t *testing.T, host string) *ssh.Client {
	t.Helper()
	target, _ := json.Marshal(host)
	c, err := mux.Connect(context.Background(), h.dir, target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRelayIsTheHost: through the holder a run's client does what it
// does on a direct connection: a command's stdout, stderr and exit status
// in order, stdin to its end, a megabyte both ways intact, SFTP, and a TCP
// connection forwarded from the host.
func TestRelayIsTheHost(t *testing.T) {
	h := startHolder(t, time.Minute)
	c := h.connect(t, "lb")

	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	err = s.Run(`hostname; echo to stderr >&2; exit 3`)
	var exit *ssh.ExitError
	if !errors.As(err, &exit) || exit.ExitStatus() != 3 || stdout.String() != "lb\n" || stderr.String() != "to stderr\n" {
		t.Errorf("got %v, stdout %q, stderr %q; want exit 3, lb, to stderr", err, stdout.String(), stderr.String())
	}

	payload := make([]byte, 1<<20)
	rand.Read(payload)
	s, err = c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	s.Stdin = bytes.NewReader(payload)
	out, err := s.Output("cat")
	if err != nil || !bytes.Equal(out, payload) {
		t.Errorf("a megabyte through cat: %v, %d bytes back, equal %v", err, len(out), bytes.Equal(out, payload))
	}

	fs, err := sftp.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	f, err := fs.Create("/tmp/mux-test")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(payload)
	f.Close()
	s, _ = c.NewSession()
	sum, err := s.Output("sha256sum < /tmp/mux-test; rm -f /tmp/mux-test")
	s2, _ := c.NewSession()
	s2.Stdin = bytes.NewReader(payload)
	want, _ := s2.Output("sha256sum")
	if err != nil || string(sum) != string(want) {
		t.Errorf("SFTP upload: %v, sum %q, want %q", err, sum, want)
	}

	tcp, err := c.Dial("tcp", "127.0.0.1:22") // the host's own sshd, from the host
	if err != nil {
		t.Fatal(err)
	}
	banner := make([]byte, 8)
	if _, err := io.ReadFull(tcp, banner); err != nil || string(banner) != "SSH-2.0-" {
		t.Errorf("forwarded connection: %v %q", err, banner)
	}
	tcp.Close()
}

// TestQuickCommandsAllStart: commands that end at once, many at a time:
// the host may finish one before its start is answered to the run, and
// the run must still hear the answer, then the exit status (found by the
// 104-host benchmark: one start in fifty lost).
func TestQuickCommandsAllStart(t *testing.T) {
	h := startHolder(t, time.Minute)
	c := h.connect(t, "lb")
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 8; i++ { // sshd's MaxSessions is 10
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 25; j++ {
				if _, err := run(c, "true"); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestOneHandshakePerHost: runs asking for a host share the holder's one
// connection; another host gets its own.
func TestOneHandshakePerHost(t *testing.T) {
	h := startHolder(t, time.Minute)
	for i := 0; i < 3; i++ {
		c := h.connect(t, "lb")
		if out, err := run(c, "hostname"); err != nil || out != "lb\n" {
			t.Fatalf("run %d: %v %q", i, err, out)
		}
		c.Close()
	}
	h.connect(t, "master0")
	if got := h.dials.Load(); got != 2 {
		t.Errorf("%d handshakes with the hosts for 3 runs on lb and 1 on master0, want 2", got)
	}
}

// TestLostHostConnectionIsDialledAgain: when the holder's connection to a
// host ends, the runs using it see theirs end too, and the next run gets
// a new one.
func TestLostHostConnectionIsDialledAgain(t *testing.T) {
	h := startHolder(t, time.Minute)
	c := h.connect(t, "lb")
	h.mu.Lock()
	h.conns[0].Close()
	h.mu.Unlock()
	ended := make(chan struct{})
	go func() { c.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the run's connection outlived the host's")
	}
	again := h.connect(t, "lb")
	if out, err := run(again, "hostname"); err != nil || out != "lb\n" || h.dials.Load() != 2 {
		t.Errorf("after the loss: %v %q, %d dials (want 2)", err, out, h.dials.Load())
	}
}

// TestIdleHolderEnds: the holder ends its idle time after the last run
// left, and its connections with it.
func TestIdleHolderEnds(t *testing.T) {
	h := startHolder(t, 300*time.Millisecond)
	c := h.connect(t, "lb")
	time.Sleep(600 * time.Millisecond) // a run still connected keeps it
	select {
	case err := <-h.served:
		t.Fatalf("the holder ended with a run connected: %v", err)
	default:
	}
	c.Close()
	select {
	case err := <-h.served:
		if err != nil {
			t.Errorf("the holder ended with %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the holder did not end when idle")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for deadline := time.Now().Add(2 * time.Second); h.conns[0].Alive(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the host's connection outlived the holder")
		}
	}
}

// TestHolderRefusals: a host the holder cannot reach is an error the run
// hears (it then dials itself); a folder others may enter is refused; no
// holder is ErrNoHolder.
func TestHolderRefusals(t *testing.T) {
	h := startHolder(t, time.Minute)
	target, _ := json.Marshal("nohost")
	_, err := mux.Connect(context.Background(), h.dir, target)
	if err == nil || errors.Is(err, mux.ErrNoHolder) {
		t.Errorf("an unknown host: %v", err)
	}
	if err := os.Chmod(h.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	target, _ = json.Marshal("lb")
	if _, err := mux.Connect(context.Background(), h.dir, target); err == nil || !strings.Contains(err.Error(), "no one else may enter") {
		t.Errorf("a folder others may enter: %v", err)
	}
	if _, err := mux.Connect(context.Background(), filepath.Join(t.TempDir(), "none"), target); !errors.Is(err, mux.ErrNoHolder) {
		t.Errorf("no holder: %v", err)
	}
}

func run(c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.Output(cmd)
	return string(out), err
}
