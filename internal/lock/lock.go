// Package lock is the cluster lock: one file on the first master that a
// changing fleet run (apply, join, remove, rotate-tokens, reset) creates
// before it touches anything and removes when it ends. A second run finds
// it and is refused with the holder's identity and start time; a lock left
// by a crashed run is broken explicitly (fleet unlock), never by a timeout,
// because a slow run and a dead one look alike from outside. The one lock a
// run breaks itself is one whose holder is provably gone: taken in this
// machine's current boot and PID namespace by a process that has ended.
//
// The package holds the record and the shell scripts; the caller runs the
// scripts on the host with their arguments as positional parameters, so
// nothing here is ever spliced into a command line.
package lock

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Path is where the lock lives on the first master.
const Path = "/var/lib/fleet/lock"

// Holder is who holds the lock: written into the lock file, shown to the
// run that is refused.
type Holder struct {
	Who       string    // user@machine of the operator
	PID       int       // fleet's process on that machine
	Operation string    // apply, join, ...
	Since     time.Time // when the lock was taken
	// Nonce tells this run's lock from one taken after it was broken: a run
	// releases only the lock it took.
	Nonce string
	// Origin is the process space PID is valid in: the machine's boot ID
	// and PID namespace; empty where fleet cannot tell (not Linux).
	Origin string
}

// Gone: the holder's process has ended, provably. Only a lock taken in the
// same process space (origin) can say so: a PID from another machine, boot
// or container means nothing here.
func (h Holder) Gone(origin string, alive func(pid int) bool) bool {
	return h.Origin != "" && h.Origin == origin && h.PID > 0 && !alive(h.PID)
}

// NewHolder describes this run.
func NewHolder(who string, pid int, operation string, now time.Time) Holder {
	b := make([]byte, 8)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail
	return Holder{Who: who, PID: pid, Operation: operation, Since: now.UTC().Truncate(time.Second), Nonce: hex.EncodeToString(b)}
}

// Encode is the lock file's content: key=value lines, no trailing newline
// (the release script compares it with $(cat), which drops one).
func (h Holder) Encode() string {
	out := fmt.Sprintf("who=%s\npid=%d\noperation=%s\nsince=%s\nnonce=%s",
		clean(h.Who), h.PID, clean(h.Operation), h.Since.Format(time.RFC3339), h.Nonce)
	if h.Origin != "" {
		out += "\norigin=" + clean(h.Origin)
	}
	return out
}

// clean keeps a field on its line whatever the machine's name holds.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' || r < ' ' {
			return '?'
		}
		return r
	}, s)
}

// Parse reads a lock file. A file it cannot read still names a lock: the
// error says what was wrong with it.
func Parse(content string) (Holder, error) {
	var h Holder
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimRight(content, "\n"), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return h, fmt.Errorf("lock file line %q is not key=value", line)
		}
		seen[k] = true
		switch k {
		case "who":
			h.Who = v
		case "pid":
			n, err := strconv.Atoi(v)
			if err != nil {
				return h, fmt.Errorf("lock file pid %q: %w", v, err)
			}
			h.PID = n
		case "operation":
			h.Operation = v
		case "since":
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				return h, fmt.Errorf("lock file since %q: %w", v, err)
			}
			h.Since = t
		case "nonce":
			h.Nonce = v
		case "origin":
			h.Origin = v
		}
	}
	for _, k := range []string{"who", "pid", "operation", "since"} {
		if !seen[k] {
			return h, fmt.Errorf("lock file has no %s", k)
		}
	}
	return h, nil
}

// String is the holder as a person reads it.
func (h Holder) String() string {
	return fmt.Sprintf("%s (pid %d), running %s since %s", h.Who, h.PID, h.Operation, h.Since.Format(time.RFC3339))
}

// AcquireScript creates the lock file only if there is none ($1 the path,
// $2 the content). noclobber makes the shell open it with O_EXCL, so of two
// runs racing exactly one wins. It prints "acquired", or "held" and the
// current content.
const AcquireScript = `umask 077
mkdir -p "$(dirname "$1")" || exit 1
if (set -C; printf '%s' "$2" > "$1") 2>/dev/null; then echo acquired; exit 0; fi
if [ -e "$1" ]; then echo held; cat "$1"; exit 0; fi
echo "cannot create $1" >&2; exit 1`

// ReleaseScript removes the lock if it is still this run's ($1 path, $2 the
// content this run wrote).
const ReleaseScript = `if [ "$(cat "$1" 2>/dev/null)" = "$2" ]; then rm -f "$1"; fi`

// PeekScript prints the lock without touching it ($1 path).
const PeekScript = `if [ -e "$1" ]; then echo held; cat "$1"; else echo free; fi`

// BreakScript removes the lock and prints what it held ($1 path). With $2,
// only if the lock is still exactly $2: the one the user was shown and
// agreed to break, not one a new run took meanwhile.
const BreakScript = `[ -e "$1" ] || { echo free; exit 0; }
c=$(cat "$1")
if [ -n "$2" ] && [ "$c" != "$2" ]; then echo changed; printf '%s' "$c"; exit 0; fi
rm -f "$1"; echo held; printf '%s' "$c"`

// Answer is what AcquireScript or BreakScript printed.
type Answer struct {
	Acquired bool   // the lock is now ours (AcquireScript)
	Held     bool   // someone held it; Holder, or HolderErr when unreadable
	Changed  bool   // BreakScript: the lock was not the one expected, and stays
	Holder   Holder //
	Raw      string // the lock file's content
	// HolderErr: the file was there but not a lock fleet wrote in full (a
	// run that crashed mid-write, or a hand-made file).
	HolderErr error
}

// ParseAnswer reads the scripts' output.
func ParseAnswer(out string) (Answer, error) {
	first, rest, _ := strings.Cut(out, "\n")
	switch first {
	case "acquired":
		return Answer{Acquired: true}, nil
	case "free":
		return Answer{}, nil
	case "held", "changed":
		h, err := Parse(rest)
		return Answer{Held: true, Changed: first == "changed", Holder: h, HolderErr: err, Raw: rest}, nil
	}
	return Answer{}, fmt.Errorf("unexpected answer from the lock script: %q", out)
}

// HeldError refuses a run because another holds the lock.
type HeldError struct {
	Host   string // the host the lock is on
	Answer Answer
}

// Who names the holder for people, or says the lock file is unreadable.
func (a Answer) Who() string {
	if a.HolderErr != nil {
		return "an unreadable lock (" + a.HolderErr.Error() + ")"
	}
	return a.Holder.String()
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("the cluster is locked by %s (%s on %s); wait for that run, or if it is gone (crashed, killed), break the lock with `fleet unlock`",
		e.Answer.Who(), Path, e.Host)
}
