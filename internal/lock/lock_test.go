package lock

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHolderRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 25, 6, 40, 12, 345, time.FixedZone("CET", 3600))
	tests := []struct {
		name, who, wantWho string
	}{
		{"plain", "root@ops1", "root@ops1"},
		{"newline in the machine name stays on its line", "root@evil\noperation=reset", "root@evil?operation=reset"},
		{"unicode", "zoë@opérateur", "zoë@opérateur"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHolder(tt.who, 4242, "apply", now)
			h.Origin = "6d1f5c1e-0d4b-4f43-9f2e-3c1a8f1e9b7a:4026531836"
			got, err := Parse(h.Encode())
			if err != nil {
				t.Fatal(err)
			}
			want := h
			want.Who = tt.wantWho
			if got != want {
				t.Errorf("got %+v\nwant %+v", got, want)
			}
			if got.Since.Nanosecond() != 0 || got.Since.Location() != time.UTC {
				t.Errorf("since %v: want whole seconds in UTC", got.Since)
			}
		})
	}
	a, b := NewHolder("x", 1, "apply", now), NewHolder("x", 1, "apply", now)
	if a.Nonce == b.Nonce || len(a.Nonce) != 16 {
		t.Errorf("nonces %q and %q: want two different 16-digit ones", a.Nonce, b.Nonce)
	}
}

func TestHolderGone(t *testing.T) {
	const here = "boot-1:4026531836"
	alive := func(pid int) bool { return pid == 100 }
	for _, tc := range []struct {
		name   string
		origin string
		pid    int
		gone   bool
	}{
		{"ended process of this boot and namespace", here, 200, true},
		{"running process", here, 100, false},
		{"another boot (the PID was reused or the machine rebooted)", "boot-0:4026531836", 200, false},
		{"another PID namespace (a container)", "boot-1:4026532000", 200, false},
		{"a lock from before origins, or from another OS", "", 200, false},
		{"no PID", here, 0, false},
	} {
		h := Holder{Who: "op@m", PID: tc.pid, Origin: tc.origin}
		if got := h.Gone(here, alive); got != tc.gone {
			t.Errorf("%s: Gone = %v, want %v", tc.name, got, tc.gone)
		}
	}
}

func TestParseRefusesBrokenFiles(t *testing.T) {
	tests := []struct{ name, content, want string }{
		{"empty (crashed mid-write)", "", "not key=value"},
		{"no since", "who=a\npid=1\noperation=apply", "has no since"},
		{"bad pid", "who=a\npid=x\noperation=apply\nsince=2026-11-25T06:00:00Z", `pid "x"`},
		{"bad time", "who=a\npid=1\noperation=apply\nsince=yesterday", `since "yesterday"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.content)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestParseAnswer(t *testing.T) {
	holder := NewHolder("root@ops1", 7, "join", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	tests := []struct {
		name, out string
		want      Answer
		wantErr   bool
	}{
		{"acquired", "acquired\n", Answer{Acquired: true}, false},
		{"free", "free\n", Answer{}, false},
		{"held", "held\n" + holder.Encode(), Answer{Held: true, Holder: holder, Raw: holder.Encode()}, false},
		{"changed", "changed\n" + holder.Encode(), Answer{Held: true, Changed: true, Holder: holder, Raw: holder.Encode()}, false},
		{"garbage", "sh: 1: permission denied\n", Answer{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseAnswer(tt.out)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("got %+v, %v; want %+v (error %v)", got, err, tt.want, tt.wantErr)
			}
		})
	}
	got, _ := ParseAnswer("held\n")
	if !got.Held || got.HolderErr == nil {
		t.Errorf("an empty lock file: got %+v, want held with an unreadable holder", got)
	}
	msg := (&HeldError{Host: "master0", Answer: got}).Error()
	if !strings.Contains(msg, "unreadable lock") || !strings.Contains(msg, "fleet unlock") {
		t.Errorf("message %q: want it to say the lock is unreadable and how to break it", msg)
	}
}

// sh runs one of the scripts with the machine's /bin/sh, as the hosts do.
func sh(t *testing.T, script string, args ...string) string {
	t.Helper()
	out, err := exec.Command("/bin/sh", append([]string{"-c", script, "fleet-lock"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return string(out)
}

// TestScriptsOneWinnerAndOwnRelease races the acquire script against
// itself: exactly one run gets the lock, the others see its holder; only
// the winner's release removes it; break removes any lock.
func TestScriptsOneWinnerAndOwnRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "var/lib/fleet/lock")
	const racers = 16
	holders := make([]Holder, racers)
	answers := make([]Answer, racers)
	var wg sync.WaitGroup
	for i := range racers {
		holders[i] = NewHolder("op@machine", 1000+i, "apply", time.Now())
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := ParseAnswer(sh(t, AcquireScript, path, holders[i].Encode()))
			if err != nil {
				t.Error(err)
			}
			answers[i] = a
		}()
	}
	wg.Wait()
	winner := -1
	for i, a := range answers {
		if a.Acquired {
			if winner >= 0 {
				t.Fatalf("runs %d and %d both acquired the lock", winner, i)
			}
			winner = i
		}
	}
	if winner < 0 {
		t.Fatal("nobody acquired the lock")
	}
	for i, a := range answers {
		if i != winner && (!a.Held || a.Holder != holders[winner]) {
			t.Errorf("run %d: got %+v, want it to see the winner %+v", i, a, holders[winner])
		}
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("lock file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}

	loser := (winner + 1) % racers
	sh(t, ReleaseScript, path, holders[loser].Encode())
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("a run that did not hold the lock removed it: %v", err)
	}
	sh(t, ReleaseScript, path, holders[winner].Encode())
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("the holder's release left the lock: %v", err)
	}

	sh(t, AcquireScript, path, holders[loser].Encode())
	peek, err := ParseAnswer(sh(t, PeekScript, path))
	if err != nil || !peek.Held || peek.Holder != holders[loser] {
		t.Fatalf("peek: got %+v, %v; want it to report %+v", peek, err, holders[loser])
	}
	stale, _ := ParseAnswer(sh(t, BreakScript, path, holders[winner].Encode()))
	if !stale.Changed || stale.Holder != holders[loser] {
		t.Errorf("break of a lock that is not the one shown: got %+v, want it refused", stale)
	}
	broken, err := ParseAnswer(sh(t, BreakScript, path, peek.Raw))
	if err != nil || !broken.Held || broken.Changed || broken.Holder != holders[loser] {
		t.Errorf("break: got %+v, %v; want it to report %+v", broken, err, holders[loser])
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("break left the lock: %v", err)
	}
	if again, _ := ParseAnswer(sh(t, BreakScript, path, "")); again.Held {
		t.Errorf("break of a free lock reported %+v", again)
	}
}
