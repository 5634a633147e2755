package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fleetops/fleet/playbooks"
)

type certsCmd struct {
	Check certsCheckCmd `cmd:"" help:"List every certificate the cluster depends on, with its expiry and days left; changes nothing."`
	Renew certsRenewCmd `cmd:"" help:"kubeadm certs renew on every master, one at a time, each master's control plane restarted onto them; refresh the admin kubeconfig."`
}

type certsRenewCmd struct {
	Inventory  string        `short:"i" default:"${inventory}" help:"Inventory file (default: $$FLEET_INVENTORY, else ./inventory.yaml)." type:"existingfile"`
	All        bool          `help:"Renew every certificate kubeadm made (or name them)."`
	Names      []string      `arg:"" optional:"" name:"name" help:"Certificates to renew: apiserver, admin.conf, etcd-server, ... (kubeadm's names)."`
	Kubeconfig string        `help:"The admin kubeconfig to refresh (0600). Default: <cluster>.kubeconfig beside the inventory." type:"path"`
	PodTimeout time.Duration `help:"How long each control-plane pod may take to stop, then to come back healthy." default:"3m"`
}

func (c *certsRenewCmd) Run(ctx context.Context, g *globals) error {
	switch {
	case c.All == (len(c.Names) > 0):
		return badInput{fmt.Errorf("certs renew: name the certificates, or --all (not both)")}
	case !c.All:
		if err := playbooks.CheckRenewNames(c.Names); err != nil {
			return badInput{err}
		}
	}
	s, err := openSession(g, c.Inventory, showProgress)
	if err != nil {
		return err
	}
	defer s.Close()
	kubeconfig := c.Kubeconfig
	if kubeconfig == "" {
		kubeconfig = filepath.Join(filepath.Dir(c.Inventory), s.Inv.Cluster.Name+".kubeconfig")
	}
	res, err := playbooks.CertsRenew(ctx, s, playbooks.CertsRenewOptions{Names: c.Names, Kubeconfig: kubeconfig, PodTimeout: c.PodTimeout})
	g.stopProgress()
	if err != nil {
		return fmt.Errorf("certs renew: %w (run it again: a restart cut short is finished first)", err)
	}
	out := s.Output(g.stdout)
	defer out.Flush()
	fmt.Fprintf(out, "renewed on %d masters, each control plane restarted and healthy; every node Ready\n", len(s.Inv.Masters))
	if res.Kubeconfig != nil {
		state := "unchanged"
		if res.Kubeconfig.Written {
			state = "written"
		}
		fmt.Fprintf(out, "admin kubeconfig %s (%s), its client certificate valid until %s\n", kubeconfig, state, res.Kubeconfig.Expires.UTC().Format("2006-01-02"))
	}
	return nil
}

type certsCheckCmd struct {
	Inventory string `short:"i" default:"${inventory}" help:"Inventory file (default: $$FLEET_INVENTORY, else ./inventory.yaml)." type:"existingfile"`
	WarnUnder int    `help:"Mark certificates with fewer days left." default:"30"`
	FailUnder int    `help:"Exit non-zero when a certificate has fewer days left (0: never)." default:"0"`
	Output    string `short:"o" help:"table, json or yaml (a fleet/v1 document)." enum:"table,json,yaml" default:"table"`
}

func (c *certsCheckCmd) Run(ctx context.Context, g *globals) error {
	s, err := openSession(g, c.Inventory, quiet)
	if err != nil {
		return err
	}
	defer s.Close()
	found, err := playbooks.CertsCheck(ctx, s)
	out := s.Output(g.stdout)
	defer out.Flush()
	now := time.Now()
	if c.Output != "table" {
		if werr := writeDoc(out, c.Output, CertsDoc{Header: header("Certificates"), Certificates: found}); werr != nil {
			return werr
		}
	} else {
		printCerts(out, found, now, c.WarnUnder)
	}
	if err != nil {
		return fmt.Errorf("certs check is incomplete: %s", err)
	}
	return failUnder(found, now, c.FailUnder)
}

func printCerts(w interface{ Write([]byte) (int, error) }, found []playbooks.Cert, now time.Time, warn int) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tCERTIFICATE\tSOURCE\tEXPIRES\tDAYS LEFT\t")
	for _, c := range found {
		expires, days := c.Expires.UTC().Format("2006-01-02"), fmt.Sprint(c.DaysLeft(now))
		if c.Missing {
			expires, days = "-", "-"
		}
		name := c.Name
		if c.CA {
			name += " (CA)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.Host, name, c.Source, expires, days, playbooks.CertVerdict(c, now, warn))
	}
	tw.Flush()
}

// failUnder is --fail-under: an error naming each certificate with fewer
// days left.
func failUnder(found []playbooks.Cert, now time.Time, days int) error {
	if days <= 0 {
		return nil
	}
	under := playbooks.CertsUnder(found, now, days)
	if len(under) == 0 {
		return nil
	}
	var names []string
	for _, c := range under {
		names = append(names, fmt.Sprintf("%s %s (%d days)", c.Host, c.Name, c.DaysLeft(now)))
	}
	return refusedByCheck{fmt.Errorf("%d certificate(s) with fewer than %d days left (--fail-under): %s", len(under), days, strings.Join(names, ", "))}
}
