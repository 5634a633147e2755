package playbooks

import (
	"context"
	"fmt"
	"net"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/fleetops/fleet/internal/cfssl"
	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/steps"
)

// A phase is one unit of a playbook's graph: what one step does, with the
// values it needs as typed outputs of the steps before it. Its state check
// gets a probe, which can only look at hosts; its Run gets a remote, which
// can change them. So `fleet plan`, which runs only checks, cannot change
// a host, whatever a check does.
type phase interface {
	run(ctx context.Context, r remote, host string) error
}

// checker is a phase that can tell its work is done already.
type checker interface {
	check(ctx context.Context, p probe, host string) (done bool, reason string, err error)
}

// step binds a phase to the step that runs it: meta names it and says
// where it runs, after what, and which outputs it produces and consumes.
func (s *Session) step(meta steps.Step, p phase) steps.Step {
	meta.Run = func(ctx context.Context, host string) error {
		return p.run(exec.WithTask(ctx, meta.Name, host), s.remote(), host)
	}
	if c, ok := p.(checker); ok {
		meta.Check = func(ctx context.Context, host string) (bool, string, error) {
			return c.check(exec.WithTask(ctx, meta.Name, host), s.probe(), host)
		}
	}
	return meta
}

// probe is the read-only view of the hosts: files read, commands that
// only look. It has no upload, no folder making, no command that is meant
// to change a host.
type probe struct{ s *Session }

func (s *Session) probe() probe { return probe{s} }

// query runs a command that only looks.
func (p probe) query(ctx context.Context, host, cmd string) (exec.Result, error) {
	return p.s.run(ctx, host, cmd)
}

// queryInput is query with data on the command's stdin (kubectl diff -f -).
func (p probe) queryInput(ctx context.Context, host, cmd string, in []byte) (exec.Result, error) {
	conn, err := p.s.Conn(ctx, host)
	if err != nil {
		return exec.Result{}, err
	}
	return conn.RunInput(ctx, cmd, strings.NewReader(string(in)))
}

func (p probe) readFile(ctx context.Context, host, path string) ([]byte, error) {
	return p.s.readFile(ctx, host, path)
}

func (p probe) readFiles(ctx context.Context, host string, paths ...string) (map[string][]byte, error) {
	return p.s.readFiles(ctx, host, paths...)
}

func (p probe) allExist(ctx context.Context, host string, paths ...string) (bool, error) {
	return p.s.allExist(ctx, host, paths...)
}

// redact keeps secrets a check read (a kubeconfig's key) out of every output.
func (p probe) redact(secrets ...string) { p.s.Redactor.Add(secrets...) }

// redactPEM is redact for a private key: as it is, and base64 as
// kubeconfigs embed it.
func (p probe) redactPEM(pemKey []byte) { p.s.addSecretPEM(pemKey) }

// dialer dials through the host's connection (an SSH tunnel): to reach
// what listens only on its loopback, such as etcd.
func (p probe) dialer(ctx context.Context, host string) (func(context.Context, string, string) (net.Conn, error), error) {
	conn, err := p.s.Conn(ctx, host)
	if err != nil {
		return nil, err
	}
	return conn.DialContext, nil
}

// caPlatform is the CA host's platform, asked once per run.
func (p probe) caPlatform(ctx context.Context) (cfssl.Platform, error) { return p.s.caPlatform(ctx) }

// remote is the view of the hosts a step's Run gets: the probe's, and
// what changes a host.
type remote struct{ probe }

func (s *Session) remote() remote { return remote{probe{s}} }

func (r remote) run(ctx context.Context, host, cmd string) (exec.Result, error) {
	return r.s.run(ctx, host, cmd)
}

func (r remote) runInput(ctx context.Context, host, cmd string, in []byte) (exec.Result, error) {
	return r.queryInput(ctx, host, cmd, in)
}

// upload places a file on a host, atomically.
func (r remote) upload(ctx context.Context, host, path string, data []byte, mode os.FileMode) error {
	return r.s.upload(ctx, host, path, data, mode)
}

func (r remote) ensureDir(ctx context.Context, host, dir string, mode os.FileMode) error {
	conn, err := r.s.Conn(ctx, host)
	if err != nil {
		return err
	}
	return conn.EnsureDir(ctx, dir, mode)
}

// remoteFile is a file fleet writes on a host.
type remoteFile struct {
	path string
	data []byte
	mode os.FileMode
}

// uploadAll writes the files in order, making their folders first.
func (r remote) uploadAll(ctx context.Context, host string, files []remoteFile) error {
	made := map[string]bool{}
	for _, f := range files {
		if dir := path.Dir(f.path); !made[dir] {
			if err := r.ensureDir(ctx, host, dir, 0o755); err != nil {
				return err
			}
			made[dir] = true
		}
		if err := r.upload(ctx, host, f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	return nil
}

// note tells the user of something a step did beside its work.
func (r remote) note(step, host, what string) { r.s.note(step, host, what) }

// cfsslClient is the CA host's API with its auth key, read once per run.
func (r remote) cfsslClient(ctx context.Context) (*cfssl.Client, error) { return r.s.cfsslClient(ctx) }

// The session's own host access, under the views and for the playbooks
// that are not step graphs (lock, rotate-tokens, status).

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

// readFilesScript prints, for each path ($@), y when it can be read and n
// when not; then wc -c's sizes of the readable ones, and their contents
// one after the other: many files in one round trip, whatever bytes they
// hold, for two processes started whatever their number (every process
// costs, times every host).
const readFilesScript = `n=$#
for f; do
	if [ -f "$f" ] && [ -r "$f" ]; then echo y; set -- "$@" "$f"; else echo n; fi
done
shift "$n"
[ $# -eq 0 ] || { wc -c "$@" && cat "$@"; }`

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

// filesMarker ends a script's own output where queryWithFiles appends the
// files it reads.
const filesMarker = "--- fleet files ---"

// queryWithFiles runs script, then reads paths as readFiles does, in one
// remote command: a state check that needs both costs one round trip.
// It returns the script's output and the files it could read.
func (p probe) queryWithFiles(ctx context.Context, host, script string, paths ...string) (string, map[string][]byte, error) {
	reader := ":" // nothing to read: no process for it
	if len(paths) > 0 {
		reader = exec.Command(append([]string{"sh", "-c", readFilesScript, "fleet-read"}, paths...)...)
	}
	res, err := p.query(ctx, host, script+"\necho "+filesMarker+"\n"+reader)
	if err != nil {
		return "", nil, err
	}
	out, contents, ok := strings.Cut(res.Stdout, filesMarker+"\n")
	if !ok {
		return "", nil, fmt.Errorf("%s: unexpected answer %q", host, res.Stdout)
	}
	files, err := parseFiles(contents, paths)
	if err != nil {
		return "", nil, fmt.Errorf("%s: read %d files: %w", host, len(paths), err)
	}
	return out, files, nil
}

// parseFiles reads readFilesScript's answer for paths.
func parseFiles(out string, paths []string) (map[string][]byte, error) {
	line := func() (string, bool) {
		l, rest, ok := strings.Cut(out, "\n")
		out = rest
		return l, ok
	}
	var readable []string
	for _, p := range paths {
		l, ok := line()
		switch {
		case !ok:
			return nil, fmt.Errorf("answer ends before %s", p)
		case l == "y":
			readable = append(readable, p)
		case l != "n":
			return nil, fmt.Errorf("%s: %q, want y or n", p, l)
		}
	}
	sizes := make([]int, len(readable))
	total := 0
	for i, p := range readable {
		l, ok := line()
		f := strings.Fields(l) // wc pads on some systems
		if !ok || len(f) == 0 {
			return nil, fmt.Errorf("answer ends before the size of %s", p)
		}
		n, err := strconv.Atoi(f[0])
		if err != nil || n < 0 {
			return nil, fmt.Errorf("size of %s: %q", p, l)
		}
		sizes[i], total = n, total+n
	}
	if len(readable) > 1 { // wc's total line
		l, _ := line()
		if f := strings.Fields(l); len(f) == 0 || f[0] != strconv.Itoa(total) {
			return nil, fmt.Errorf("total %q, the sizes add up to %d", l, total)
		}
	}
	files := map[string][]byte{}
	for i, p := range readable {
		if sizes[i] > len(out) {
			return nil, fmt.Errorf("%s: %d bytes announced, %d left (it changed while read?)", p, sizes[i], len(out))
		}
		files[p], out = []byte(out[:sizes[i]]), out[sizes[i]:]
	}
	if out != "" {
		return nil, fmt.Errorf("%d bytes after the last file (one changed while read?)", len(out))
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
