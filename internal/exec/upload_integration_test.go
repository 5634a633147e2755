package exec_test

import (
	"bytes"
	"context"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/testing/reliability"
	"github.com/fleetops/fleet/testing/sim"
)

type syscallStat = syscall.Stat_t

func osCommand(name string, args ...string) ([]byte, error) {
	return osexec.Command(name, args...).CombinedOutput()
}

// processesWithCmdline returns pids in host's namespace whose
// /proc/PID/cmdline is exactly cmdline (NUL-separated argv).
func processesWithCmdline(t *testing.T, host, cmdline string) []string {
	t.Helper()
	out, err := osCommand("ip", "netns", "pids", cluster.Host(host).NetNS)
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	var found []string
	for _, pid := range strings.Fields(string(out)) {
		b, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		if string(b) == cmdline {
			found = append(found, pid)
		}
	}
	return found
}

func TestUploadIsAtomicWithMode(t *testing.T) {
	sim.Need(t, cluster)
	asEachUser(t, "", "master0", func(t *testing.T, c *exec.Conn, user string) {
		dst := "/etc/kubernetes/upload-" + user + ".conf"
		data := bytes.Repeat([]byte("0123456789abcdef"), 256) // 4 KiB
		for _, mode := range []os.FileMode{0o644, 0o600} {
			if err := c.Upload(context.Background(), dst, data, mode); err != nil {
				t.Fatal(err)
			}
			local := filepath.Join(cluster.Host("master0").Dir, dst)
			got, err := os.ReadFile(local)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("content differs (%d bytes, %v)", len(got), err)
			}
			st, _ := os.Stat(local)
			if st.Mode().Perm() != mode {
				t.Errorf("mode %v, want %v", st.Mode().Perm(), mode)
			}
		}
		assertNoTempFiles(t, "master0", "/etc/kubernetes")
	})
}

func TestInterruptedUploadKeepsOldFile(t *testing.T) {
	sim.Need(t, cluster)
	big := bytes.Repeat([]byte{'x'}, 512<<20)
	asEachUser(t, "cancel/", "worker0", func(t *testing.T, c *exec.Conn, user string) {
		dst := "/etc/kubernetes/interrupted-" + user
		if err := c.Upload(context.Background(), dst, []byte("old\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		if err := c.Upload(ctx, dst, big, 0o600); err == nil {
			t.Fatal("512 MiB upload finished inside 150ms; the test proves nothing")
		}
		assertContent(t, "worker0", dst, "old\n")
		waitNoTempFiles(t, "worker0", "/etc/kubernetes")
	})
	t.Run("connection-killed", func(t *testing.T) {
		c := dial(t, config(t, "worker1"))
		dst := "/etc/kubernetes/killed"
		if err := c.Upload(context.Background(), dst, []byte("old\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- c.Upload(context.Background(), dst, big, 0o600) }()
		time.Sleep(150 * time.Millisecond)
		if err := cluster.StopSSHD("worker1"); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err == nil {
			t.Fatal("upload survived its sshd")
		}
		assertContent(t, "worker1", dst, "old\n")
		if err := cluster.StartSSHD(context.Background(), "worker1"); err != nil {
			t.Fatal(err)
		}
	})
}

func assertContent(t *testing.T, host, path, want string) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(cluster.Host(host).Dir, path))
	if err != nil || string(got) != want {
		t.Fatalf("%s:%s = %d bytes (%v), want %q", host, path, len(got), err, want)
	}
}

func tempFiles(t *testing.T, host, dir string) []string {
	entries, err := os.ReadDir(filepath.Join(cluster.Host(host).Dir, dir))
	if err != nil {
		t.Fatal(err)
	}
	var temps []string
	for _, e := range entries {
		if strings.Contains(e.Name(), ".fleet-") {
			temps = append(temps, e.Name())
		}
	}
	return temps
}

func assertNoTempFiles(t *testing.T, host, dir string) {
	t.Helper()
	if temps := tempFiles(t, host, dir); len(temps) > 0 {
		t.Errorf("temporary files left in %s:%s: %v", host, dir, temps)
	}
}

// waitNoTempFiles allows the remote clean-up a moment: after a cancel the
// remote shell's trap removes its temp file when cat is killed.
func waitNoTempFiles(t *testing.T, host, dir string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(tempFiles(t, host, dir)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	assertNoTempFiles(t, host, dir)
}

var _ = exec.Quote

func TestEnsureDirCreatesWithModeAndKeepsExisting(t *testing.T) {
	sim.Need(t, cluster)
	asEachUser(t, "", "master0", func(t *testing.T, c *exec.Conn, user string) {
		dir := "/etc/kubernetes/ensure-" + user + "/a/b"
		local := filepath.Join(cluster.Host("master0").Dir, dir)
		os.RemoveAll(filepath.Join(cluster.Host("master0").Dir, "/etc/kubernetes/ensure-"+user))
		for range 2 { // the second call finds it there
			if err := c.EnsureDir(context.Background(), dir, 0o700); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(local)
			if err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
				t.Fatalf("%v %v, want a 0700 directory", st, err)
			}
		}
		if err := c.EnsureDir(context.Background(), "relative/dir", 0o700); err == nil {
			t.Error("a relative path was accepted")
		}
	})
}

// TestFullDiskKeepsOldFile: an upload into a full file system (a small
// tmpfs as the host's /etc/kubernetes) fails with an error naming the host
// and the file, leaves the old file as it was and no temporary file; once
// there is room, the same upload succeeds.
func TestFullDiskKeepsOldFile(t *testing.T) {
	sim.Need(t, cluster)
	const dir = "/etc/kubernetes/full"
	if _, err := cluster.Exec("worker2", "sh", "-c", "mkdir -p "+dir+" && mount -t tmpfs -o size=64k tmpfs "+dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cluster.Exec("worker2", "umount", dir) })
	c := dial(t, config(t, "worker2"))
	ctx := context.Background()
	dst := dir + "/ca.crt"
	old := []byte("-----BEGIN CERTIFICATE-----\nold\n-----END CERTIFICATE-----\n")
	if err := c.Upload(ctx, dst, old, 0o644); err != nil {
		t.Fatal(err)
	}
	// Fill what is left.
	cluster.Exec("worker2", "sh", "-c", "dd if=/dev/zero of="+dir+"/filler bs=4k 2>/dev/null; true")
	fresh := bytes.Repeat([]byte("n"), 32<<10)
	full := c.Upload(ctx, dst, fresh, 0o644)
	if full == nil || !strings.Contains(full.Error(), "worker2") || !strings.Contains(full.Error(), dst) {
		t.Fatalf("upload into a full disk: %v, want an error naming worker2 and %s", full, dst)
	}
	got, _ := cluster.Exec("worker2", "cat", dst)
	if !bytes.Equal(got, old) {
		t.Errorf("the old file changed: %q", got)
	}
	assertNoTempFiles(t, "worker2", dir)
	if _, err := cluster.Exec("worker2", "rm", dir+"/filler"); err != nil {
		t.Fatal(err)
	}
	if err := c.Upload(ctx, dst, fresh, 0o644); err != nil {
		t.Fatalf("upload once there is room: %v", err)
	}
	reliability.Record(t, reliability.Row{N: 14, Did: full.Error() + "; the old file stayed, no temporary file left",
		Rerun: "with room again the same upload replaced the file"})
}
