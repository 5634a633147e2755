package exec

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
)

// Upload places data at dst with the given mode, atomically: the bytes go to
// a temporary file in dst's directory, are synced, get their mode, and only
// then replace dst with one rename. A reader of dst sees the old file or the
// new one, never a part; a failed or cancelled upload leaves the old file.
// Secrets should be uploaded with mode 0600: the temporary file has that mode
// before the first byte is written.
func (c *Conn) Upload(ctx context.Context, dst string, data []byte, mode os.FileMode) error {
	return c.UploadFrom(ctx, dst, bytes.NewReader(data), int64(len(data)), mode, nil)
}

// UploadFrom is Upload for size bytes read from r, so a large file (a
// kubelet binary) is streamed rather than held in memory. sent, when not
// nil, is told every chunk's length as it goes out.
func (c *Conn) UploadFrom(ctx context.Context, dst string, r io.Reader, size int64, mode os.FileMode, sent func(n int)) error {
	if !path.IsAbs(dst) {
		return fmt.Errorf("%s: upload %s: destination must be an absolute path", c.cfg.Host, dst)
	}
	src := &ctxReader{ctx: ctx, r: r, sent: sent}
	var err error
	if c.cfg.Sudo && c.cfg.User != "root" {
		err = c.uploadSudo(ctx, dst, src, size, mode)
	} else {
		err = c.uploadSFTP(ctx, dst, src, mode)
	}
	if err != nil {
		return fmt.Errorf("%s: upload %s: %w", c.cfg.Host, dst, err)
	}
	return nil
}

func (c *Conn) uploadSFTP(ctx context.Context, dst string, src io.Reader, mode os.FileMode) error {
	client, err := c.sftpClient()
	if err != nil {
		return err
	}
	tmp := tempName(dst)
	f, err := client.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			client.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	// Several writes in flight: the reader hides its size, which ReadFrom
	// would need to go concurrent by itself.
	if _, err := f.ReadFromWithConcurrency(src, 0); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := client.PosixRename(tmp, dst); err != nil {
		return err
	}
	ok = true
	return nil
}

// uploadScript writes stdin to a temp file beside $1 and renames it over $1
// once it holds exactly $3 bytes: a dropped connection ends stdin early, and
// a short file must never replace the old one.
const uploadScript = `set -e
t=$(mktemp "$(dirname "$1")/.fleet-upload.XXXXXX")
trap 'rm -f "$t"' EXIT
cat > "$t"
[ "$(($(wc -c < "$t")))" -eq "$3" ] || { echo "short write: got $(($(wc -c < "$t"))) of $3 bytes" >&2; exit 1; }
chmod "$2" "$t"
sync "$t" 2>/dev/null || sync
mv -f "$t" "$1"
trap - EXIT`

// uploadSudo streams data through a root shell, since the login user's SFTP
// session cannot write where Kubernetes keeps its files.
func (c *Conn) uploadSudo(ctx context.Context, dst string, src io.Reader, size int64, mode os.FileMode) error {
	cmd := Command("sh", "-c", uploadScript, "fleet-upload", dst,
		strconv.FormatUint(uint64(mode.Perm()), 8), strconv.FormatInt(size, 10))
	_, err := c.RunInput(ctx, cmd, src)
	return err
}

func tempName(dst string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return path.Join(path.Dir(dst), "."+path.Base(dst)+".fleet-"+hex.EncodeToString(b[:]))
}

// ctxReader stops a copy when its context ends, and counts what it gives.
type ctxReader struct {
	ctx  context.Context
	r    io.Reader
	sent func(n int) // may be nil
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.r.Read(p)
	if n > 0 && r.sent != nil {
		r.sent(n)
	}
	return n, err
}

// EnsureDir makes dir (and its parents) exist, giving dir the mode when it
// creates it. Over SFTP it costs no remote process, which matters on the
// critical path of an apply; through sudo it is one `install -d`.
func (c *Conn) EnsureDir(ctx context.Context, dir string, mode os.FileMode) error {
	if !path.IsAbs(dir) {
		return fmt.Errorf("%s: mkdir %s: must be an absolute path", c.cfg.Host, dir)
	}
	if c.cfg.Sudo && c.cfg.User != "root" {
		_, err := c.Run(ctx, Command("install", "-d", "-m", strconv.FormatUint(uint64(mode.Perm()), 8), dir))
		return err
	}
	client, err := c.sftpClient()
	if err != nil {
		return err
	}
	if st, err := client.Stat(dir); err == nil {
		if !st.IsDir() {
			return fmt.Errorf("%s: mkdir %s: exists and is not a directory", c.cfg.Host, dir)
		}
		return nil
	}
	if err := client.MkdirAll(dir); err != nil {
		return fmt.Errorf("%s: mkdir %s: %w", c.cfg.Host, dir, err)
	}
	if err := client.Chmod(dir, mode); err != nil {
		return fmt.Errorf("%s: chmod %s: %w", c.cfg.Host, dir, err)
	}
	return nil
}
