package playbooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/mux"
)

// MuxDirEnv names the folder of the connection holder (--persist), for
// tests and for users who want it elsewhere.
const MuxDirEnv = "FLEET_MUX_DIR"

// MuxDir is where the connection holder listens: $FLEET_MUX_DIR, else the
// user's runtime folder (a tmpfs only they may enter), else their cache
// folder.
func MuxDir() string {
	if d := os.Getenv(MuxDirEnv); d != "" {
		return d
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "fleet")
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "fleet", "mux")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("fleet-mux-%d", os.Getuid()))
}

// KeepConnections has the session's connections lent by the holder in
// dir, which keeps each open idle long after the last run that used it
// (OpenSSH's ControlPersist). When none listens, this program is started
// with holderArgs (its command that calls ServeConnections) to be one.
func (o *Options) KeepConnections(dir string, idle time.Duration, holderArgs ...string) {
	var once sync.Once
	var startErr error
	o.Persist = func(ctx context.Context, cfg exec.Config) (*ssh.Client, error) {
		target, err := json.Marshal(cfg.Target())
		if err != nil {
			return nil, err
		}
		c, err := mux.Connect(ctx, dir, target)
		if !errors.Is(err, mux.ErrNoHolder) {
			return c, err
		}
		once.Do(func() { startErr = startHolder(ctx, dir, idle, holderArgs) })
		if startErr != nil {
			return nil, startErr
		}
		return mux.Connect(ctx, dir, target)
	}
}

// startHolder starts this program as the holder, in its own session (it
// outlives the run), and waits until it listens.
func startHolder(ctx context.Context, dir string, idle time.Duration, args []string) error {
	if err := mux.PrivateDir(dir); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(dir, "mux.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := osexec.Command(self, append(args, "--dir", dir, "--idle", idle.String())...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the connection holder: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	sock := filepath.Join(dir, mux.SocketName)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		if c, err := net.Dial("unix", sock); err == nil { // listening, not only bound
			c.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the connection holder ended: %v (see %s)", err, logf.Name())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("the connection holder does not listen at %s", sock)
}

// ServeConnections is the connection holder: it dials each host a run
// asks for as that run would (its known_hosts, keys, agent) and lends the
// connection to every run that asks until idle passes with none.
func ServeConnections(ctx context.Context, dir string, idle time.Duration) error {
	s := &mux.Server{Dir: dir, Idle: idle, Dial: func(ctx context.Context, raw json.RawMessage) (*ssh.Client, error) {
		var t exec.Target
		if err := json.Unmarshal(raw, &t); err != nil {
			return nil, err
		}
		cfg, err := t.Config()
		if err != nil {
			return nil, err
		}
		conn, err := exec.Dial(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return conn.SSHClient(), nil
	}}
	return s.Serve(ctx)
}
