package exec

import (
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSupervisor runs the supervisor with this machine's sh the three ways
// a host can start it: leading its own process group (as sshd starts a
// session), inside another group with setsid(1) at hand, and without
// setsid. Each way a command's exit code comes back, and closing stdin
// stops the command and whatever it started.
func TestSupervisor(t *testing.T) {
	setsid, err := osexec.LookPath("setsid")
	if err != nil {
		t.Skip("no setsid here")
	}
	// A PATH with sh and sleep but no setsid, for the host without it.
	noSetsid := t.TempDir()
	for _, tool := range []string{"sh", "sleep", "cat"} {
		p, err := osexec.LookPath(tool)
		if err != nil {
			t.Skip(err)
		}
		if err := os.Symlink(p, filepath.Join(noSetsid, tool)); err != nil {
			t.Fatal(err)
		}
	}
	for i, tc := range []struct {
		name string
		argv func(cmd string) []string
		path string
		// whether the command's own children are stopped too (they are
		// when it has a process group to kill)
		children bool
	}{
		{"leading its process group", func(cmd string) []string { return []string{setsid, "--wait", "sh", "-c", supervisor, "fleet", cmd} }, os.Getenv("PATH"), true},
		{"in another group, with setsid", func(cmd string) []string { return []string{"sh", "-c", supervisor, "fleet", cmd} }, os.Getenv("PATH"), true},
		{"in another group, no setsid", func(cmd string) []string { return []string{"sh", "-c", supervisor, "fleet", cmd} }, noSetsid, false},
	} {
		start := func(cmd string, stdin *os.File) *osexec.Cmd {
			argv := tc.argv(cmd)
			c := osexec.Command(argv[0], argv[1:]...)
			c.Env = []string{"PATH=" + tc.path}
			c.Stdin = stdin
			// Not in the test's own group: a kill of "the group" must not reach go test.
			c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			return c
		}
		t.Run(tc.name+": exit code and output", func(t *testing.T) {
			// stdin open while it runs: its end would cancel the command.
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			c := start(`echo "args:$#"; exit 7`, r)
			out, err := c.Output()
			r.Close()
			var exit *osexec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 7 || strings.TrimSpace(string(out)) != "args:0" {
				t.Errorf("got %v, %q; want exit 7 and args:0", err, out)
			}
		})
		t.Run(tc.name+": EOF on stdin stops the command", func(t *testing.T) {
			marker := fmt.Sprintf("%d.%d", 4000+os.Getpid()%1000, i) // a sleep nobody else runs
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd := "exec sleep " + marker
			if tc.children {
				cmd = "sleep " + marker + " & wait"
			}
			c := start(cmd, r)
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			r.Close()
			waitFor(t, func() bool { return sleeping(marker) }, "the command to start")
			w.Close()
			ended := make(chan error, 1)
			go func() { ended <- c.Wait() }()
			select {
			case <-ended:
			case <-time.After(5 * time.Second):
				c.Process.Kill()
				t.Fatal("the supervisor still runs 5 s after EOF")
			}
			// Nothing of it is left: not the sleep, nor a shell whose
			// command line holds the command (a supervisor's fork).
			waitFor(t, func() bool { return !mentioned(marker) }, "every process of the command to end")
		})
	}
}

// sleeping reports whether a process runs "sleep marker".
func sleeping(marker string) bool {
	return osexec.Command("pgrep", "-f", "^sleep "+strings.ReplaceAll(marker, ".", `\.`)+"$").Run() == nil
}

// mentioned reports whether a process's command line has "sleep marker".
func mentioned(marker string) bool {
	return osexec.Command("pgrep", "-f", "sleep "+strings.ReplaceAll(marker, ".", `\.`)).Run() == nil
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 1 s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
