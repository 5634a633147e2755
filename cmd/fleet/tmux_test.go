package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// terminalRun is what a fleet command showed in a real terminal.
type terminalRun struct {
	exit   int
	frames []string // the screen every 50 ms while it ran
	final  string   // the screen once it ended
	events []loggedEvent
}

// loggedEvent is one line of --log-file.
type loggedEvent struct {
	Kind   string `json:"kind"`
	Step   string `json:"step"`
	Host   string `json:"host"`
	Reason string `json:"reason"`
	Error  string `json:"error"`
}

// runInTerminal runs fleet (this test binary as the CLI) in a tmux pane of
// 160×50 with its stderr on the terminal, as a user's shell would, and
// reads the screen as it runs (capture-pane) until it exits.
func runInTerminal(t *testing.T, limit time.Duration, args ...string) terminalRun {
	t.Helper()
	if _, err := osexec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux is needed for the terminal test (make setup installs it): %v", err)
	}
	dir := t.TempDir()
	logFile, exitFile := filepath.Join(dir, "events.log"), filepath.Join(dir, "exit")
	socket := filepath.Join(dir, "tmux.sock")
	argv := append([]string{"env", cliChildEnv + "=1", "TERM=xterm-256color", os.Args[0], "--log-file", logFile}, args...)
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	// The pane stays after fleet ends (sleep), so its last screen can be read.
	script := strings.Join(quoted, " ") + "; echo $? > " + exitFile + "; exec sleep 600"
	tmux := func(a ...string) (string, error) {
		out, err := osexec.Command("tmux", append([]string{"-S", socket, "-f", "/dev/null"}, a...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := tmux("new-session", "-d", "-s", "fleet", "-x", "160", "-y", "50", script); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	defer tmux("kill-server")
	var run terminalRun
	deadline := time.Now().Add(limit)
	for {
		if screen, err := tmux("capture-pane", "-p", "-t", "fleet"); err == nil {
			run.frames = append(run.frames, screen)
		}
		if code, err := os.ReadFile(exitFile); err == nil {
			run.exit, _ = strconv.Atoi(strings.TrimSpace(string(code)))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleet %s still ran in the terminal after %s; screen:\n%s", strings.Join(args, " "), limit, run.frames[len(run.frames)-1])
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The visible screen: tmux's scrollback also keeps what a redraw
	// cleared (scroll-on-clear), which is not what the user sees.
	final, err := tmux("capture-pane", "-p", "-t", "fleet")
	if err != nil {
		t.Fatalf("tmux capture-pane: %v", err)
	}
	run.final = final
	run.events = readEventLog(t, logFile)
	return run
}

// readEventLog reads a --log-file's step events (not its command lines).
func readEventLog(t *testing.T, path string) []loggedEvent {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var events []loggedEvent
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e loggedEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: %v: %s", path, err, sc.Text())
		}
		if e.Kind != "command" {
			events = append(events, e)
		}
	}
	return events
}

// runningRow is a live row of a step still running: "join-workers 1/2 3.4s".
var runningRow = regexp.MustCompile(`(?m)^[a-z-]+ \d+/\d+ \d+(\.\d)?s`)

// checkLiveView: while fleet ran, the screen showed running rows (and
// grew: rows appeared as steps started); once it ended, the screen holds a
// finished line for every step of the run, in the order they started.
func checkLiveView(t *testing.T, run terminalRun) {
	t.Helper()
	live := 0
	for _, f := range run.frames[:len(run.frames)-1] {
		if runningRow.MatchString(f) {
			live++
		}
	}
	if live < 3 {
		t.Errorf("%d of %d screens taken while fleet ran showed a running step; last:\n%s", live, len(run.frames), run.frames[len(run.frames)-1])
	}
	var order []string
	seen := map[string]bool{}
	for _, e := range run.events {
		if e.Kind != "note" && !seen[e.Step] {
			seen[e.Step] = true
			order = append(order, e.Step)
		}
	}
	if len(order) < 8 {
		t.Fatalf("only %d steps in the run's event log: %v", len(order), order)
	}
	at := 0
	for _, step := range order {
		i := strings.Index(run.final[at:], "✓ "+step+" ")
		if i < 0 {
			t.Errorf("the final screen has no ✓ line for %s after the ones before it:\n%s", step, run.final)
			continue
		}
		at += i
	}
	if runningRow.MatchString(run.final) {
		t.Errorf("a running row is left on the final screen:\n%s", run.final)
	}
}

// eventWas reports whether the log holds kind for step on host, with a
// reason containing reason.
func eventWas(events []loggedEvent, kind, step, host, reason string) bool {
	for _, e := range events {
		if e.Kind == kind && e.Step == step && e.Host == host && strings.Contains(e.Reason, reason) {
			return true
		}
	}
	return false
}

func (r terminalRun) String() string {
	return fmt.Sprintf("exit %d\n%s", r.exit, r.final)
}
