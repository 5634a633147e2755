package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/fleetops/fleet/playbooks"
)

// How a command that changes hosts shows its steps while they run
// (--progress): live redraws one line per running step on a terminal;
// plain prints a line when a step starts and one when it ends, no escape
// codes (a pipe, CI, a log).
const (
	progressAuto  = "auto"
	progressLive  = "live"
	progressPlain = "plain"
)

// stepProgress is what the view knows of one step of the run.
type stepProgress struct {
	name     string
	total    int                  // tasks planned: its hosts, or 1
	ok       int                  // succeeded, already done or would run
	failed   int                  //
	skipped  int                  // blocked or cancelled
	skipWhy  string               // the first skip's reason
	running  map[string]time.Time // host ("" for a step run once) → since
	began    time.Time
	ended    time.Time
	bar      *mpb.Bar // live view only
	announce bool     // plain view: its start line is printed
}

func (st *stepProgress) finished() bool { return st.ok+st.failed+st.skipped >= st.total }

// activity is the latest command a host started: what it is doing.
type activity struct {
	what  string
	since time.Time
}

// progress follows a run's steps and hosts from the engine's plan, events
// and command starts, and draws them live (mpb) or as plain lines.
type progress struct {
	mu     sync.Mutex
	steps  map[string]*stepProgress
	doing  map[string]activity // host → its latest command
	now    func() time.Time
	out    io.Writer     // plain lines and messages
	live   *mpb.Progress // nil in plain mode
	closed bool
}

// newProgress returns the view for --progress mode on w; auto is live
// when w is a terminal.
func newProgress(mode string, w io.Writer) *progress {
	p := &progress{steps: map[string]*stepProgress{}, doing: map[string]activity{}, now: time.Now, out: w}
	if mode == progressLive || (mode == progressAuto && isTerminal(w)) {
		// Forced live on what is not a terminal (a recording) still redraws,
		// at mpb's default width.
		p.live = mpb.New(mpb.WithOutput(w), mpb.WithRefreshRate(100*time.Millisecond),
			mpb.ContainerOptional(mpb.WithAutoRefresh(), !isTerminal(w)))
		p.out = p.live // messages print above the running lines
	}
	return p
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// plan learns a graph's steps before it runs. A step met again (a second
// graph of the same command) starts afresh.
func (p *progress) plan(planned []playbooks.PlannedStep) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ps := range planned {
		p.steps[ps.Step] = &stepProgress{name: ps.Step, total: max(1, len(ps.Hosts)), running: map[string]time.Time{}}
	}
}

// connecting says that the hosts are being dialled: the first line of a
// run, before any step starts.
func (p *progress) connecting(hosts int) {
	p.mu.Lock()
	out := p.out
	p.mu.Unlock()
	fmt.Fprintf(out, "… connecting to %d hosts\n", hosts)
}

// command notes what a host is doing now.
func (p *progress) command(host, cmd string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.doing[host] = activity{what: summarizeCommand(cmd), since: p.now()}
}

// event updates a step from the engine's event and prints what the user
// must see at once (failures, notes). mpb is called without p.mu held:
// its render calls back into the rows, which take it.
func (p *progress) event(e playbooks.Event) {
	msg, started, ended := p.update(e)
	if started != nil {
		p.show(started)
	}
	if msg != "" {
		fmt.Fprintln(p.out, msg)
	}
	if ended != nil {
		p.finish(ended)
	}
}

// update applies e to its step: the message to print, and the step if e
// started or ended it.
func (p *progress) update(e playbooks.Event) (msg string, started, ended *stepProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return "", nil, nil
	}
	if e.Kind == playbooks.Note {
		return noteLine(e), nil, nil
	}
	st := p.steps[e.Step]
	if st == nil { // a graph run without a plan: count as it comes
		st = &stepProgress{name: e.Step, total: 1, running: map[string]time.Time{}}
		p.steps[e.Step] = st
	}
	if st.began.IsZero() {
		st.began, started = e.Time, st
	}
	switch e.Kind {
	case playbooks.Started:
		st.running[e.Host] = e.Time
		return "", started, nil
	case playbooks.Failed:
		st.failed++
		msg = failLine(e)
	case playbooks.Blocked, playbooks.Cancelled:
		st.skipped++
		if st.skipWhy == "" {
			st.skipWhy = e.Reason
		}
	default:
		st.ok++
	}
	delete(st.running, e.Host)
	if st.finished() {
		st.ended, ended = e.Time, st
	}
	return msg, started, ended
}

// show starts a step's line: a live row, or the plain start line.
func (p *progress) show(st *stepProgress) {
	if p.live == nil {
		fmt.Fprintln(p.out, startLine(st))
		return
	}
	bar := p.live.New(1, mpb.NopStyle(), mpb.PrependDecorators(decor.Any(func(s decor.Statistics) string {
		p.mu.Lock()
		defer p.mu.Unlock()
		line := doneLine(st)
		if st.ended.IsZero() {
			line = runningLine(st, p.doing, p.now())
		}
		return clip(line, s.AvailableWidth-1)
	})))
	p.mu.Lock()
	st.bar = bar
	p.mu.Unlock()
}

func (p *progress) finish(st *stepProgress) {
	p.mu.Lock()
	bar := st.bar
	p.mu.Unlock()
	if bar != nil {
		bar.SetTotal(-1, true) // its last draw is the done line
		return
	}
	if p.live == nil {
		fmt.Fprintln(p.out, doneLine(st))
	}
}

// stop ends the view before the command prints its result: the live rows
// of steps that never finished stay as they were last drawn.
func (p *progress) stop() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	var bars []*mpb.Bar
	for _, st := range p.steps {
		if st.bar != nil && st.ended.IsZero() {
			bars = append(bars, st.bar)
		}
	}
	p.mu.Unlock()
	if p.live == nil {
		return
	}
	for _, b := range bars {
		b.Abort(false)
	}
	p.live.Wait()
}

// startLine is the plain view's line for a step's start.
func startLine(st *stepProgress) string {
	if st.total == 1 {
		return "▶ " + st.name
	}
	return fmt.Sprintf("▶ %s (%d hosts)", st.name, st.total)
}

// runningLine is a live row: hosts done of total, time so far, and the
// host working longest with what it runs now.
func runningLine(st *stepProgress, doing map[string]activity, now time.Time) string {
	line := fmt.Sprintf("%s %d/%d %s", st.name, st.ok+st.failed+st.skipped, st.total, seconds(now.Sub(st.began)))
	if len(st.running) == 0 {
		return line
	}
	hosts := make([]string, 0, len(st.running))
	for h := range st.running {
		hosts = append(hosts, h)
	}
	slices.SortFunc(hosts, func(a, b string) int {
		if c := st.running[a].Compare(st.running[b]); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	host := hosts[0]
	since := st.running[host]
	act, known := doing[host]
	if host == "" { // a step run once: the latest command since it began, on any host
		host, act, known = latest(doing, since)
	}
	label := host
	if known && !act.since.Before(since) {
		label = strings.TrimPrefix(host+": "+act.what, ": ")
		since = act.since
	}
	if label != "" {
		line += fmt.Sprintf(" · %s (%s)", label, seconds(now.Sub(since)))
	}
	if more := len(hosts) - 1; more > 0 {
		line += fmt.Sprintf(", +%d more", more)
	}
	return line
}

// latest is the most recent activity at or after since, and its host.
func latest(doing map[string]activity, since time.Time) (host string, act activity, ok bool) {
	for h, a := range doing {
		if a.since.Before(since) || (ok && !a.since.After(act.since)) {
			continue
		}
		host, act, ok = h, a, true
	}
	return host, act, ok
}

// doneLine is a finished step's one-line summary.
func doneLine(st *stepProgress) string {
	took := seconds(st.ended.Sub(st.began))
	switch {
	case st.failed > 0:
		return fmt.Sprintf("✗ %s %d/%d %s · %d failed", st.name, st.ok, st.total, took, st.failed)
	case st.ok == 0 && st.skipped > 0:
		return fmt.Sprintf("- %s skipped: %s", st.name, st.skipWhy)
	case st.skipped > 0:
		return fmt.Sprintf("✓ %s %d/%d %s · %d skipped: %s", st.name, st.ok, st.total, took, st.skipped, st.skipWhy)
	}
	return fmt.Sprintf("✓ %s %d/%d %s", st.name, st.ok, st.total, took)
}

func seconds(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// clip cuts a line to width runes (a wrapped live row would break the
// redraw).
func clip(s string, width int) string {
	if width <= 1 || utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	return string(r[:width-1]) + "…"
}

// summarizeCommand names what a remote command does in a few words: its
// program and subcommand ("kubeadm join", "systemctl restart"), or
// "shell script" for an inline script.
func summarizeCommand(cmd string) string {
	if i := strings.IndexAny(cmd, ";&|\n"); i >= 0 {
		cmd = cmd[:i]
	}
	fields := strings.Fields(cmd)
	for len(fields) > 0 && (strings.Contains(fields[0], "=") || fields[0] == "env" || fields[0] == "sudo" || fields[0] == "-n" || fields[0] == "exec") {
		fields = fields[1:]
	}
	if len(fields) == 0 {
		return "shell"
	}
	prog := fields[0][strings.LastIndexByte(fields[0], '/')+1:]
	if (prog == "sh" || prog == "bash") && len(fields) > 1 && fields[1] == "-c" {
		return "shell script"
	}
	if len(fields) > 1 && isWord(fields[1]) {
		return prog + " " + fields[1]
	}
	return prog
}

// isWord: a subcommand, not a flag, path, quoted text or assignment.
func isWord(s string) bool {
	if s == "" || len(s) > 24 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r == '-' && s[0] != '-') {
			return false
		}
	}
	return true
}
