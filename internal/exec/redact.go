package exec

import (
	"bytes"
	"io"
	"sort"
	"strings"
	"sync"
)

// Mask replaces a secret wherever fleet prints or logs text.
const Mask = "[REDACTED]"

// minSecretLen keeps a caller from registering something so short that
// masking it would garble ordinary output.
const minSecretLen = 6

// Redactor removes registered secrets from text. One Redactor belongs to a
// run; every connection, logger and printer of that run shares it.
type Redactor struct {
	mu       sync.RWMutex
	secrets  map[string]struct{}
	replacer *strings.Replacer
}

// NewRedactor returns a Redactor that knows no secrets yet.
func NewRedactor() *Redactor {
	return &Redactor{secrets: map[string]struct{}{}, replacer: strings.NewReplacer()}
}

// Add registers secrets. Values shorter than a few bytes are ignored: they
// cannot be secrets fleet generates and would mask random output.
func (r *Redactor) Add(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	changed := false
	for _, s := range secrets {
		if len(s) < minSecretLen {
			continue
		}
		if _, ok := r.secrets[s]; !ok {
			r.secrets[s] = struct{}{}
			changed = true
		}
	}
	if !changed {
		return
	}
	// Longest first, so a secret that contains another is masked whole.
	all := make([]string, 0, len(r.secrets))
	for s := range r.secrets {
		all = append(all, s)
	}
	sort.Slice(all, func(i, j int) bool { return len(all[i]) > len(all[j]) })
	pairs := make([]string, 0, 2*len(all))
	for _, s := range all {
		pairs = append(pairs, s, Mask)
	}
	r.replacer = strings.NewReplacer(pairs...)
}

// Len is how many secrets are registered.
func (r *Redactor) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.secrets)
}

// String returns s with every registered secret masked.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	r.mu.RLock()
	rep := r.replacer
	r.mu.RUnlock()
	return rep.Replace(s)
}

// Writer wraps w so that everything written through it is redacted. It
// buffers up to a newline so that a secret split across two writes is still
// found; Flush (or Close) writes a trailing partial line.
func (r *Redactor) Writer(w io.Writer) *RedactingWriter {
	return &RedactingWriter{r: r, w: w}
}

// RedactingWriter is a line-buffered writer that masks secrets.
type RedactingWriter struct {
	mu  sync.Mutex
	r   *Redactor
	w   io.Writer
	buf []byte
}

func (rw *RedactingWriter) Write(p []byte) (int, error) {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	rw.buf = append(rw.buf, p...)
	if i := bytes.LastIndexByte(rw.buf, '\n'); i >= 0 {
		line := rw.buf[:i+1]
		if _, err := io.WriteString(rw.w, rw.r.String(string(line))); err != nil {
			return 0, err
		}
		rw.buf = append(rw.buf[:0], rw.buf[i+1:]...)
	}
	return len(p), nil
}

// Flush writes what is buffered, redacted.
func (rw *RedactingWriter) Flush() error {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	if len(rw.buf) == 0 {
		return nil
	}
	_, err := io.WriteString(rw.w, rw.r.String(string(rw.buf)))
	rw.buf = rw.buf[:0]
	return err
}

// Close flushes; it does not close the underlying writer.
func (rw *RedactingWriter) Close() error { return rw.Flush() }
