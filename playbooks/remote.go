package playbooks

import (
	"context"
	"fmt"
	"os"
	"strconv"
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

// readFilesScript prints, for each path ($@), its size in bytes and its
// content, or -1 when it cannot be read: many files in one round trip,
// whatever bytes they hold.
const readFilesScript = `for f; do
if [ -f "$f" ] && [ -r "$f" ]; then wc -c < "$f"; cat "$f"; else echo -1; fi
done`

// readFiles returns the content of each readable file among paths (a
// missing one is absent from the map), in one remote command.
func (s *Session) readFiles(ctx context.Context, host string, paths ...string) (map[string][]byte, error) {
	res, err := s.run(ctx, host, exec.Command(append([]string{"sh", "-c", readFilesScript, "fleet-read"}, paths...)...))
	if err != nil {
		return nil, err
	}
	files, err := parseFiles(res.Stdout, paths)
	if err != nil {
		return nil, fmt.Errorf("%s: read %d files: %w", host, len(paths), err)
	}
	return files, nil
}

// parseFiles reads readFilesScript's answer for paths.
func parseFiles(out string, paths []string) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, p := range paths {
		line, rest, ok := strings.Cut(out, "\n")
		if !ok {
			return nil, fmt.Errorf("answer ends before %s", p)
		}
		n, err := strconv.Atoi(strings.TrimSpace(line)) // wc pads on some systems
		switch {
		case err != nil || n < -1:
			return nil, fmt.Errorf("size of %s: %q", p, line)
		case n == -1:
			out = rest
			continue
		case n > len(rest):
			return nil, fmt.Errorf("%s: %d bytes announced, %d left (it changed while read?)", p, n, len(rest))
		}
		files[p], out = []byte(rest[:n]), rest[n:]
	}
	if out != "" {
		return nil, fmt.Errorf("%d bytes after the last file", len(out))
	}
	return files, nil
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
