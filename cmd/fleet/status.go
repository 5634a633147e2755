package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/fleetops/fleet/playbooks"
)

type statusCmd struct {
	Inventory string `short:"i" default:"${inventory}" help:"Inventory file (default: $$FLEET_INVENTORY, else ./inventory.yaml)." type:"existingfile"`
	Output    string `short:"o" help:"table, json or yaml (a fleet/v1 document)." enum:"table,json,yaml" default:"table"`
}

func (c *statusCmd) Run(ctx context.Context, g *globals) error {
	s, err := openSession(g, c.Inventory, quiet)
	if err != nil {
		return err
	}
	defer s.Close()
	rows, err := playbooks.Status(ctx, s)
	balancers := playbooks.Balancers(ctx, s)
	out := s.Output(g.stdout)
	defer out.Flush()
	if c.Output != "table" {
		return writeDocThen(out, c.Output, statusDoc(rows, balancers), incomplete(err))
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	local := s.Inv.Cluster.NodeLocalProxy
	header := "HOST\tROLE\tREACHABLE\tJOINED\tREADY\tKUBELET\tKUBEADM\tETCD\tLB UPSTREAM\tCONTROL PLANE"
	if local {
		header += "\tLOCAL PROXY"
	}
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		ready := r.Ready.String()
		if r.Stale {
			ready += " (last heard " + r.LastHeard.Round(time.Second).String() + " ago)"
		}
		switch {
		case r.UpgradingTo != "":
			ready += ", cordoned by fleet upgrade to " + r.UpgradingTo
		case r.Cordoned:
			ready += ", cordoned"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", r.Host, r.Role, yesNo(r.Reachable), r.Joined, ready,
			orDash(r.KubeletVersion), orDash(r.KubeadmVersion), roleOnly(r.Role == "master", r.EtcdMember), roleOnly(r.Role == "master", r.InUpstream),
			orDash(r.ControlPlane))
		if local {
			fmt.Fprintf(tw, "\t%s", r.LocalProxy)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	if len(balancers) == 0 {
		return incomplete(err)
	}
	fmt.Fprintln(out)
	vip := s.Inv.VIP != nil
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	if vip {
		fmt.Fprintf(tw, "BALANCER\tREACHABLE\tNGINX\tKEEPALIVED\tVIP %s\n", s.Inv.VIP.Address)
	} else {
		fmt.Fprintln(tw, "BALANCER\tREACHABLE\tNGINX")
	}
	for _, b := range balancers {
		fmt.Fprintf(tw, "%s\t%s\t%s", b.Host, yesNo(b.Reachable), b.Nginx)
		if vip {
			fmt.Fprintf(tw, "\t%s\t%s", b.Keepalived, holds(b.HoldsVIP))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	return incomplete(err)
}

// holds prints who holds the VIP: "holds it" where it is, "-" elsewhere.
func holds(a playbooks.Answer) string {
	if a == playbooks.Yes {
		return "holds it"
	}
	if a == playbooks.No {
		return "-"
	}
	return "?"
}

func incomplete(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("status is incomplete: %s", err)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// roleOnly prints yes/no/? where the column applies and - where it does not.
func roleOnly(applies bool, v playbooks.Answer) string {
	if !applies {
		return "-"
	}
	return v.String()
}
