package playbooks

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/fleetops/fleet/internal/exec"
)

// run runs a command on an inventory host.
func (s *Session) run(ctx context.Context, host, cmd string) (exec.Result, error) {
	conn, err := s.Conn(ctx, host)
	if err != nil {
		return exec.Result{}, err
	}
	return conn.Run(ctx, cmd)
}

// upload places a file on a host, atomically.
func (s *Session) upload(ctx context.Context, host, path string, data []byte, mode os.FileMode) error {
	conn, err := s.Conn(ctx, host)
	if err != nil {
		return err
	}
	return conn.Upload(ctx, path, data, mode)
}

// readFile returns a file's content from a host.
func (s *Session) readFile(ctx context.Context, host, path string) ([]byte, error) {
	res, err := s.run(ctx, host, exec.Command("cat", path))
	if err != nil {
		return nil, err
	}
	return []byte(res.Stdout), nil
}

// allExist reports whether every path exists on the host.
func (s *Session) allExist(ctx context.Context, host string, paths ...string) (bool, error) {
	var tests []string
	for _, p := range paths {
		tests = append(tests, exec.Command("test", "-e", p))
	}
	res, err := s.run(ctx, host, strings.Join(tests, " && ")+" && echo yes || echo no")
	if err != nil {
		return false, err
	}
	switch strings.TrimSpace(res.Stdout) {
	case "yes":
		return true, nil
	case "no":
		return false, nil
	}
	return false, fmt.Errorf("%s: unexpected answer %q", host, res.Stdout)
}
