// Package exec moves bytes to hosts and runs commands on them over SSH. It
// knows nothing of Kubernetes: callers hand it command lines built with
// Command/Quote and files to place atomically.
package exec

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Config says how to reach and log in to one host.
type Config struct {
	Host    string // inventory name, used in every error
	Address string // IP or DNS name
	Port    int
	User    string

	IdentityFiles []string // private keys tried in order
	UseAgent      bool     // also offer the keys of $SSH_AUTH_SOCK
	Sudo          bool     // wrap commands in `sudo -n` (ignored for root)

	ConnectTimeout    time.Duration
	KeepAliveInterval time.Duration // 0 disables keepalives
	MaxOutput         int           // bytes kept per stream; 0 means DefaultMaxOutput
	MaxSessions       int           // concurrent sessions on the connection; 0 means DefaultMaxSessions

	HostKeys *HostKeys // required: fleet never connects unverified
	Redactor *Redactor // masks secrets in errors
	Via      *Conn     // jump host connection (ProxyJump), or nil

	// OnCommand, if set, sees every command's timing when it ends.
	OnCommand func(CommandTrace)
	// OnCommandStart, if set, sees each command (redacted) as it starts:
	// what a progress view shows a host doing.
	OnCommandStart func(host, command string)

	// AgentSocket is the ssh-agent's socket; "" is $SSH_AUTH_SOCK.
	AgentSocket string
	// Persist, if set, is asked first for a connection that outlives the
	// run (internal/mux); when it has none to give, Dial connects itself.
	// Not used through a jump host.
	Persist Persister
}

// Persister lends a connection to cfg's host that outlives the run.
type Persister func(ctx context.Context, cfg Config) (*ssh.Client, error)

// Target is what another process needs to dial cfg's host as Dial would:
// the address, the login and its keys' files, the known_hosts file and
// whether it may learn new keys. No callbacks, no secrets: keys stay in
// their files (or the agent).
type Target struct {
	Host, Address     string
	Port              int
	User              string
	IdentityFiles     []string
	Agent             string // the agent's socket, "" for none
	ConnectTimeout    time.Duration
	KeepAliveInterval time.Duration
	KnownHosts        string
	AcceptNew         bool
}

// Target is cfg as another process dials it.
func (c Config) Target() Target {
	t := Target{Host: c.Host, Address: c.Address, Port: c.Port, User: c.User, IdentityFiles: c.IdentityFiles,
		ConnectTimeout: c.ConnectTimeout, KeepAliveInterval: c.KeepAliveInterval}
	if c.UseAgent {
		t.Agent = c.AgentSocket
		if t.Agent == "" {
			t.Agent = os.Getenv("SSH_AUTH_SOCK")
		}
	}
	if c.HostKeys != nil {
		t.KnownHosts, t.AcceptNew = c.HostKeys.path, c.HostKeys.acceptNew
	}
	return t
}

// Config is the connection settings of t, its known_hosts loaded.
func (t Target) Config() (Config, error) {
	keys, err := LoadHostKeys(t.KnownHosts, t.AcceptNew)
	if err != nil {
		return Config{}, err
	}
	return Config{Host: t.Host, Address: t.Address, Port: t.Port, User: t.User, IdentityFiles: t.IdentityFiles,
		UseAgent: t.Agent != "", AgentSocket: t.Agent, ConnectTimeout: t.ConnectTimeout, KeepAliveInterval: t.KeepAliveInterval,
		HostKeys: keys}, nil
}

// DefaultMaxSessions stays under OpenSSH's MaxSessions default of 10 per
// connection, leaving room for the SFTP session.
const DefaultMaxSessions = 8

// DefaultMaxOutput bounds what one command may print before fleet stops
// keeping it: enough for any kubeadm output, small enough to survive a
// runaway process on 200 hosts.
const DefaultMaxOutput = 8 << 20

func (c Config) hostport() string {
	port := c.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(c.Address, strconv.Itoa(port))
}

// Conn is one SSH connection to a host. Every command and file transfer of a
// run is a session multiplexed on it; it is safe for concurrent use.
type Conn struct {
	cfg    Config
	client *ssh.Client

	sessions chan struct{} // semaphore: sshd refuses sessions past MaxSessions

	sftpMu sync.Mutex
	sftp   *sftp.Client

	closeOnce sync.Once
	done      chan struct{}
}

// Host is the inventory name of the connected host.
func (c *Conn) Host() string { return c.cfg.Host }

// User is the login user.
func (c *Conn) User() string { return c.cfg.User }

// AuthError means the server refused every key fleet offered.
type AuthError struct {
	Host, Address, User string
	Tried               []string
	Err                 error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("%s (%s): authentication as %q failed with %s: %v",
		e.Host, e.Address, e.User, strings.Join(e.Tried, ", "), e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// Dial connects to cfg's host, verifies its host key and logs in. The
// context bounds the whole handshake, not only the TCP connect.
func Dial(ctx context.Context, cfg Config) (*Conn, error) {
	if cfg.HostKeys == nil {
		return nil, fmt.Errorf("%s: no known_hosts verifier configured", cfg.Host)
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = 15 * time.Second
	}
	if cfg.Persist != nil && cfg.Via == nil {
		pctx, pcancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
		client, err := cfg.Persist(pctx, cfg)
		pcancel()
		if err == nil {
			return newConn(cfg, client), nil
		}
		// None to lend (or the holder could not reach the host): this
		// run's own dial says why, if it fails too.
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()

	auth, tried, closeAgent, err := authMethods(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Host, err)
	}
	defer closeAgent()

	addr := cfg.hostport()
	clientCfg := &ssh.ClientConfig{
		User:              cfg.User,
		Auth:              auth,
		HostKeyCallback:   cfg.HostKeys.callback(cfg.Host),
		HostKeyAlgorithms: cfg.HostKeys.algorithms(addr),
		Timeout:           cfg.ConnectTimeout,
	}

	var raw net.Conn
	if cfg.Via != nil {
		raw, err = cfg.Via.client.DialContext(ctx, "tcp", addr)
	} else {
		raw, err = (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("%s (%s): connect%s: %w", cfg.Host, addr, viaSuffix(cfg), err)
	}

	// Abort the handshake when ctx ends; a silent server must not hang us.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(raw, addr, clientCfg)
	if !stop() {
		if sc != nil {
			sc.Close()
		}
		raw.Close()
		return nil, fmt.Errorf("%s (%s): ssh handshake: %w", cfg.Host, addr, ctx.Err())
	}
	if err != nil {
		raw.Close()
		return nil, classifyHandshakeError(cfg, addr, tried, err)
	}

	return newConn(cfg, ssh.NewClient(sc, chans, reqs)), nil
}

// newConn is the run's connection over client.
func newConn(cfg Config, client *ssh.Client) *Conn {
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = DefaultMaxSessions
	}
	c := &Conn{
		cfg:      cfg,
		client:   client,
		sessions: make(chan struct{}, cfg.MaxSessions),
		done:     make(chan struct{}),
	}
	if cfg.KeepAliveInterval > 0 {
		go c.keepAlive(cfg.KeepAliveInterval)
	}
	go func() { // notice a connection the server or network ended
		_ = c.client.Wait()
		c.Close()
	}()
	return c
}

// SSHClient is the connection's client: what a connection holder
// (internal/mux) lends to other runs.
func (c *Conn) SSHClient() *ssh.Client { return c.client }

// Alive reports whether the connection is still usable.
func (c *Conn) Alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// errClosed is what closing an already dead connection may report.
var errClosed = net.ErrClosed

func viaSuffix(cfg Config) string {
	if cfg.Via == nil {
		return ""
	}
	return " via jump host " + cfg.Via.Host()
}

func classifyHandshakeError(cfg Config, addr string, tried []string, err error) error {
	var mismatch *HostKeyMismatchError
	var unknown *UnknownHostError
	switch {
	case errors.As(err, &mismatch):
		return mismatch
	case errors.As(err, &unknown):
		return unknown
	case strings.Contains(err.Error(), "unable to authenticate"):
		return &AuthError{Host: cfg.Host, Address: addr, User: cfg.User, Tried: tried, Err: err}
	}
	return fmt.Errorf("%s (%s): ssh handshake: %w", cfg.Host, addr, err)
}

// authMethods collects the signers of the identity files and the agent into
// one public-key method, and describes what it offered for error messages.
func authMethods(cfg Config) ([]ssh.AuthMethod, []string, func(), error) {
	var signers []ssh.Signer
	var tried []string
	noop := func() {}
	for _, path := range cfg.IdentityFiles {
		pem, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, noop, fmt.Errorf("identity file: %w", err)
		}
		s, err := ssh.ParsePrivateKey(pem)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			if cfg.UseAgent {
				continue // the agent may hold the decrypted key
			}
			return nil, nil, noop, fmt.Errorf("identity file %s is passphrase-protected: load it into ssh-agent and enable the agent", path)
		}
		if err != nil {
			return nil, nil, noop, fmt.Errorf("identity file %s: %w", path, err)
		}
		signers = append(signers, s)
		tried = append(tried, "identity file "+path)
	}
	closeAgent := noop
	if cfg.UseAgent {
		sock := cfg.AgentSocket
		if sock == "" {
			sock = os.Getenv("SSH_AUTH_SOCK")
		}
		if sock == "" {
			return nil, nil, noop, errors.New("ssh agent requested but SSH_AUTH_SOCK is not set")
		}
		ac, err := net.Dial("unix", sock)
		if err != nil {
			return nil, nil, noop, fmt.Errorf("ssh agent: %w", err)
		}
		closeAgent = func() { ac.Close() }
		as, err := agent.NewClient(ac).Signers()
		if err != nil {
			ac.Close()
			return nil, nil, noop, fmt.Errorf("ssh agent: %w", err)
		}
		signers = append(signers, as...)
		tried = append(tried, fmt.Sprintf("ssh-agent (%d keys)", len(as)))
	}
	if len(signers) == 0 {
		closeAgent()
		return nil, nil, noop, errors.New("no usable SSH key: set an identity file or enable the agent")
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, tried, closeAgent, nil
}

// keepAlive pings the server; after three unanswered pings it closes the
// connection so that commands waiting on a dead host fail instead of hang.
func (c *Conn) keepAlive(every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	missed := 0
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		answered := make(chan struct{})
		go func() {
			if _, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil); err == nil {
				close(answered)
			}
		}()
		select {
		case <-answered:
			missed = 0
		case <-c.done:
			return
		case <-time.After(every):
			if missed++; missed >= 3 {
				c.Close()
				return
			}
		}
	}
}

// Close ends the connection and everything multiplexed on it.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.done)
		// The connection first: on a dead link the SFTP client's Close waits
		// for its reader, which only a closed connection wakes.
		err = c.client.Close()
		c.sftpMu.Lock()
		if c.sftp != nil {
			c.sftp.Close()
		}
		c.sftpMu.Unlock()
	})
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// sftpClient returns the connection's SFTP session, opening it on first use.
func (c *Conn) sftpClient() (*sftp.Client, error) {
	c.sftpMu.Lock()
	defer c.sftpMu.Unlock()
	if c.sftp != nil {
		return c.sftp, nil
	}
	s, err := sftp.NewClient(c.client, sftp.UseConcurrentWrites(true))
	if err != nil {
		return nil, fmt.Errorf("%s: open sftp: %w", c.cfg.Host, err)
	}
	c.sftp = s
	return s, nil
}

// DialContext opens a TCP connection from the remote host to addr, as
// `ssh -L` would: fleet reaches services that listen only on a host's
// loopback (etcd's client port) without opening them to the network.
func (c *Conn) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	conn, err := c.client.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("%s: forward to %s: %w", c.cfg.Host, addr, err)
	}
	return conn, nil
}
