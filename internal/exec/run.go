package exec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"
)

// Result is what a command left behind.
type Result struct {
	Stdout, Stderr string
	ExitCode       int
	Duration       time.Duration
}

// CommandError is a command that ran and exited non-zero. Command and Stderr
// are already redacted.
type CommandError struct {
	Host     string
	Command  string
	ExitCode int
	Stderr   string
	// CutAt is the output limit when the command also printed more than
	// it (its output was cut); 0 otherwise.
	CutAt int
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s: command exited %d: %s", e.Host, e.ExitCode, e.Command)
	if e.CutAt > 0 {
		msg += fmt.Sprintf(" (it printed more than %d bytes; output cut)", e.CutAt)
	}
	if tail := lastLines(e.Stderr, 5); tail != "" {
		msg += ": " + tail
	}
	return msg
}

// OutputLimitError means a command printed more than Config.MaxOutput bytes.
// Its output was cut, so nothing should be parsed from it.
type OutputLimitError struct {
	Host, Command string
	Limit         int
}

func (e *OutputLimitError) Error() string {
	return fmt.Sprintf("%s: command printed more than %d bytes, output cut: %s", e.Host, e.Limit, e.Command)
}

// supervisor runs "$1" in a process group of its own and kills that group
// when the session's stdin reaches EOF: fleet closes stdin to cancel a
// command, and sshd closes it when the connection dies. sshd's own "signal"
// request cannot do this: OpenSSH refuses it for root sessions.
// sshd starts each session in a new session and process group, so when the
// supervisor leads its group (Linux's /proc says so) that group is the
// command's: the command runs in a subshell (no process started for it) and
// the watcher signals the whole group, the supervisor ignoring SIGTERM so
// that it reaps the command and ends the watcher. Elsewhere setsid(1) gives
// the command a group of its own, or nothing can (kill reaches it alone).
// (An asynchronous list's stdin is /dev/null unless redirected, hence fd 3.)
const supervisor = `exec 3<&0
g=; read -r _ _ _ _ g _ </proc/$$/stat 2>/dev/null
if [ "$g" = $$ ]; then (eval "set --; $1") </dev/null 3<&- & k=0
elif command -v setsid >/dev/null 2>&1; then setsid sh -c "$1" </dev/null 3<&- & k=-$!
else sh -c "$1" </dev/null 3<&- & k=$!
fi
p=$!
trap '' TERM
{ read -r _ <&3 || :; kill -TERM $k; sleep 2; kill -KILL $k; } >/dev/null 2>&1 &
w=$!
exec 3<&-
wait $p; rc=$?
kill -KILL $w 2>/dev/null
exit $rc`

// taskKey carries the step and host a command runs for (WithTask).
type taskKey struct{}

type task struct{ step, host string }

// WithTask marks ctx as the work of step on host: the commands run with it
// carry both in their traces (run reports attribute commands to steps).
func WithTask(ctx context.Context, step, host string) context.Context {
	return context.WithValue(ctx, taskKey{}, task{step, host})
}

// CommandTrace is one command's timing, for traces and the apply-overhead
// benchmark. Command is redacted.
type CommandTrace struct {
	Host, Command string
	// Step and StepHost are the task the command ran for (WithTask); ""
	// for commands outside a step (the lock, the cluster lookups).
	Step, StepHost string
	Start          time.Time
	Duration       time.Duration
	ExitCode       int    // -1 when it did not end by itself
	StderrTail     string // its last lines of stderr, redacted
	Err            error
}

// killGrace bounds how long a cancelled command may take to end: the
// supervisor sends SIGTERM, then SIGKILL after two seconds.
const killGrace = 3 * time.Second

// Run runs cmd on the host and waits for it. When ctx ends first, the command
// and every process it started get SIGTERM, then SIGKILL, so nothing outlives
// its timeout on the host.
func (c *Conn) Run(ctx context.Context, cmd string) (Result, error) {
	return c.run(ctx, cmd, nil)
}

// RunInput is Run with stdin fed from in. The command ends when in does:
// cancelling closes stdin, so the command must stop at end of input (cat,
// tee, sh reading a script do).
func (c *Conn) RunInput(ctx context.Context, cmd string, in io.Reader) (Result, error) {
	if in == nil {
		in = strings.NewReader("")
	}
	return c.run(ctx, cmd, in)
}

func (c *Conn) run(ctx context.Context, cmd string, in io.Reader) (res Result, err error) {
	shown := c.cfg.Redactor.String(cmd)
	if strings.IndexByte(cmd, 0) >= 0 {
		return Result{}, fmt.Errorf("%s: command contains a NUL byte: %s", c.cfg.Host, shown)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("%s: %s: %w", c.cfg.Host, shown, err)
	}
	release, err := c.acquire(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %s: %w", c.cfg.Host, shown, err)
	}
	defer release()
	sess, err := c.newSession(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("%s: open session: %w", c.cfg.Host, c.connErr(err))
	}
	defer sess.Close()

	limit := c.cfg.MaxOutput
	if limit == 0 {
		limit = DefaultMaxOutput
	}
	stdout, stderr := &cappedBuffer{max: limit}, &cappedBuffer{max: limit}
	sess.Stdout, sess.Stderr = stdout, stderr
	stdin, err := sess.StdinPipe()
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", c.cfg.Host, err)
	}
	line := Command("sh", "-c", supervisor, "fleet", cmd)
	if in != nil {
		line = cmd
		go func() {
			_, _ = io.Copy(stdin, &ctxReader{ctx: ctx, r: in})
			stdin.Close()
		}()
	}

	start := time.Now()
	if c.cfg.OnCommand != nil {
		defer func() {
			t, _ := ctx.Value(taskKey{}).(task)
			c.cfg.OnCommand(CommandTrace{Host: c.cfg.Host, Command: shown, Step: t.step, StepHost: t.host, Start: start,
				Duration: time.Since(start), ExitCode: res.ExitCode, StderrTail: lastLines(c.cfg.Redactor.String(res.Stderr), 5), Err: err})
		}()
	}
	if c.cfg.OnCommandStart != nil {
		c.cfg.OnCommandStart(c.cfg.Host, shown)
	}
	if err := sess.Start(c.wrap(line)); err != nil {
		return Result{}, fmt.Errorf("%s: start %s: %w", c.cfg.Host, shown, c.connErr(err))
	}
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()

	var waitErr error
	select {
	case waitErr = <-waited:
	case <-ctx.Done():
		// Closing stdin is the cancel signal. With input, the copier owns
		// stdin and closes it as soon as its reader sees ctx end.
		if in == nil {
			stdin.Close()
		}
		select {
		case <-waited:
		case <-time.After(killGrace):
		}
		return Result{Stdout: stdout.String(), Stderr: stderr.String(), ExitCode: -1, Duration: time.Since(start)},
			fmt.Errorf("%s: %s: stopped after %s: %w", c.cfg.Host, shown, time.Since(start).Round(time.Millisecond), ctx.Err())
	}

	res = Result{Stdout: stdout.String(), Stderr: stderr.String(), Duration: time.Since(start)}
	return res, c.classify(&res, shown, waitErr, stdout.wasCut() || stderr.wasCut(), limit)
}

// acquire takes one of the connection's session slots.
func (c *Conn) acquire(ctx context.Context) (release func(), err error) {
	select {
	case c.sessions <- struct{}{}:
		return func() { <-c.sessions }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for a free session: %w", ctx.Err())
	}
}

// classify turns how a command ended into fleet's errors, setting the exit code.
func (c *Conn) classify(res *Result, shown string, waitErr error, cut bool, limit int) error {
	var exitErr *ssh.ExitError
	switch {
	case errors.As(waitErr, &exitErr):
		res.ExitCode = exitErr.ExitStatus()
		ce := &CommandError{Host: c.cfg.Host, Command: shown, ExitCode: res.ExitCode, Stderr: c.cfg.Redactor.String(res.Stderr)}
		if cut {
			ce.CutAt = limit
		}
		return ce
	case waitErr != nil:
		res.ExitCode = -1
		return fmt.Errorf("%s: %s: %w", c.cfg.Host, shown, c.connErr(waitErr))
	case cut:
		return &OutputLimitError{Host: c.cfg.Host, Command: shown, Limit: limit}
	}
	return nil
}

// newSession opens a session, retrying briefly when sshd refuses the
// channel: sshd frees a session slot only after it has processed our close of
// the previous one, so a connection at its session limit sees refusals for a
// moment after a command ends.
func (c *Conn) newSession(ctx context.Context) (*ssh.Session, error) {
	backoff := 5 * time.Millisecond
	for attempt := 0; ; attempt++ {
		sess, err := c.client.NewSession()
		var open *ssh.OpenChannelError
		if err == nil || !errors.As(err, &open) || attempt == 20 {
			return sess, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// wrap runs cmd through sudo for a non-root user. -n makes sudo fail at once
// instead of waiting for a password nobody will type.
func (c *Conn) wrap(cmd string) string {
	if !c.cfg.Sudo || c.cfg.User == "root" {
		return cmd
	}
	return "sudo -n -- sh -c " + Quote(cmd)
}

// ErrConnectionLost: the connection died while a command ran, so its
// outcome on the host is unknown (it may still be running there).
var ErrConnectionLost = errors.New("connection lost")

// connErr explains errors that mean the connection itself went away.
func (c *Conn) connErr(err error) error {
	var missing *ssh.ExitMissingError
	if errors.As(err, &missing) || errors.Is(err, io.EOF) {
		select {
		case <-c.done:
			return fmt.Errorf("%w (keepalive unanswered or closed): %w", ErrConnectionLost, err)
		default:
			return fmt.Errorf("%w: %w", ErrConnectionLost, err)
		}
	}
	return err
}

// cappedBuffer keeps the first max bytes written to it and drops the rest,
// while still accepting writes so the remote side is never blocked.
type cappedBuffer struct {
	mu  sync.Mutex // a command that outlives its timeout may still write while run reads
	buf bytes.Buffer
	max int
	cut bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room < len(p) {
		b.cut = true
		if room > 0 {
			b.buf.Write(p[:room])
		}
		return len(p), nil
	}
	return b.buf.Write(p)
}

func (b *cappedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *cappedBuffer) wasCut() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.cut
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	tail := strings.TrimSpace(strings.Join(lines, "\n"))
	// A hostile or broken program may print megabytes on one line: an
	// error message keeps the end of it only, on a rune boundary.
	if len(tail) > maxErrorTail {
		cut := len(tail) - maxErrorTail
		for cut < len(tail) && !utf8.RuneStart(tail[cut]) {
			cut++
		}
		tail = "…" + tail[cut:]
	}
	return tail
}

// maxErrorTail bounds the stderr an error message carries.
const maxErrorTail = 2048
