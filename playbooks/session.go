// Package playbooks composes fleet's building blocks into the graphs users
// run: check, plan, apply and their kin. One file per playbook; each reads
// top to bottom as the steps it runs.
package playbooks

import (
	"context"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetops/fleet/internal/cfssl"
	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/sshconfig"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// Options are the run-wide choices a user makes on the command line.
type Options struct {
	// AcceptNewHostKeys trusts hosts missing from known_hosts on first use
	// (never a host whose key changed).
	AcceptNewHostKeys bool
	// KnownHosts overrides the inventory's known_hosts file for every host.
	KnownHosts string
	// Concurrency bounds the tasks running at once (0: the engine's default).
	Concurrency int
	// OnEvent sees every step event as it happens.
	OnEvent func(steps.Event)
	// OnCommand sees every remote command's timing when it ends.
	OnCommand func(exec.CommandTrace)
	// OnCommandStart sees every remote command (redacted) as it starts.
	OnCommandStart func(host, command string)
	// OnPlan sees each graph's steps and their hosts before it runs.
	OnPlan func([]PlannedStep)
	// OnConnect hears that the session dials hosts before any step runs
	// (how many): at a hundred hosts that takes seconds, and a user
	// should not watch a silent terminal meanwhile.
	OnConnect func(hosts int)
	// Persist, if set, lends connections that outlive the run (see
	// exec.Config.Persist).
	Persist exec.Persister
	// SSHConfig names the OpenSSH client config to read ("none": none);
	// empty means the inventory's ssh.config, else ~/.ssh/config.
	SSHConfig string
}

// Login is how fleet logs in to a host after the ssh config: where it
// dials, as whom, with which keys, and where each setting came from.
type Login = sshconfig.Resolved

// Session is one run against one inventory: its connections, its secrets
// to redact and its step engine.
type Session struct {
	Inv      *inventory.Inventory
	Pool     *exec.Pool
	Redactor *exec.Redactor
	opts     Options
	// Logins are the hosts' resolved SSH settings, by inventory name;
	// Warnings what the user should hear of them (settings not followed).
	Logins   map[string]Login
	Warnings []string

	bundle   bundleOnce   // install: binaries: the folder, checked once
	pkgKeys  packageKeys  // install: packages: each repository's key, checked once
	uploaded atomic.Int64 // bytes of binaries sent to hosts
	versions sync.Map     // sha256 -> *versionOnce: each binary's version, asked once
	systemd  sync.Map     // host -> bool: systemd runs it (preflight's facts)
	family   sync.Map     // host -> its distribution family, nodeprep.Family (preflight's facts)
	pauses   sync.Map     // kubernetesVersion -> the pause image its kubeadm names
	prep     prepViews    // what preflight read for the prepare phases' checks
	joinedAt seen[bool]   // host -> kubelet.conf was there at preflight, for the credentials step
	// host -> preflight found nothing of a join there, nor a join's config
	// (no kubeadm join of another run can be running): its join need not
	// look for a join cut short
	untouchedAt seen[bool]
	upstream    upstream // the masters the load balancers send clients to

	caMu     sync.Mutex     // guards caPlat and caClient
	caPlat   cfssl.Platform // the CA host's platform, once asked
	caClient *cfssl.Client  // the CA host's API with its auth key, once read
}

// keepAlive detects a dead host within three intervals during long commands.
const keepAlive = 10 * time.Second

// NewSession prepares connections to every host of inv; nothing is dialled
// until a step needs the host.
func NewSession(inv *inventory.Inventory, opts Options) (*Session, error) {
	s := &Session{Inv: inv, Pool: exec.NewPool(), Redactor: exec.NewRedactor(), opts: opts}
	verifiers := map[string]*exec.HostKeys{} // one per known_hosts file
	hostKeys := func(path string) (*exec.HostKeys, error) {
		if opts.KnownHosts != "" {
			path = opts.KnownHosts
		}
		if k, ok := verifiers[path]; ok {
			return k, nil
		}
		k, err := exec.LoadHostKeys(path, opts.AcceptNewHostKeys)
		if err != nil {
			return nil, err
		}
		verifiers[path] = k
		return k, nil
	}
	sshConfig, err := loadSSHConfig(inv, opts.SSHConfig)
	if err != nil {
		return nil, err
	}
	s.Logins = map[string]Login{}
	var warnings []string // each once, with the hosts it is about
	warnedHosts := map[string][]string{}
	for _, h := range inv.Hosts() {
		ssh := inv.SSHFor(h)
		given := inv.SSHGiven(h)
		login, err := sshConfig.Resolve(h.Name, sshconfig.Given{Address: h.Address, User: given.User, Port: given.Port,
			IdentityFile: given.IdentityFile, KnownHosts: given.KnownHosts, JumpHost: given.JumpHost},
			sshconfig.Defaults{User: ssh.User, Port: ssh.Port, KnownHosts: ssh.KnownHosts})
		if err != nil {
			return nil, err
		}
		s.Logins[h.Name] = login
		for _, w := range login.Warnings {
			if warnedHosts[w] == nil {
				warnings = append(warnings, w)
			}
			warnedHosts[w] = append(warnedHosts[w], h.Name)
		}
		keys, err := hostKeys(login.KnownHosts)
		if err != nil {
			return nil, err
		}
		cfg := s.connConfig(h.Name, login.Hop, login, ssh, keys)
		var jump *exec.Config
		if login.Jump != nil { // no sudo there: it only forwards
			jssh := ssh
			jssh.Sudo = nil
			jc := s.connConfig("jump host "+login.Jump.Address, *login.Jump, login, jssh, keys)
			jump = &jc
		}
		s.Pool.Add(cfg, jump)
	}
	for _, w := range warnings {
		s.Warnings = append(s.Warnings, strings.Join(warnedHosts[w], ", ")+": "+w)
	}
	return s, nil
}

// loadSSHConfig reads the ssh config that --ssh-config, else the
// inventory's ssh.config, else ~/.ssh/config names; "none" is no config.
func loadSSHConfig(inv *inventory.Inventory, flag string) (*sshconfig.File, error) {
	path, named := flag, flag != ""
	if !named {
		path, named = inv.SSH.Config, inv.SSH.Config != ""
	}
	switch {
	case path == "none":
		return nil, nil
	case !named:
		path = sshconfig.DefaultPath()
	}
	if path == "" {
		return nil, nil
	}
	return sshconfig.Load(path, named)
}

// connConfig is the connection to hop as login's keys, with the
// inventory's agent, sudo and timeout settings.
func (s *Session) connConfig(name string, hop sshconfig.Hop, login Login, ssh inventory.SSH, keys *exec.HostKeys) exec.Config {
	return exec.Config{
		Host: name, Address: hop.Address, Port: hop.Port, User: hop.User,
		IdentityFiles: login.IdentityFiles,
		// Without an identity file the agent is the only way in, unless the
		// user turned it off explicitly.
		UseAgent:          inventory.On(ssh.Agent) || (len(login.IdentityFiles) == 0 && ssh.Agent == nil),
		Sudo:              inventory.On(ssh.Sudo),
		ConnectTimeout:    time.Duration(ssh.ConnectTimeout),
		KeepAliveInterval: keepAlive,
		HostKeys:          keys,
		Redactor:          s.Redactor,
		OnCommand:         s.opts.OnCommand,
		OnCommandStart:    s.opts.OnCommandStart,
		Persist:           s.opts.Persist,
	}
}

// Connect opens the connections to hosts in parallel, so that the first
// steps do not pay the handshakes one after another. Errors are left for
// the steps that use the hosts to report.
func (s *Session) Connect(ctx context.Context, hosts []string) {
	if s.opts.OnConnect != nil && len(hosts) > 0 {
		s.opts.OnConnect(len(hosts))
	}
	onEach(hosts, 0, func(h string) (*exec.Conn, error) { return s.Conn(ctx, h) })
}

// onEach asks ask of every host in parallel, at most limit at a time (0:
// no limit), and returns the answers and errors in the order of hosts: the
// quick questions a playbook puts to many hosts before its steps.
func onEach[T any](hosts []string, limit int, ask func(host string) (T, error)) ([]T, []error) {
	answers := make([]T, len(hosts))
	errs := make([]error, len(hosts))
	if limit <= 0 {
		limit = len(hosts)
	}
	sem := make(chan struct{}, max(limit, 1))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			answers[i], errs[i] = ask(h)
		}()
	}
	wg.Wait()
	return answers, errs
}

// Conn returns the connection to a host of the inventory.
func (s *Session) Conn(ctx context.Context, host string) (*exec.Conn, error) {
	return s.Pool.Get(ctx, host)
}

// Run executes g with the session's engine settings.
func (s *Session) Run(ctx context.Context, g *steps.Graph) (*steps.Report, error) {
	eng := &steps.Engine{Concurrency: s.opts.Concurrency, OnEvent: s.opts.OnEvent, OnPlan: s.opts.OnPlan}
	return eng.Run(ctx, g)
}

// DryRun runs only g's read-only steps and the state checks of the others:
// the report says what a real run would do.
func (s *Session) DryRun(ctx context.Context, g *steps.Graph) (*steps.Report, error) {
	eng := &steps.Engine{Concurrency: s.opts.Concurrency, OnEvent: s.opts.OnEvent, OnPlan: s.opts.OnPlan, DryRun: true}
	return eng.Run(ctx, g)
}

// note tells the user of something done around the steps (a lock
// broken), through OnEvent, redacted.
func (s *Session) note(step, host, what string) {
	if s.opts.OnEvent != nil {
		s.opts.OnEvent(steps.Event{Time: time.Now(), Kind: steps.Note, Step: step, Host: host, Reason: s.Redactor.String(what)})
	}
}

// Close ends every connection of the session.
func (s *Session) Close() error { return s.Pool.Close() }

// Output returns w wrapped so that no registered secret reaches it.
func (s *Session) Output(w io.Writer) *exec.RedactingWriter { return s.Redactor.Writer(w) }

// hostNames lists the names of hosts.
func hostNames(hosts []*inventory.Host) []string {
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.Name
	}
	return names
}
