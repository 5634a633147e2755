package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-multierror"

	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
)

type applyCmd struct {
	Inventory    string        `short:"i" default:"${inventory}" help:"Inventory file (default: $$FLEET_INVENTORY, else ./inventory.yaml)." type:"existingfile"`
	Kubeconfig   string        `help:"Where to write the admin kubeconfig (0600). Default: <cluster>.kubeconfig beside the inventory." type:"path"`
	TokenTTL     time.Duration `help:"Lifetime of the bootstrap token this run creates." default:"15m"`
	Exclude      []string      `help:"Workers to leave out of this run (unreachable or broken); a later apply without it adds them." placeholder:"WORKER"`
	GenerateCA   bool          `name:"generate-ca" help:"Make a root CA if the CA host has none and the inventory names none (ca.cfssl.rootCert): on this machine, beside the inventory (<cluster>-root-ca.pem, key 0600, never overwritten); the CA host gets its certificate only."`
	RootOnCAHost bool          `name:"root-on-ca-host" help:"With --generate-ca: make the root on the CA host instead and keep its key there (the seed's homelab layout: losing the CA host loses the root)."`
	// KubeadmTimeout: a kubeadm init or join that hangs is killed then.
	KubeadmTimeout time.Duration `help:"How long one kubeadm init or join may run before it is killed on its host." default:"10m"`
	NetworkTimeout time.Duration `help:"How long to wait for the network's DaemonSets to roll out (kubeProxy: false removes kube-proxy only then) and for CRDs its operator creates." default:"10m"`
	Output         string        `short:"o" help:"text, or json: every step event as a JSON line on stdout, then a fleet/v1 ApplyResult." enum:"text,json" default:"text"`
}

func (c *applyCmd) Run(ctx context.Context, g *globals) error {
	if c.Output == "json" {
		g.eventsOut = g.stdout
	}
	s, err := openSession(g, c.Inventory, showProgress)
	if err != nil {
		return err
	}
	defer s.Close()
	opts := playbooks.DefaultApplyOptions()
	opts.TokenTTL = c.TokenTTL
	opts.Kubeconfig = c.Kubeconfig
	opts.Exclude = c.Exclude
	opts.GenerateCA = c.GenerateCA
	opts.RootOnCAHost = c.RootOnCAHost
	opts.KubeadmTimeout = c.KubeadmTimeout
	opts.NetworkTimeout = c.NetworkTimeout
	if opts.Kubeconfig == "" {
		opts.Kubeconfig = filepath.Join(filepath.Dir(c.Inventory), s.Inv.Cluster.Name+".kubeconfig")
	}
	start := time.Now()
	report, err := playbooks.Apply(ctx, s, opts)
	g.stopProgress()
	out := s.Output(g.stdout)
	defer out.Flush()
	if c.Output == "json" {
		result := ApplyResult{Header: header("ApplyResult"), Seconds: time.Since(start).Seconds(), Kubeconfig: opts.Kubeconfig, UploadedBytes: s.Uploaded()}
		if report != nil {
			result.Changed, result.Changes, result.AlreadyDone = report.Changed(), len(report.Changes()), report.Count(playbooks.AlreadyDone)
		}
		if err != nil {
			result.Error = err.Error()
		}
		line, jerr := json.Marshal(result)
		if jerr != nil {
			return jerr
		}
		fmt.Fprintf(out, "%s\n", line)
		return err
	}
	var held *playbooks.LockHeldError
	if errors.As(err, &held) {
		return err // nothing ran: no hint about resuming
	}
	if err != nil {
		hint := "fix the cause and run fleet apply again, it resumes where it stopped"
		if workers := failedWorkerPreflights(err); len(workers) > 0 {
			hint += fmt.Sprintf("; or build the rest now with --exclude %s", strings.Join(workers, ","))
		}
		return fmt.Errorf("apply failed after %s; %s:\n%s", time.Since(start).Round(time.Millisecond), hint, err)
	}
	if !report.Changed() {
		fmt.Fprintf(out, "no changes: the cluster already matches %s (%s)\n", c.Inventory, time.Since(start).Round(time.Millisecond))
		return nil
	}
	fmt.Fprintf(out, "applied in %s: %d changes, %d steps already done\n", time.Since(start).Round(time.Millisecond),
		len(report.Changes()), report.Count(playbooks.AlreadyDone))
	printUploaded(out, s)
	fmt.Fprintf(out, "kubeconfig: %s\n", opts.Kubeconfig)
	if len(opts.Exclude) > 0 {
		fmt.Fprintf(out, "left out: %s (run fleet apply without --exclude to add them)\n", strings.Join(opts.Exclude, ", "))
	}
	return nil
}

// failedWorkerPreflights returns the workers that failed preflight, when
// they are the only failures: leaving them out would let the rest build.
func failedWorkerPreflights(err error) []string {
	var merr *multierror.Error
	if !errors.As(err, &merr) {
		return nil
	}
	var workers []string
	for _, e := range merr.Errors {
		var pe *playbooks.PreflightError
		if !errors.As(e, &pe) || pe.Role != inventory.RoleWorker {
			return nil
		}
		workers = append(workers, pe.Host)
	}
	return workers
}

// printUploaded says how much install: binaries sent, when it sent any.
func printUploaded(w io.Writer, s *playbooks.Session) {
	if n := s.Uploaded(); n > 0 {
		fmt.Fprintf(w, "uploaded %.1f MB of binaries\n", float64(n)/1e6)
	}
}
