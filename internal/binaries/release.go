package binaries

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Release is where the folder's missing binaries are downloaded from: a
// URL template in which {version} and {name} are replaced, as the
// Kubernetes project publishes them
// (https://dl.k8s.io/release/{version}/bin/linux/amd64/{name}, with each
// file's SHA-256 at the same URL plus ".sha256").
type Release struct {
	URL     string
	Version string
	Names   []string // Required when empty
}

// URLOf is where name is downloaded from.
func (r Release) URLOf(name string) string {
	return strings.NewReplacer("{version}", r.Version, "{name}", name).Replace(r.URL)
}

// maxBinary bounds one download: the largest Kubernetes binary is ~120 MB.
const maxBinary = 1 << 30

// Fill downloads into dir each binary of the release that dir lacks, or
// has with another sum, and writes dir's SHA256SUMS. Each file is checked
// against a pinned sum: the folder's SHA256SUMS line for it when there is
// one (the operator's), else the release's NAME.sha256. A download goes to
// a temporary name, is hashed as it is written, and takes its name only
// when its sum matches: a failed or cut-short run leaves nothing half
// written, and the next one downloads only what is still missing.
func Fill(ctx context.Context, client *http.Client, dir string, r Release) error {
	names := r.Names
	if len(names) == 0 {
		names = Required
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("binaries: %w", err)
	}
	sumsPath := filepath.Join(dir, SumsFile)
	sums := map[string]string{}
	if data, err := os.ReadFile(sumsPath); err == nil {
		if sums, err = ParseSums(sumsPath, data); err != nil {
			return err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("binaries: %w", err)
	}
	for _, name := range names {
		if _, ok := Dest(name); !ok {
			return fmt.Errorf("binaries: fleet does not install %q", name)
		}
		want := sums[name]
		if want == "" {
			var err error
			if want, err = publishedSum(ctx, client, r.URLOf(name)+".sha256"); err != nil {
				return err
			}
		}
		path := filepath.Join(dir, name)
		if have, err := FileSHA256(path); err == nil && have == want {
			sums[name] = want
			continue
		}
		if err := download(ctx, client, r.URLOf(name), path, want); err != nil {
			return err
		}
		sums[name] = want
	}
	return writeSums(sumsPath, sums)
}

// publishedSum reads a release's NAME.sha256: the hex sum, optionally
// followed by the file name (sha256sum's format).
func publishedSum(ctx context.Context, client *http.Client, url string) (string, error) {
	body, err := get(ctx, client, url)
	if err != nil {
		return "", err
	}
	defer body.Close()
	data, err := io.ReadAll(io.LimitReader(body, 4096))
	if err != nil {
		return "", fmt.Errorf("binaries: %s: %w", url, err)
	}
	sum := strings.ToLower(strings.TrimSpace(strings.SplitN(strings.TrimSpace(string(data)), " ", 2)[0]))
	if raw, err := hex.DecodeString(sum); err != nil || len(raw) != sha256.Size {
		return "", fmt.Errorf("binaries: %s is not a SHA-256 sum: %.80q", url, data)
	}
	return sum, nil
}

// download writes url's body to path if its SHA-256 is want.
func download(ctx context.Context, client *http.Client, url, path, want string) error {
	body, err := get(ctx, client, url)
	if err != nil {
		return err
	}
	defer body.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".download-*")
	if err != nil {
		return fmt.Errorf("binaries: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(body, maxBinary+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("binaries: download %s: %w", url, err)
	}
	if n > maxBinary {
		return fmt.Errorf("binaries: %s is larger than %d bytes", url, maxBinary)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return &ChecksumError{Path: url, Got: got, Want: want}
	}
	if err := os.Chmod(tmp.Name(), 0o755); err != nil {
		return fmt.Errorf("binaries: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("binaries: %w", err)
	}
	return nil
}

func get(ctx context.Context, client *http.Client, url string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("binaries: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("binaries: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("binaries: GET %s: %s", url, resp.Status)
	}
	return resp.Body, nil
}

// FileSHA256 is the hex SHA-256 of a file's content.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeSums writes SHA256SUMS in sha256sum's format, sorted, atomically.
func writeSums(path string, sums map[string]string) error {
	names := make([]string, 0, len(sums))
	for n := range sums {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "%s  %s\n", sums[n], n)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+SumsFile+"-*")
	if err != nil {
		return fmt.Errorf("binaries: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(b.String()); err != nil {
		tmp.Close()
		return fmt.Errorf("binaries: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("binaries: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("binaries: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}
