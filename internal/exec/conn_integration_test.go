package exec_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/testing/reliability"
	"github.com/fleetops/fleet/testing/sim"
)

var cluster *sim.Cluster

func TestMain(m *testing.M) {
	os.Exit(sim.RunTests(m, sim.Sized("ex", 10, 8, 3), &cluster))
}

// config returns a root login to host, verified against the cluster's
// known_hosts.
func config(t *testing.T, host string) exec.Config {
	t.Helper()
	keys, err := exec.LoadHostKeys(cluster.KnownHosts, false)
	if err != nil {
		t.Fatal(err)
	}
	return exec.Config{
		Host: host, Address: cluster.Host(host).Address, User: "root",
		IdentityFiles: []string{cluster.KeyFile}, HostKeys: keys,
		ConnectTimeout: 5 * time.Second, Redactor: exec.NewRedactor(),
	}
}

func dial(t *testing.T, cfg exec.Config) *exec.Conn {
	t.Helper()
	c, err := exec.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// asEachUser runs test as a subtest per login: root, and the sudo user
// (sudo on), each with its own connection to host.
func asEachUser(t *testing.T, prefix, host string, test func(t *testing.T, c *exec.Conn, user string)) {
	for _, user := range []string{"root", sim.SudoUser} {
		t.Run(prefix+user, func(t *testing.T) {
			cfg := config(t, host)
			cfg.User, cfg.Sudo = user, true
			test(t, dial(t, cfg), user)
		})
	}
}

func TestRunOnEveryHostInParallel(t *testing.T) {
	sim.Need(t, cluster)
	var wg sync.WaitGroup
	for _, h := range cluster.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(t, config(t, h.Name))
			res, err := c.Run(context.Background(), "hostname; echo to-stderr >&2; exit 0")
			if err != nil {
				t.Error(err)
				return
			}
			if strings.TrimSpace(res.Stdout) != h.Name || strings.TrimSpace(res.Stderr) != "to-stderr" {
				t.Errorf("%s: stdout %q stderr %q", h.Name, res.Stdout, res.Stderr)
			}
		}()
	}
	wg.Wait()
}

func TestOneConnectionCarriesManyConcurrentCommands(t *testing.T) {
	sim.Need(t, cluster)
	c := dial(t, config(t, "worker0"))
	const n = 40 // well past sshd's MaxSessions of 10: the connection queues
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := c.Run(context.Background(), exec.Command("echo", fmt.Sprint(i)))
			if err != nil {
				t.Error(err)
			} else if strings.TrimSpace(res.Stdout) != fmt.Sprint(i) {
				t.Errorf("command %d printed %q", i, res.Stdout)
			}
		}()
	}
	wg.Wait()
	// All of them went over one TCP connection: the host saw one login.
	out, err := cluster.Exec("worker0", "sh", "-c", "ss -tn state established '( sport = :22 )' | tail -n +2 | wc -l")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(out)); got != "1" {
		t.Errorf("established ssh connections on worker0 = %s, want 1", got)
	}
}

func TestNonZeroExitIsCommandErrorWithRedactedStderr(t *testing.T) {
	sim.Need(t, cluster)
	cfg := config(t, "worker1")
	cfg.Redactor.Add("abcdef.0123456789abcdef")
	c := dial(t, cfg)
	_, err := c.Run(context.Background(), "echo 'bad token abcdef.0123456789abcdef' >&2; exit 3")
	var ce *exec.CommandError
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want CommandError", err)
	}
	if ce.ExitCode != 3 || ce.Host != "worker1" {
		t.Errorf("exit %d host %s", ce.ExitCode, ce.Host)
	}
	if strings.Contains(err.Error(), "0123456789abcdef") {
		t.Errorf("secret in error: %v", err)
	}
}

func TestHostileWordsArriveExactly(t *testing.T) {
	sim.Need(t, cluster)
	c := dial(t, config(t, "master0"))
	words := []string{"a b", "it's", "$(id)", "`id`", "new\nline", "ünï ✓", "a;b|c&d", `\\`, "*", "-e"}
	for _, w := range words {
		res, err := c.Run(context.Background(), exec.Command("printf", "%s", w))
		if err != nil {
			t.Fatal(err)
		}
		if res.Stdout != w {
			t.Errorf("sent %q, remote printed %q", w, res.Stdout)
		}
	}
}

func TestChangedHostKeyIsRefusedWithBothFingerprints(t *testing.T) {
	sim.Need(t, cluster)
	old, err := cluster.HostKey("master2")
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.RotateHostKey(context.Background(), "master2"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { restoreKnownHost(t, "master2") })
	offered, err := cluster.HostKey("master2")
	if err != nil {
		t.Fatal(err)
	}
	// Even trust-on-first-use must refuse a changed key.
	cfg := config(t, "master2")
	cfg.HostKeys, _ = exec.LoadHostKeys(cluster.KnownHosts, true)
	_, err = exec.Dial(context.Background(), cfg)
	var mismatch *exec.HostKeyMismatchError
	if !errors.As(err, &mismatch) {
		t.Fatalf("got %v, want HostKeyMismatchError", err)
	}
	for _, want := range []string{"master2", ssh.FingerprintSHA256(old), ssh.FingerprintSHA256(offered)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	known, _ := os.ReadFile(cluster.KnownHosts)
	if bytes.Contains(known, ssh.MarshalAuthorizedKey(offered)[:40]) {
		t.Error("the changed key was written to known_hosts")
	}
	reliability.Record(t, reliability.Row{N: 6, Did: err.Error() + " (refused before authentication, even with --accept-new-host-keys; known_hosts untouched)",
		Rerun: "refused again until the operator puts the new key in known_hosts; then it connects"})
}

// restoreKnownHost puts the host's current key in known_hosts in place of
// the old one, so later tests can reach it.
func restoreKnownHost(t *testing.T, host string) {
	key, err := cluster.HostKey(host)
	if err != nil {
		t.Fatal(err)
	}
	addr := cluster.Host(host).Address
	b, _ := os.ReadFile(cluster.KnownHosts)
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(line, addr+" ") {
			out = append(out, line)
		}
	}
	out = append(out, addr+" "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))))
	if err := os.WriteFile(cluster.KnownHosts, []byte(strings.Join(out, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownHostRefusedUnlessAcceptNew(t *testing.T) {
	sim.Need(t, cluster)
	path := filepath.Join(t.TempDir(), "known_hosts")
	cfg := config(t, "worker0")

	cfg.HostKeys, _ = exec.LoadHostKeys(path, false)
	_, err := exec.Dial(context.Background(), cfg)
	var unknown *exec.UnknownHostError
	if !errors.As(err, &unknown) || !strings.Contains(err.Error(), "--accept-new-host-keys") {
		t.Fatalf("got %v, want UnknownHostError pointing at --accept-new-host-keys", err)
	}
	if _, statErr := os.Stat(path); !os.IsNotExist(statErr) {
		t.Fatal("known_hosts was created without --accept-new-host-keys")
	}

	cfg.HostKeys, _ = exec.LoadHostKeys(path, true)
	dial(t, cfg).Close()
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("known_hosts after accept-new: %v %v", st, err)
	}
	// Now it is known: a strict verifier accepts it.
	cfg.HostKeys, _ = exec.LoadHostKeys(path, false)
	dial(t, cfg)
}

func TestWrongKeyIsAuthErrorNamingHost(t *testing.T) {
	sim.Need(t, cluster)
	other := filepath.Join(t.TempDir(), "id")
	if out, err := osCommand("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	cfg := config(t, "worker1")
	cfg.IdentityFiles = []string{other}
	_, err := exec.Dial(context.Background(), cfg)
	var auth *exec.AuthError
	if !errors.As(err, &auth) {
		t.Fatalf("got %v, want AuthError", err)
	}
	if !strings.Contains(err.Error(), "worker1") || !strings.Contains(err.Error(), other) {
		t.Errorf("error does not name host and key: %v", err)
	}
	reliability.Record(t, reliability.Row{N: 7, Did: err.Error(), Rerun: "nothing ran on the host; with the right key the next run connects"})
}

func TestSudoUserRunsAsRootAndUploadsRootFiles(t *testing.T) {
	sim.Need(t, cluster)
	cfg := config(t, "master1")
	cfg.User, cfg.Sudo = sim.SudoUser, true
	c := dial(t, cfg)
	res, err := c.Run(context.Background(), "id -u")
	if err != nil || strings.TrimSpace(res.Stdout) != "0" {
		t.Fatalf("id -u via sudo: %q %v", res.Stdout, err)
	}
	if err := c.Upload(context.Background(), "/etc/kubernetes/sudo-upload.conf", []byte("secret: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(cluster.Host("master1").Dir, "etc/kubernetes/sudo-upload.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 || st.Sys().(*syscallStat).Uid != 0 {
		t.Errorf("mode %v uid %d, want 0600 root", st.Mode().Perm(), st.Sys().(*syscallStat).Uid)
	}
}

func TestSudoWithPasswordFailsFastAndClearly(t *testing.T) {
	sim.Need(t, cluster)
	cfg := config(t, "master1")
	cfg.User, cfg.Sudo = sim.PasswordSudoUser, true
	c := dial(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Run(ctx, "true")
	if err == nil || !strings.Contains(err.Error(), "password is required") {
		t.Fatalf("got %v, want sudo's password error", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s: sudo waited for a password", d)
	}
	reliability.Record(t, reliability.Row{N: 8, Did: fmt.Sprintf("%v (after %s, sudo -n: no hang)", err, time.Since(start).Round(time.Millisecond)),
		Rerun: "nothing ran as root; with NOPASSWD (or root) the next run proceeds"})
}

func TestJumpHost(t *testing.T) {
	sim.Need(t, cluster)
	jump := dial(t, config(t, "lb"))
	cfg := config(t, "worker2")
	cfg.Via = jump
	c := dial(t, cfg)
	res, err := c.Run(context.Background(), `echo "$SSH_CLIENT"`)
	if err != nil {
		t.Fatal(err)
	}
	// The target sees the connection come from the jump host, not the machine.
	if from := strings.Fields(res.Stdout); len(from) == 0 || from[0] != cluster.Host("lb").Address {
		t.Errorf("SSH_CLIENT on worker2 = %q, want from %s", res.Stdout, cluster.Host("lb").Address)
	}
}

func TestTimedOutCommandIsKilledOnTheHost(t *testing.T) {
	sim.Need(t, cluster)
	asEachUser(t, "", "worker0", func(t *testing.T, c *exec.Conn, user string) {
		marker := fmt.Sprintf("%d", 7000+len(user)) // a sleep nobody else runs
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := c.Run(ctx, "sleep "+marker+"; echo never")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want deadline exceeded", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Run returned after %s", d)
		}
		waitNoProcess(t, "worker0", "sleep\x00"+marker+"\x00")
		reliability.Record(t, reliability.Row{N: 9, Did: fmt.Sprintf("%v after %s; the remote command was killed on the host (no process left)", err, time.Since(start).Round(time.Millisecond)),
			Rerun: "the host is as before the command: the next run starts clean"})
	})
}

// waitNoProcess fails unless no process in the host's namespace has exactly
// this command line within a few seconds.
func waitNoProcess(t *testing.T, host, cmdline string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		found := processesWithCmdline(t, host, cmdline)
		if len(found) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("process %q still running on %s: pids %v", strings.ReplaceAll(cmdline, "\x00", " "), host, found)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestKeepaliveNoticesADeadLink(t *testing.T) {
	sim.Need(t, cluster)
	cfg := config(t, "worker1")
	cfg.KeepAliveInterval = 200 * time.Millisecond
	c := dial(t, cfg)
	// An SFTP session open on the connection too: closing it on a dead
	// link must not wait for its reader (it did, forever).
	if err := c.Upload(context.Background(), "/tmp/keepalive-probe", []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cluster.LinkDown("worker1"); err != nil {
		t.Fatal(err)
	}
	defer cluster.LinkUp("worker1")
	start := time.Now()
	ran := make(chan error, 1)
	go func() {
		_, err := c.Run(context.Background(), "sleep 60")
		ran <- err
	}()
	var err error
	select {
	case err = <-ran:
	case <-time.After(15 * time.Second):
		t.Fatal("Run still waits on a dead link after 15s")
	}
	if !errors.Is(err, exec.ErrConnectionLost) {
		t.Fatalf("got %v, want connection lost", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s to notice", d)
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs on a dead link")
	}
}

func TestOutputLimit(t *testing.T) {
	sim.Need(t, cluster)
	cfg := config(t, "worker2")
	cfg.MaxOutput = 1 << 20
	c := dial(t, cfg)
	res, err := c.Run(context.Background(), "head -c 100000000 /dev/zero")
	var limit *exec.OutputLimitError
	if !errors.As(err, &limit) {
		t.Fatalf("got %v, want OutputLimitError", err)
	}
	if len(res.Stdout) != 1<<20 {
		t.Errorf("kept %d bytes, want %d", len(res.Stdout), 1<<20)
	}
	// A command that fails after a flood: the exit and the cut, both said.
	_, err = c.Run(context.Background(), "head -c 5000000 /dev/zero; exit 3")
	var ce *exec.CommandError
	if !errors.As(err, &ce) || ce.ExitCode != 3 || !strings.Contains(err.Error(), "printed more than 1048576 bytes") {
		t.Errorf("got %v, want exit 3 and the cut in the error", err)
	}
}
