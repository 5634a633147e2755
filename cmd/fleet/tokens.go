package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fleetops/fleet/playbooks"
)

type rotateTokensCmd struct {
	Inventory        string        `short:"i" default:"${inventory}" help:"Inventory file (default: $$FLEET_INVENTORY, else ./inventory.yaml)." type:"existingfile"`
	TTL              time.Duration `help:"Lifetime of the new token." default:"15m"`
	All              bool          `help:"Delete every bootstrap token, not only fleet's and expired ones (asks first)."`
	Yes              bool          `help:"Do not ask before --all."`
	CertificateKey   bool          `help:"Upload the control-plane certificates again under a new certificate key."`
	PrintJoinCommand bool          `help:"Print the kubeadm join command for a worker on stdout (it holds a secret)."`
	ControlPlane     bool          `help:"With --print-join-command: the control-plane join command (implies --certificate-key)."`
	Output           string        `short:"o" help:"table, json or yaml (a fleet/v1 document: token IDs and expiry, never secrets)." enum:"table,json,yaml" default:"table"`
}

func (c *rotateTokensCmd) Run(ctx context.Context, g *globals) error {
	if c.ControlPlane && !c.PrintJoinCommand {
		return badInput{fmt.Errorf("--control-plane goes with --print-join-command")}
	}
	s, err := openSession(g, c.Inventory, quiet)
	if err != nil {
		return err
	}
	defer s.Close()
	if c.All && !c.Yes {
		if !confirm(g.stdin, g.stderr, fmt.Sprintf("delete every bootstrap token of cluster %q, including ones not made by fleet?", s.Inv.Cluster.Name), "yes") {
			return fmt.Errorf("not confirmed: nothing changed")
		}
	}
	rot, err := playbooks.RotateTokens(ctx, s, playbooks.RotateOptions{TTL: c.TTL, All: c.All, CertificateKey: c.CertificateKey || c.ControlPlane})
	if err != nil {
		return fmt.Errorf("rotate-tokens: %s", err)
	}
	// The table goes to stderr when stdout carries the join command, so a
	// script can take stdout as it is.
	table := s.Output(g.stdout)
	if c.PrintJoinCommand {
		table = s.Output(g.stderr)
	}
	defer table.Flush()
	if c.Output != "table" {
		if err := writeDoc(table, c.Output, tokensDoc(rot)); err != nil {
			return err
		}
	} else {
		printTokens(table, rot, c.PrintJoinCommand)
	}
	if c.PrintJoinCommand {
		fmt.Fprintf(g.stderr, "warning: the join command below contains a secret valid for %s; do not paste it into logs or tickets\n", c.TTL)
		// Deliberately not redacted: printing it is what the user asked for.
		fmt.Fprintln(g.stdout, rot.JoinCommand(c.ControlPlane))
	}
	return nil
}

// printTokens is rotate-tokens' table.
func printTokens(table io.Writer, rot *playbooks.Rotation, printingJoinCommand bool) {
	tw := tabwriter.NewWriter(table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TOKEN ID\tEXPIRES\tUSAGES\tDESCRIPTION\tACTION")
	for _, r := range rot.Rows {
		expires := "never"
		if !r.Expires.IsZero() {
			expires = r.Expires.Local().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s (%s)\n", r.ID, expires, r.UsageList(), r.Description, r.Action, r.Why)
	}
	tw.Flush()
	if rot.CertificateKey != "" && !printingJoinCommand {
		fmt.Fprintln(table, "control-plane certificates uploaded under a new certificate key (not shown; use --print-join-command --control-plane)")
	}
}

// confirm asks a question on w and reads one line; only want confirms.
func confirm(r io.Reader, w io.Writer, question, want string) bool {
	fmt.Fprintf(w, "%s type %q to go on: ", question, want)
	line, _ := bufio.NewReader(r).ReadString('\n')
	return strings.TrimSpace(line) == want
}
