// Command fleet turns a YAML inventory into a highly available kubeadm
// cluster over SSH. This package parses flags and prints; the work is in
// playbooks.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/willabides/kongplete"

	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
)

// version is set at build time: -ldflags "-X main.version=v0.1.0".
var version = "dev"

// globals are the flags every command takes.
type globals struct {
	AcceptNewHostKeys bool          `help:"Trust hosts missing from known_hosts and record their keys (never a changed key)."`
	KnownHosts        string        `help:"known_hosts file to use for every host, instead of the inventory's." type:"path"`
	SSHConfig         string        `name:"ssh-config" help:"OpenSSH client config whose Host blocks fill what the inventory leaves out (HostName, User, Port, IdentityFile, ProxyJump, UserKnownHostsFile); none for no config. Default: the inventory's ssh.config, else ~/.ssh/config." placeholder:"FILE"`
	Concurrency       int           `help:"Most tasks running at once." default:"64"`
	Persist           time.Duration `help:"Keep each host's connection open this long after the run, for the runs that follow (as OpenSSH's ControlPersist): a background fleet process holds them, reachable only by your user. 0: off." default:"0s" env:"FLEET_PERSIST" placeholder:"DURATION"`
	Verbose           bool          `short:"v" help:"Print every step event (instead of the progress view)."`
	Progress          string        `help:"How commands that change hosts show their steps on stderr: live (a line per running step, redrawn), plain (a line per step start and end), auto (live on a terminal)." enum:"auto,live,plain" default:"auto"`
	LogFile           string        `help:"Append every step event and every remote command (host, step, duration, exit code) to this file as JSON lines (mode 0600, secrets redacted)." type:"path" placeholder:"FILE"`
	Report            string        `help:"Commands that change hosts: write an HTML report of the run here (timeline per host, critical path, failures first, every command with its exit code and stderr tail; self-contained, no secrets)." type:"path" placeholder:"FILE.html"`

	stdout, stderr io.Writer
	stdin          io.Reader
	log            *os.File               // the opened LogFile, closed when the command ends
	progress       *progress              // the running command's view, if it shows one
	eventsOut      io.Writer              // where apply -o json streams the events
	recorder       *playbooks.RunRecorder // what --report shows, if asked
	// redactors are the open sessions' (each knows the secrets it made):
	// the one place a command's error passes before it is printed.
	redactors []func(string) string
}

// stopProgress ends the progress view, if any, before a command prints its
// result: the live rows stop redrawing.
func (g *globals) stopProgress() {
	if g.progress != nil {
		g.progress.stop()
	}
}

// redacted removes every secret any session of the command knows.
func (g *globals) redacted(s string) string {
	for _, r := range g.redactors {
		s = r(s)
	}
	return s
}

// cli lists the commands in the order a user meets them.
type cli struct {
	globals

	Init         initCmd         `cmd:"" help:"Write a commented starter inventory for a load balancer, masters and workers."`
	Check        checkCmd        `cmd:"" help:"Connect to every host in parallel and report what it is; changes nothing."`
	Plan         planCmd         `cmd:"" help:"Print the step graph of apply; changes nothing."`
	Prepare      prepareCmd      `cmd:"" help:"Make bare hosts nodes (install: binaries): kernel modules and sysctls, swap off, the binaries folder, units, containerd's config. apply does it too."`
	Apply        applyCmd        `cmd:"" help:"Build the cluster the inventory describes, or converge it; a second run changes nothing."`
	Status       statusCmd       `cmd:"" help:"One table: per node joined, Ready, versions, etcd member, in the load balancer's upstream."`
	Kubeconfig   kubeconfigCmd   `cmd:"" help:"Fetch the admin kubeconfig (server = the load balancer) from the first master that answers; changes nothing on the hosts."`
	Join         joinCmd         `cmd:"" help:"Join inventory nodes to the running cluster with fresh credentials."`
	Remove       removeCmd       `cmd:"" help:"Drain nodes, kubeadm reset them, delete them (a master leaves etcd and the load balancer first)."`
	Upgrade      upgradeCmd      `cmd:"" help:"Upgrade the cluster to the inventory's kubernetesVersion (one minor at a time): kubeadm, then the masters one by one, then the workers in batches; each drained, upgraded, Ready, uncordoned."`
	RotateTokens rotateTokensCmd `cmd:"" name:"rotate-tokens" help:"Delete fleet's and expired bootstrap tokens, make a new one; optionally print the join command."`
	Backup       backupCmd       `cmd:"" help:"Save an etcd snapshot (from the leader, checked), the cluster's PKI and the inventory to a folder of their own; changes nothing on the hosts."`
	Restore      restoreCmd      `cmd:"" help:"Put a backup's etcd snapshot back on every master (after a prompt): control plane stopped, etcdutl snapshot restore, started, quorum, every node Ready."`
	Certs        certsCmd        `cmd:"" help:"Certificates of the cluster: certs check lists every one with its expiry."`
	CloudInit    cloudInitCmd    `cmd:"" name:"cloud-init" help:"Print cloud-init user-data that makes a new worker join by itself, in its join mode (holds a short-lived secret)."`
	Reset        resetCmd        `cmd:"" help:"Tear the whole cluster down: workers, then masters, then the load balancer config."`
	Unlock       unlockCmd       `cmd:"" help:"Break the cluster lock a crashed or killed run left behind (shows its holder first)."`
	Completion   completionCmd   `cmd:"" help:"Print the shell completion script for bash, zsh or fish (eval it in your shell's rc file)."`
	Version      versionCmd      `cmd:"" help:"Print fleet's version."`
	MuxServe     muxServeCmd     `cmd:"" name:"mux-serve" hidden:"" help:"The connection holder of --persist."`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: tests call it with their own writers.
func run(args []string, stdout, stderr io.Writer) int {
	return runWithInput(args, os.Stdin, stdout, stderr)
}

// runWithInput is run with the answers to prompts on stdin.
func runWithInput(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var c cli
	c.stdout, c.stderr, c.stdin = stdout, stderr, stdin
	// kong "exits" after --help; remember it instead of ending the process.
	exited, exitCode := false, 0
	parser, err := kong.New(&c,
		kong.Name("fleet"),
		kong.Description("Agentless SSH orchestrator for highly available kubeadm clusters."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exited, exitCode = true, code }),
		kong.UsageOnError(),
		kong.Vars{"inventory": defaultInventory()},
	)
	if err != nil {
		fmt.Fprintln(stderr, "fleet:", err)
		return 2
	}
	// A shell asking for completions (COMP_LINE set) is answered here.
	kongplete.Complete(parser, kongplete.WithPredictor("node", nodePredictor(anyNode)),
		kongplete.WithPredictor("joined", nodePredictor(joinedNode)), kongplete.WithPredictor("unjoined", nodePredictor(unjoinedNode)),
		kongplete.WithExitFunc(func(code int) { exited, exitCode = true, code }))
	if exited {
		return exitCode
	}
	kctx, err := parser.Parse(args)
	if exited {
		return exitCode // --help was printed
	}
	if err != nil {
		fmt.Fprintln(stderr, "fleet:", err)
		return 2
	}
	// Ctrl-C cancels the run: steps stop starting, running commands end.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	kctx.BindTo(ctx, (*context.Context)(nil))
	kctx.Bind(&c.globals)
	defer func() {
		if c.log != nil {
			c.log.Close()
		}
	}()
	err = kctx.Run()
	c.stopProgress() // before anything else reaches the terminal
	if c.recorder != nil {
		title := "fleet " + kctx.Command()
		if rerr := c.recorder.WriteHTML(c.Report, title, err, c.redacted); rerr != nil {
			fmt.Fprintln(stderr, "fleet: --report:", rerr)
		} else {
			fmt.Fprintln(stderr, "report:", c.Report)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "fleet:", c.redacted(err.Error()))
	}
	return exitCodeOf(err)
}

// Exit codes: what a script needs to tell apart.
const (
	exitOK       = 0
	exitFailed   = 1 // a step or a host failed; fix the cause and run again
	exitBadInput = 2 // the command line or the inventory is wrong: nothing ran
	exitRefused  = 3 // a check said no (preflight, quorum, the lock, --fail-under): nothing changed
)

// badInput marks an error in what the user gave (flags, the inventory).
type badInput struct{ error }

func (b badInput) Unwrap() error { return b.error }

// refusedByCheck marks a refusal the command itself decided (--fail-under).
type refusedByCheck struct{ error }

func (r refusedByCheck) Unwrap() error { return r.error }

func exitCodeOf(err error) int {
	var (
		bad      badInput
		inv      inventory.Errors
		held     *playbooks.LockHeldError
		pre      *playbooks.PreflightError
		refusal  *playbooks.RefusedError
		ownCheck refusedByCheck
		folder   *playbooks.BinariesError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &bad), errors.As(err, &inv), errors.As(err, &folder):
		return exitBadInput
	case errors.As(err, &held), errors.As(err, &pre), errors.As(err, &refusal), errors.As(err, &ownCheck):
		return exitRefused
	}
	return exitFailed
}

// defaultInventory is what -i is when not given: $FLEET_INVENTORY, else
// inventory.yaml in the current folder.
func defaultInventory() string {
	if p := os.Getenv("FLEET_INVENTORY"); p != "" {
		return p
	}
	return "inventory.yaml"
}

type versionCmd struct {
	Output string `short:"o" help:"text, json or yaml (a fleet/v1 document)." enum:"text,json,yaml" default:"text"`
}

func (c versionCmd) Run(g *globals) error {
	if c.Output != "text" {
		return writeDoc(g.stdout, c.Output, VersionDoc{Header: header("Version"), Version: version})
	}
	_, err := fmt.Fprintf(g.stdout, "fleet %s\n", version)
	return err
}
