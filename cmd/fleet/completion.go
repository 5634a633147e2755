package main

import (
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

// nodePredictor offers the nodes of the inventory the line names (-i,
// --inventory; else the default one) that the command can act on: for
// join those that have not joined, for remove those that have, asked over
// SSH with the line's --known-hosts and --ssh-config (2 s at most; past
// that, or for other commands, every master and worker).
func nodePredictor() complete.Predictor {
	return complete.PredictFunc(func(a complete.Args) []string {
		path, flags := defaultInventory(), map[string]string{}
		for i, arg := range a.All {
			for _, name := range []string{"inventory", "known-hosts", "ssh-config"} {
				switch {
				case (arg == "--"+name || (name == "inventory" && arg == "-i")) && i+1 < len(a.All):
					flags[name] = a.All[i+1]
				case strings.HasPrefix(arg, "--"+name+"="):
					flags[name] = strings.TrimPrefix(arg, "--"+name+"=")
				}
			}
		}
		if p := flags["inventory"]; p != "" {
			path = p
		}
		inv, err := inventory.Load(path)
		if err != nil {
			return nil
		}
		var all []string
		for _, h := range inv.Hosts() {
			if h.Role == inventory.RoleMaster || h.Role == inventory.RoleWorker {
				all = append(all, h.Name)
			}
		}
		command := ""
		for _, arg := range a.All {
			if arg == "join" || arg == "remove" {
				command = arg
				break
			}
		}
		if command != "join" && command != "remove" {
			return all
		}
		s, err := playbooks.NewSession(inv, playbooks.Options{KnownHosts: flags["known-hosts"], SSHConfig: flags["ssh-config"]})
		if err != nil {
			return all
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		joined, unjoined := playbooks.NodesByJoined(ctx, s)
		if len(joined)+len(unjoined) == 0 { // nobody answered: offer what the inventory has
			return all
		}
		if command == "join" {
			return unjoined
		}
		return joined
	})
}
