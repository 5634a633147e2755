package main

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/posener/complete"

	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
)

type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"bash, zsh or fish."`
}

// Run prints the script that makes the shell ask fleet itself for
// completions (with COMP_LINE set), as bash's complete -C does.
func (c *completionCmd) Run(g *globals) error {
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("completion: where is fleet: %w", err)
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return fmt.Errorf("completion: %w", err)
	}
	_, err = fmt.Fprint(g.stdout, completionScript(c.Shell, bin))
	return err
}

func completionScript(shell, bin string) string {
	q := "'" + strings.ReplaceAll(bin, "'", `'\''`) + "'"
	switch shell {
	case "zsh":
		return "autoload -U +X bashcompinit && bashcompinit\ncomplete -o default -C " + q + " fleet\n"
	case "fish":
		return "function __complete_fleet\n    set -lx COMP_LINE (commandline -cp)\n    test -z (commandline -ct)\n    and set COMP_LINE \"$COMP_LINE \"\n    " + q + "\nend\ncomplete -f -c fleet -a \"(__complete_fleet)\"\n"
	}
	return "complete -o default -C " + q + " fleet\n"
}

// Which nodes a completion offers.
type nodeSet int

const (
	anyNode      nodeSet = iota // every master and worker (cloud-init)
	joinedNode                  // those that have joined (remove)
	unjoinedNode                // those that have not (join)
)

// nodePredictor offers the nodes of set from the inventory the line names
// (-i, --inventory; else the default one). Joined or not is asked over
// SSH with the line's --known-hosts and --ssh-config, 3 s at most; when no
// host answers, every master and worker is offered.
func nodePredictor(set nodeSet) complete.Predictor {
	return complete.PredictFunc(func(a complete.Args) []string {
		flags := lineFlags(a.All, "inventory", "known-hosts", "ssh-config")
		inv, err := inventory.Load(cmp.Or(flags["inventory"], defaultInventory()))
		if err != nil {
			return nil
		}
		var all []string
		for _, h := range inv.Hosts() {
			if h.Role == inventory.RoleMaster || h.Role == inventory.RoleWorker {
				all = append(all, h.Name)
			}
		}
		if set == anyNode {
			return all
		}
		s, err := playbooks.NewSession(inv, playbooks.Options{KnownHosts: flags["known-hosts"], SSHConfig: flags["ssh-config"]})
		if err != nil {
			return all
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		joined, unjoined := playbooks.NodesByJoined(ctx, s)
		switch {
		case len(joined)+len(unjoined) == 0:
			return all
		case set == joinedNode:
			return joined
		}
		return unjoined
	})
}

// lineFlags picks the named flags' values from a command line being
// typed (--name VALUE or --name=VALUE; -i for inventory).
func lineFlags(args []string, names ...string) map[string]string {
	flags := map[string]string{}
	for i, arg := range args {
		for _, name := range names {
			switch {
			case (arg == "--"+name || (name == "inventory" && arg == "-i")) && i+1 < len(args):
				flags[name] = args[i+1]
			case strings.HasPrefix(arg, "--"+name+"="):
				flags[name] = strings.TrimPrefix(arg, "--"+name+"=")
			}
		}
	}
	return flags
}
