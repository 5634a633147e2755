package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetops/fleet/internal/lock"
	"github.com/fleetops/fleet/testing/reliability"
)

// cliChildEnv makes the test binary run as the fleet command: a test can
// then send a real signal to a real fleet process.
const cliChildEnv = "FLEET_TEST_AS_CLI"

// testCtrlCDuringWorkerJoins runs fleet apply as its own process and sends
// it SIGINT, as Ctrl-C does, once kubeadm join has started a worker's
// kubelet. fleet must end promptly with the kubeadm joins it started
// stopped on their hosts and the cluster lock released; what it printed
// goes into all for the secrets search. It returns the worker cut and
// what fleet did; the caller's next apply is the one that must converge.
func testCtrlCDuringWorkerJoins(t *testing.T, all *bytes.Buffer, logFile, kubeconfig string) (worker, interrupted string) {
	t.Helper()
	cmd := osexec.Command(os.Args[0], "-v", "--log-file", logFile, "apply", "-i", cluster.Inventory, "--kubeconfig", kubeconfig)
	cmd.Env = append(os.Environ(), cliChildEnv+"=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var err error
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { all.WriteString(stdout.String() + stderr.String()) }()

	// kubeadm join writes kubeadm-flags.env just before it starts the
	// kubelet: the middle of a worker's join.
	worker, err = waitForAnyFile(exited, 5*time.Minute, "var/lib/kubelet/kubeadm-flags.env", "worker0", "worker1")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	select {
	case err = <-exited:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		t.Fatalf("fleet apply still ran a minute after SIGINT\n%s", stderr.String())
	}
	took := time.Since(sent)
	var exit *osexec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("fleet apply after SIGINT: %v, want exit status 1\n%s", err, stderr.String())
	}
	// Bounded by the commands' kill grace and the lock release, not by
	// how long a join would have taken.
	if took > 20*time.Second {
		t.Errorf("fleet apply took %s to end after SIGINT", took.Round(time.Millisecond))
	}
	errs := stderr.String()
	if !strings.Contains(errs, "run cancelled") || strings.Contains(errs, "goroutine ") {
		t.Errorf("stderr after SIGINT does not say the run was cancelled (or shows a panic):\n%s", errs)
	}
	if _, err := os.Stat(filepath.Join(cluster.Host("master0").Dir, lock.Path)); !os.IsNotExist(err) {
		t.Errorf("the interrupted apply left its lock behind (%v)", err)
	}
	for _, h := range cluster.Hosts {
		if out, err := cluster.Exec(h.Name, "sh", "-c", `pgrep --ns $$ --nslist net,mnt -af '[k]ubeadm (join|init)'`); err == nil {
			t.Errorf("a kubeadm the interrupted apply started still runs on %s: %s", h.Name, out)
		}
	}
	return worker, fmt.Sprintf("SIGINT to fleet apply once kubeadm join had started %s's kubelet: exit 1 after %s, %q; no kubeadm left running on any host, the cluster lock released",
		worker, took.Round(100*time.Millisecond), lastLine(errs))
}

// waitForAnyFile waits until path exists on one of hosts and returns that
// host; it gives up when the process behind exited ends or after limit.
func waitForAnyFile(exited <-chan error, limit time.Duration, path string, hosts ...string) (string, error) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		for _, h := range hosts {
			if _, err := os.Stat(filepath.Join(cluster.Host(h).Dir, path)); err == nil {
				return h, nil
			}
		}
		select {
		case err := <-exited:
			return "", fmt.Errorf("fleet apply ended (%v) before any of %s had %s", err, strings.Join(hosts, ", "), path)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("none of %s had %s after %s", strings.Join(hosts, ", "), path, limit)
}

// lastLine is the last non-empty line of s, where fleet puts its error.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// convergedAfterCut checks, in the event log of the apply after the
// interrupted one, what became of the worker whose join was cut: either its
// kubelet finished the TLS bootstrap on its own (joined), or fleet said it
// cleared the half-done join and joined the worker anew. It says which;
// kubeadm init must not run again.
func convergedAfterCut(t *testing.T, run terminalRun, worker string) string {
	t.Helper()
	if eventWas(run.events, "succeeded", "init", "master0", "") {
		t.Errorf("the apply after Ctrl-C ran kubeadm init again:\n%s", run)
	}
	switch {
	case eventWas(run.events, "note", "join-workers", worker, "an earlier join was cut short here") &&
		eventWas(run.events, "succeeded", "join-workers", worker, ""):
		if !strings.Contains(run.final, "NOTE  join-workers "+worker+": an earlier join was cut short here") {
			t.Errorf("the terminal did not show the note on %s's cut join:\n%s", worker, run)
		}
		return "said it cleared " + worker + "'s cut join (kubeadm reset, Node deleted) and joined it anew"
	case eventWas(run.events, "already-done", "join-workers", worker, "joined"):
		return "found " + worker + " joined (its kubelet had finished the TLS bootstrap on its own)"
	}
	t.Errorf("the apply after Ctrl-C neither cleared and joined %s nor found it joined:\n%s", worker, run)
	return ""
}

// recordCtrlC writes row 13 once the next apply has converged.
func recordCtrlC(t *testing.T, interrupted, converged string) {
	reliability.Record(t, reliability.Row{N: 13, Did: interrupted,
		Rerun: "the next fleet apply " + converged + " and converged: every node joined; the one after changed nothing"})
}
