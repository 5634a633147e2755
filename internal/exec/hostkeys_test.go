package exec

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// sshServer is a real in-process SSH server on loopback that offers the
// given host keys (or certificates) and lets any client in: enough for
// the client's host-key verification to run as against sshd.
func sshServer(t *testing.T, hostKeys ...ssh.Signer) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	config := &ssh.ServerConfig{NoClientAuth: true}
	for _, k := range hostKeys {
		config.AddHostKey(k)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				conn, chans, reqs, err := ssh.NewServerConn(c, config)
				if err != nil {
					return
				}
				go ssh.DiscardRequests(reqs)
				for ch := range chans {
					ch.Reject(ssh.Prohibited, "test server")
				}
				conn.Close()
			}()
		}
	}()
	return l.Addr().String()
}

func ed25519Signer(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func rsaSigner(t *testing.T) ssh.Signer {
	t.Helper()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hostCert is host's key certified by ca for the principal 127.0.0.1.
func hostCert(t *testing.T, host, ca ssh.Signer) ssh.Signer {
	t.Helper()
	cert := &ssh.Certificate{Key: host.PublicKey(), CertType: ssh.HostCert, KeyId: "test host",
		ValidPrincipals: []string{"127.0.0.1"}, ValidBefore: ssh.CertTimeInfinity}
	if err := cert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewCertSigner(cert, host)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// dial connects to addr as the real connections do: callback and
// algorithms from k.
func dial(k *HostKeys, addr string) error {
	c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "fleet",
		HostKeyCallback: k.callback("node1"), HostKeyAlgorithms: k.algorithms(addr)})
	if err == nil {
		c.Close()
	}
	return err
}

func line(pattern string, key ssh.PublicKey) string {
	return pattern + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
}

func TestHostKeys(t *testing.T) {
	hostKey, otherKey, rsaKey, ca, otherCA := ed25519Signer(t), ed25519Signer(t), rsaSigner(t), ed25519Signer(t), ed25519Signer(t)

	cases := []struct {
		name       string
		serverKeys []ssh.Signer
		// known_hosts lines, given the server's address
		knownHosts func(addr string) []string
		acceptNew  bool
		want       func(t *testing.T, err error)
	}{
		{name: "known [host]:port entry",
			serverKeys: []ssh.Signer{hostKey},
			knownHosts: func(a string) []string { return []string{line(knownhosts.Normalize(a), hostKey.PublicKey())} },
			want:       accepted},
		{name: "hashed host entry",
			serverKeys: []ssh.Signer{hostKey},
			knownHosts: func(a string) []string {
				return []string{line(knownhosts.HashHostname(knownhosts.Normalize(a)), hostKey.PublicKey())}
			},
			want: accepted},
		{name: "entry without the port does not cover another port",
			serverKeys: []ssh.Signer{hostKey},
			knownHosts: func(string) []string { return []string{line("127.0.0.1", hostKey.PublicKey())} },
			want:       refusedAs[*UnknownHostError]},
		{name: "unknown host is refused by default",
			serverKeys: []ssh.Signer{hostKey},
			want:       refusedAs[*UnknownHostError]},
		{name: "changed key is refused with the line to remove",
			serverKeys: []ssh.Signer{hostKey},
			knownHosts: func(a string) []string { return []string{line(knownhosts.Normalize(a), otherKey.PublicKey())} },
			want: func(t *testing.T, err error) {
				refusedAs[*HostKeyMismatchError](t, err)
				if !strings.Contains(err.Error(), "ssh-keygen -f") {
					t.Errorf("mismatch error does not say how to remove the old entry: %v", err)
				}
			}},
		{name: "changed key is refused even when accepting new ones",
			serverKeys: []ssh.Signer{hostKey}, acceptNew: true,
			knownHosts: func(a string) []string { return []string{line(knownhosts.Normalize(a), otherKey.PublicKey())} },
			want:       refusedAs[*HostKeyMismatchError]},
		{name: "revoked key is refused though a line trusts it",
			serverKeys: []ssh.Signer{hostKey}, acceptNew: true,
			knownHosts: func(a string) []string {
				return []string{"@revoked * " + line("", hostKey.PublicKey())[1:], line(knownhosts.Normalize(a), hostKey.PublicKey())}
			},
			want: func(t *testing.T, err error) {
				var revoked *knownhosts.RevokedError
				if !errors.As(err, &revoked) {
					t.Fatalf("err = %v, want a revoked-key error", err)
				}
			}},
		{name: "certificate from a @cert-authority",
			serverKeys: []ssh.Signer{hostCert(t, hostKey, ca)},
			knownHosts: func(a string) []string {
				return []string{"@cert-authority " + line(anyHostOnPortOf(a), ca.PublicKey())}
			},
			want: accepted},
		{name: "certificate from another authority",
			serverKeys: []ssh.Signer{hostCert(t, hostKey, otherCA)},
			knownHosts: func(a string) []string {
				return []string{"@cert-authority " + line(anyHostOnPortOf(a), ca.PublicKey())}
			},
			want: refused},
		{name: "a plain key where only an authority is on file is unknown, not changed",
			serverKeys: []ssh.Signer{hostKey},
			knownHosts: func(a string) []string {
				return []string{"@cert-authority " + line(anyHostOnPortOf(a), ca.PublicKey())}
			},
			want: refusedAs[*UnknownHostError]},
		{name: "the key type on file is asked for, not the server's favourite",
			serverKeys: []ssh.Signer{hostKey, rsaKey},
			knownHosts: func(a string) []string { return []string{line(knownhosts.Normalize(a), rsaKey.PublicKey())} },
			want:       accepted},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr := sshServer(t, c.serverKeys...)
			path := filepath.Join(t.TempDir(), "known_hosts")
			if c.knownHosts != nil {
				if err := os.WriteFile(path, []byte(strings.Join(c.knownHosts(addr), "\n")+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			k, err := LoadHostKeys(path, c.acceptNew)
			if err != nil {
				t.Fatal(err)
			}
			c.want(t, dial(k, addr))
		})
	}
}

// anyHostOnPortOf is the pattern [*]:port: Go's knownhosts matches ports
// exactly, so a bare * covers port 22 only.
func anyHostOnPortOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return "[*]:" + port
}

func accepted(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("refused: %v", err)
	}
}

func refused(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("accepted a host it must refuse")
	}
}

func refusedAs[E error](t *testing.T, err error) {
	t.Helper()
	var want E
	if !errors.As(err, &want) {
		t.Fatalf("err = %v, want %T", err, want)
	}
}

// Trust on first use writes the key (0600, parent 0700) and from then on
// the host is known, also to a run that does not accept new keys, while
// another key for it is a mismatch.
func TestHostKeysTrustOnFirstUse(t *testing.T) {
	hostKey := ed25519Signer(t)
	addr := sshServer(t, hostKey)
	path := filepath.Join(t.TempDir(), "ssh", "known_hosts")

	k, err := LoadHostKeys(path, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := dial(k, addr); err != nil {
		t.Fatalf("first use: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := line(knownhosts.Normalize(addr), hostKey.PublicKey()) + "\n"; string(data) != want {
		t.Fatalf("known_hosts = %q, want %q", data, want)
	}
	for p, mode := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode().Perm(), err, mode)
		}
	}

	strict, err := LoadHostKeys(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := dial(strict, addr); err != nil {
		t.Fatalf("after first use: %v", err)
	}
	impostor := sshServer(t, ed25519Signer(t))
	// The impostor listens on another port; put the known key on its address.
	if err := os.WriteFile(path, []byte(line(knownhosts.Normalize(impostor), hostKey.PublicKey())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	again, err := LoadHostKeys(path, true)
	if err != nil {
		t.Fatal(err)
	}
	var mismatch *HostKeyMismatchError
	if err := dial(again, impostor); !errors.As(err, &mismatch) {
		t.Fatalf("impostor: err = %v, want a mismatch", err)
	}
}
