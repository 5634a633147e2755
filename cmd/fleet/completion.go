package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/posener/complete"

	"github.com/fleetops/fleet/inventory"
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

// nodePredictor offers the masters and workers of the inventory the line
// names (-i/--inventory), else of the default one.
func nodePredictor() complete.Predictor {
	return complete.PredictFunc(func(a complete.Args) []string {
		path := defaultInventory()
		for i, arg := range a.All {
			switch {
			case (arg == "-i" || arg == "--inventory") && i+1 < len(a.All):
				path = a.All[i+1]
			case strings.HasPrefix(arg, "--inventory="):
				path = strings.TrimPrefix(arg, "--inventory=")
			}
		}
		inv, err := inventory.Load(path)
		if err != nil {
			return nil
		}
		var names []string
		for _, h := range inv.Hosts() {
			if h.Role == inventory.RoleMaster || h.Role == inventory.RoleWorker {
				names = append(names, h.Name)
			}
		}
		return names
	})
}
