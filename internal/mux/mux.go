// Package mux keeps SSH connections open between runs, as OpenSSH's
// ControlPersist does: a process on the operator's machine holds each
// host's connection and lends it to every run that asks within the idle
// time, so a run on a hundred hosts does not pay a hundred handshakes (on
// the hosts' side the most expensive part of a run that changes nothing).
//
// The holder listens on a Unix socket in a folder only its user may enter.
// A run connects once per host, names the host (an opaque target the
// holder's Dialer understands), and then speaks SSH over the socket to
// the holder, which relays every channel (sessions, SFTP, forwarded TCP)
// and its requests to the host's connection. The run's side is a plain
// *ssh.Client: everything that works on a direct connection works here.
package mux

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Files in the holder's folder. The protocol version is in the socket's
// name: a holder of another fleet version is simply not found.
const (
	SocketName  = "mux-v1.sock"
	HostKeyName = "mux-v1.pub" // the holder's key for this run's side of the socket
)

// Dialer makes the connection to the host target names; the holder keeps
// it until it dies or the holder ends.
type Dialer func(ctx context.Context, target json.RawMessage) (*ssh.Client, error)

// Server holds connections and relays runs to them.
type Server struct {
	Dir  string        // the folder of the socket and the key
	Idle time.Duration // end this long after the last run left
	Dial Dialer

	mu       sync.Mutex
	upstream map[string]*held // by the target's digest
	active   int              // runs' connections open now
	idleT    *time.Timer
}

// held is one host's connection, dialled once for all runs asking.
type held struct {
	once   sync.Once
	client *ssh.Client
	err    error
	dead   chan struct{}
}

// Serve listens in s.Dir and serves until ctx ends or the idle time
// passes with no run connected.
func (s *Server) Serve(ctx context.Context) error {
	if err := PrivateDir(s.Dir); err != nil {
		return err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return err
	}
	// The key first: a run that finds the socket finds this key.
	if err := writeFileAtomic(filepath.Join(s.Dir, HostKeyName), ssh.MarshalAuthorizedKey(signer.PublicKey())); err != nil {
		return err
	}
	sock := filepath.Join(s.Dir, SocketName)
	os.Remove(sock) // a holder that died left it
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	defer ln.Close()
	if err := os.Chmod(sock, 0o600); err != nil {
		return err
	}
	s.upstream = map[string]*held{}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.idleT = time.AfterFunc(s.Idle, cancel)
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	config := &ssh.ServerConfig{NoClientAuth: true} // the folder's mode is the access control
	config.AddHostKey(signer)
	for {
		c, err := ln.Accept()
		if err != nil {
			s.closeAll()
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go s.serveRun(ctx, c.(*net.UnixConn), config)
	}
}

// serveRun answers one run's request for one host and relays its SSH
// connection there.
func (s *Server) serveRun(ctx context.Context, c *net.UnixConn, config *ssh.ServerConfig) {
	defer c.Close()
	s.enter()
	defer s.leave()
	if !sameUser(c) {
		return
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return
	}
	host, err := s.get(ctx, json.RawMessage(line))
	if err != nil {
		fmt.Fprintf(c, "error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return
	}
	if _, err := c.Write([]byte("ok\n")); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	sc, chans, reqs, err := ssh.NewServerConn(&bufferedConn{Conn: c, r: br}, config)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs) // keepalives: answered, the host's connection has its own
	go func() {                  // the host's connection ended: so does the run's, which dials again
		select {
		case <-host.dead:
			sc.Close()
		case <-ctx.Done():
			sc.Close()
		}
	}()
	relay(chans, host.client)
}

// get returns the live connection for target, dialling it once.
func (s *Server) get(ctx context.Context, target json.RawMessage) (*held, error) {
	sum := sha256.Sum256(target)
	key := hex.EncodeToString(sum[:])
	for {
		s.mu.Lock()
		h := s.upstream[key]
		if h == nil {
			h = &held{dead: make(chan struct{})}
			s.upstream[key] = h
		}
		s.mu.Unlock()
		h.once.Do(func() {
			h.client, h.err = s.Dial(ctx, target)
			if h.err != nil {
				close(h.dead)
				return
			}
			go func() {
				h.client.Wait()
				close(h.dead)
			}()
		})
		select {
		case <-h.dead:
			s.mu.Lock()
			if s.upstream[key] == h {
				delete(s.upstream, key)
			}
			s.mu.Unlock()
			if h.err != nil {
				return nil, h.err // the run dials itself, for the error's whole story
			}
			continue // the host's connection ended: dial again
		default:
			return h, nil
		}
	}
}

func (s *Server) enter() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active++
	s.idleT.Stop()
}

func (s *Server) leave() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active--
	if s.active == 0 {
		s.idleT.Reset(s.Idle)
	}
}

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, h := range s.upstream {
		if h.client != nil {
			h.client.Close()
		}
	}
}

// sameUser reports whether the peer runs as this process's user: the
// folder's mode keeps others out already; this holds if it is loosened.
func sameUser(c *net.UnixConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return false
	}
	return int(cred.Uid) == os.Getuid()
}

// bufferedConn reads first what the request's reader took in.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// ErrNoHolder means no holder listens in the folder.
var ErrNoHolder = errors.New("no connection holder running")

// Connect asks the holder in dir for target's connection and returns a
// client that speaks through it. ErrNoHolder: start one (see Start).
func Connect(ctx context.Context, dir string, target json.RawMessage) (*ssh.Client, error) {
	if err := checkPrivateDir(dir); err != nil {
		return nil, err
	}
	keyData, err := os.ReadFile(filepath.Join(dir, HostKeyName))
	if err != nil {
		return nil, ErrNoHolder
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey(keyData)
	if err != nil {
		return nil, fmt.Errorf("mux: %s: %w", HostKeyName, err)
	}
	c, err := (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(dir, SocketName))
	if err != nil {
		return nil, ErrNoHolder
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	if _, err := c.Write(append(append([]byte{}, target...), '\n')); err != nil {
		c.Close()
		return nil, fmt.Errorf("mux: %w", err)
	}
	br := bufio.NewReader(c)
	answer, err := br.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("mux: %w", err)
	}
	if answer != "ok\n" {
		c.Close()
		return nil, fmt.Errorf("mux: the holder could not connect: %s", strings.TrimSpace(strings.TrimPrefix(answer, "error ")))
	}
	sc, chans, reqs, err := ssh.NewClientConn(&bufferedConn{Conn: c, r: br}, "fleet-mux", &ssh.ClientConfig{
		User: "fleet", HostKeyCallback: ssh.FixedHostKey(key),
	})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("mux: %w", err)
	}
	return ssh.NewClient(sc, chans, reqs), nil
}

// PrivateDir makes dir (0700) or checks an existing one: this user's, no
// one else may enter.
func PrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return checkPrivateDir(dir)
}

func checkPrivateDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return ErrNoHolder
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) != os.Getuid() || fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("mux: %s must be a folder of this user's that no one else may enter (mode %v)", dir, fi.Mode().Perm())
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
