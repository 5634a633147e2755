package playbooks

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strings"
	"syscall"
	"time"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/lock"
)

// lockHost is the host that holds the cluster lock: the inventory's first
// master, which every changing run needs anyway.
func (s *Session) lockHost() string { return s.Inv.Masters[0].Name }

// releaseTimeout bounds the release after the run's context has ended
// (Ctrl-C): the lock must go, but not at the price of hanging.
const releaseTimeout = 15 * time.Second

// withLock runs fn holding the cluster lock for operation, and releases it
// however fn ends, Ctrl-C included. A release that fails is an error of the
// run: the user must know the next run will find a lock to break.
func (s *Session) withLock(ctx context.Context, operation string, fn func() error) (err error) {
	host := s.lockHost()
	holder := lock.NewHolder(operator(), os.Getpid(), operation, time.Now())
	holder.Origin = processOrigin()
	a, err := acquire(ctx, s, host, holder)
	if err != nil {
		return err
	}
	if !a.Acquired && a.HolderErr == nil && a.Holder.Gone(holder.Origin, processAlive) {
		// A run on this machine that died (killed, crashed, lost its
		// master and could not release): nobody can be running under it.
		if _, err := Unlock(ctx, s, &a); err != nil {
			return err
		}
		s.note("lock", host, "broke the lock of a run that has ended: "+a.Holder.String())
		if a, err = acquire(ctx, s, host, holder); err != nil {
			return err
		}
	}
	if !a.Acquired {
		return &lock.HeldError{Host: host, Answer: a}
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		if _, rerr := s.run(rctx, host, exec.Command("sh", "-c", lock.ReleaseScript, "fleet-lock", lock.Path, holder.Encode())); rerr != nil {
			err = errors.Join(err, fmt.Errorf("%s: release the cluster lock %s (the next run from this machine breaks it, this run having ended; from another, fleet unlock): %w", host, lock.Path, rerr))
		}
	}()
	return fn()
}

// acquire runs the lock's acquire script on the lock host.
func acquire(ctx context.Context, s *Session, host string, holder lock.Holder) (lock.Answer, error) {
	res, err := s.run(ctx, host, exec.Command("sh", "-c", lock.AcquireScript, "fleet-lock", lock.Path, holder.Encode()))
	if err != nil {
		return lock.Answer{}, fmt.Errorf("%s: take the cluster lock: %w", host, err)
	}
	a, err := lock.ParseAnswer(res.Stdout)
	if err != nil {
		return lock.Answer{}, fmt.Errorf("%s: take the cluster lock: %w", host, err)
	}
	return a, nil
}

// processOrigin names the space this process's PID lives in: the boot ID
// and the PID namespace. Empty where /proc cannot tell (not Linux): a lock
// from such a machine is never taken for gone.
func processOrigin() string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(boot)) + ":" + ns
}

// processAlive: a process with this PID exists (signal 0 checks without
// sending; EPERM means it exists under another user).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// LockHolder reads the cluster lock; nil when nobody holds it.
func LockHolder(ctx context.Context, s *Session) (*lock.Answer, error) {
	return lockScript(ctx, s, "read the cluster lock", lock.PeekScript)
}

// Unlock breaks the cluster lock left by a run that crashed or was killed.
// With shown (what LockHolder returned and the user agreed to break), only
// that lock goes: one a new run took meanwhile stays, and Unlock says so.
// It returns the lock it removed, nil when there was none.
func Unlock(ctx context.Context, s *Session, shown *lock.Answer) (*lock.Answer, error) {
	expect := ""
	if shown != nil {
		expect = shown.Raw
	}
	a, err := lockScript(ctx, s, "break the cluster lock", lock.BreakScript, expect)
	if err == nil && a != nil && a.Changed {
		return nil, fmt.Errorf("%s: the lock changed hands since it was shown, now %s: left in place", s.lockHost(), a.Holder)
	}
	return a, err
}

// lockScript runs one of the lock's scripts on the lock host.
func lockScript(ctx context.Context, s *Session, what, script string, args ...string) (*lock.Answer, error) {
	host := s.lockHost()
	res, err := s.run(ctx, host, exec.Command(append([]string{"sh", "-c", script, "fleet-lock", lock.Path}, args...)...))
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", host, what, err)
	}
	a, err := lock.ParseAnswer(res.Stdout)
	if err != nil {
		return nil, fmt.Errorf("%s: %s: %w", host, what, err)
	}
	if !a.Held {
		return nil, nil
	}
	return &a, nil
}

// operator names who runs fleet, for the lock file: user@machine.
func operator() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	machine, err := os.Hostname()
	if err != nil {
		machine = "unknown"
	}
	return name + "@" + machine
}

// locked is withLock for a playbook that returns a result.
func locked[T any](ctx context.Context, s *Session, operation string, fn func() (T, error)) (T, error) {
	var out T
	err := s.withLock(ctx, operation, func() (err error) {
		out, err = fn()
		return err
	})
	return out, err
}
