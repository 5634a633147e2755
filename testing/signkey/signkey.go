// Package signkey is a signing key for the test bed's package
// repositories (testing/aptrepo, testing/rpmrepo): a throwaway gpg key in a
// gpg home of its own, made for the run, so no key of the machine's user
// is ever touched.
package signkey

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Key is the key of one gpg home.
type Key struct {
	Home        string
	Fingerprint string // 40 hex digits
	Public      []byte // ASCII-armored
}

// New makes a throwaway key (RSA 2048, sign only, no passphrase) in the
// gpg home folder, which it creates.
func New(home string) (*Key, error) {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	k := &Key{Home: home}
	if _, err := k.GPG("", "--quick-gen-key", "fleet test repository <repo@fleet.invalid>", "rsa2048", "sign", "never"); err != nil {
		return nil, err
	}
	return k, k.read()
}

// Open is the key New made in home.
func Open(home string) (*Key, error) {
	k := &Key{Home: home}
	return k, k.read()
}

func (k *Key) read() error {
	var err error
	if k.Public, err = k.GPG("", "--armor", "--export"); err != nil {
		return err
	}
	listing, err := k.GPG("", "--with-colons", "--fingerprint")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(listing), "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			k.Fingerprint = f[9]
			return nil
		}
	}
	return fmt.Errorf("signkey: no fingerprint in gpg's listing of %s", k.Home)
}

// GPG runs gpg on the key's home in dir, without a terminal.
func (k *Key) GPG(dir string, args ...string) ([]byte, error) {
	return Run(dir, "gpg", append([]string{"--homedir", k.Home, "--batch", "--yes", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
}

// Run runs a program in dir and returns its stdout; its error holds the
// command line and what it said on stderr.
func Run(dir, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
