package exec

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeys verifies server host keys against one known_hosts file. Unknown
// hosts are refused unless AcceptNew is set, in which case their key is
// appended to the file (trust on first use). A host whose key changed is
// always refused. One HostKeys is shared by every connection of a run so that
// concurrent first-use additions do not race on the file.
type HostKeys struct {
	path      string
	acceptNew bool

	mu    sync.Mutex
	check ssh.HostKeyCallback
	// authorities are the file's @cert-authority lines, by line number:
	// knownhosts reports their keys among the ones a host should have.
	authorities map[int]bool
}

// LoadHostKeys reads path. A missing file is an empty list; with acceptNew
// it is created (0600, parent 0700) on the first addition.
func LoadHostKeys(path string, acceptNew bool) (*HostKeys, error) {
	k := &HostKeys{path: path, acceptNew: acceptNew}
	if err := k.reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// Path is the known_hosts file in use.
func (k *HostKeys) Path() string { return k.path }

func (k *HostKeys) reload() error {
	if _, err := os.Stat(k.path); errors.Is(err, os.ErrNotExist) {
		k.check = func(string, net.Addr, ssh.PublicKey) error {
			return &knownhosts.KeyError{} // no entries: every host is unknown
		}
		return nil
	}
	cb, err := knownhosts.New(k.path)
	if err != nil {
		return fmt.Errorf("known_hosts %s: %w", k.path, err)
	}
	data, err := os.ReadFile(k.path)
	if err != nil {
		return fmt.Errorf("known_hosts %s: %w", k.path, err)
	}
	k.authorities = map[int]bool{}
	for i, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "@cert-authority") {
			k.authorities[i+1] = true
		}
	}
	k.check = cb
	return nil
}

// splitKnown separates the host keys on file for a host from the
// certificate authorities that may sign its key.
func (k *HostKeys) splitKnown(known []knownhosts.KnownKey) (keys []knownhosts.KnownKey, authorities int) {
	for _, w := range known {
		if k.authorities[w.Line] {
			authorities++
			continue
		}
		keys = append(keys, w)
	}
	return keys, authorities
}

// HostKeyMismatchError means a host offered a key other than the one on file.
type HostKeyMismatchError struct {
	Host, Address string
	Offered       ssh.PublicKey
	Known         []knownhosts.KnownKey
}

func (e *HostKeyMismatchError) Error() string {
	var want []string
	for _, k := range e.Known {
		want = append(want, fmt.Sprintf("%s %s (%s:%d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Filename, k.Line))
	}
	return fmt.Sprintf("host key mismatch for %s (%s): known_hosts expects %s but the host offered %s %s; "+
		"refusing to connect (possible man-in-the-middle). If the host was reinstalled, remove the old entry with: ssh-keygen -f %s -R %s",
		e.Host, e.Address, strings.Join(want, ", "), e.Offered.Type(), ssh.FingerprintSHA256(e.Offered),
		Quote(e.Known[0].Filename), Quote(knownhosts.Normalize(e.Address)))
}

// UnknownHostError means the host has no entry in known_hosts.
type UnknownHostError struct {
	Host, Address, KnownHosts string
	Offered                   ssh.PublicKey
}

func (e *UnknownHostError) Error() string {
	return fmt.Sprintf("host %s (%s) is not in %s (it offered %s %s); verify the fingerprint and add it, or rerun with --accept-new-host-keys to trust it on first use",
		e.Host, e.Address, e.KnownHosts, e.Offered.Type(), ssh.FingerprintSHA256(e.Offered))
}

// callback returns the ssh.HostKeyCallback for one inventory host.
func (k *HostKeys) callback(host string) ssh.HostKeyCallback {
	return func(hostport string, remote net.Addr, key ssh.PublicKey) error {
		k.mu.Lock()
		defer k.mu.Unlock()
		err := k.check(hostport, remote, key)
		if err == nil {
			return nil
		}
		var keyErr *knownhosts.KeyError
		if !errors.As(err, &keyErr) {
			return err // revoked key, a certificate no authority signed, unreadable file
		}
		// A host with only an authority on file that offers a plain key is
		// unknown, not changed.
		if known, _ := k.splitKnown(keyErr.Want); len(known) > 0 {
			return &HostKeyMismatchError{Host: host, Address: hostport, Offered: key, Known: known}
		}
		if !k.acceptNew {
			return &UnknownHostError{Host: host, Address: hostport, KnownHosts: k.path, Offered: key}
		}
		if err := k.appendLocked(hostport, key); err != nil {
			return fmt.Errorf("host %s: adding key to %s: %w", host, k.path, err)
		}
		return nil
	}
}

// algorithms lists the key types on file for hostport so the client asks the
// server for a key it can verify, not just its preferred one.
func (k *HostKeys) algorithms(hostport string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	// Probe with a key that matches nothing: the error lists what is on file.
	err := k.check(hostport, &net.TCPAddr{}, probeKey{})
	var keyErr *knownhosts.KeyError
	if !errors.As(err, &keyErr) {
		return nil
	}
	known, authorities := k.splitKnown(keyErr.Want)
	if authorities > 0 {
		return nil // the client's defaults: certificates first, then plain keys
	}
	var algos []string
	seen := map[string]bool{}
	for _, w := range known {
		for _, a := range algorithmsForKeyType(w.Key.Type()) {
			if !seen[a] {
				seen[a] = true
				algos = append(algos, a)
			}
		}
	}
	return algos
}

func algorithmsForKeyType(t string) []string {
	if t == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{t}
}

func (k *HostKeys) appendLocked(hostport string, key ssh.PublicKey) error {
	if err := os.MkdirAll(filepath.Dir(k.path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(k.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(hostport)}, key) + "\n"
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return k.reload()
}

// probeKey is a public key no known_hosts line can match.
type probeKey struct{}

func (probeKey) Type() string                        { return "fleet-probe" }
func (probeKey) Marshal() []byte                     { return []byte("fleet-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe key") }
