// Command fleet-sim brings simulated hosts up and down for `make sim-up`,
// `make sim-down` and `make demo`.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/fleetops/fleet/testing/sim"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fleet-sim:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) < 2 {
		return fmt.Errorf("usage: fleet-sim up|down|layer [-topology ha|hosts-N] [-id ID] [-subnet N] [-dir DIR] [-layer DIR] [-bin DIR]")
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	topology := fs.String("topology", "ha", "ha, or hosts-N for N hosts")
	id := fs.String("id", "s0", "short id that names the namespaces and links")
	subnet := fs.Int("subnet", 0, "third octet of 198.18.N.0/24")
	dir := fs.String("dir", "/var/tmp/fleet-sim/s0", "state and per-host folders")
	layer := fs.String("layer", "/var/cache/fleet-sim/layer", "/usr layer with the node binaries (\"\" for bare hosts)")
	bare := fs.Bool("bare", false, "up: bare hosts (no kubeadm, kubelet, kubectl or containerd); the inventory installs them from the layer's -airgap folder")
	rocky := fs.String("rocky", "", "up: comma-separated hosts that claim Rocky Linux 9 (dnf and rpm of their own; with -bare, a distribution rpm repository)")
	bin := fs.String("bin", "/var/cache/fleet-sim/bin", "layer: where testing/tools/build.sh put the binaries")
	if err := fs.Parse(os.Args[2:]); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	switch os.Args[1] {
	case "up":
		topo, err := sim.Named(*topology, *id, *subnet)
		if err != nil {
			return err
		}
		topo.Tools, topo.Bare = *layer, *bare
		if *rocky != "" {
			topo.Rocky = strings.Split(*rocky, ",")
		}
		c, err := sim.Up(ctx, *dir, topo)
		if err != nil {
			return err
		}
		if *bare {
			if err := c.InstallFromFolder(sim.AirgapFolder(*layer)); err != nil {
				return err
			}
		}
		for _, h := range c.Hosts {
			fmt.Printf("%-10s %-13s %-15s %s\n", h.Name, h.Role, h.Address, h.Distro)
		}
		fmt.Printf("inventory:   %s\nknown_hosts: %s\nkey:         %s\n", c.Inventory, c.KnownHosts, c.KeyFile)
		return nil
	case "down":
		return sim.Down(*dir, *id)
	case "layer":
		return sim.InstallLayer(*bin, *layer)
	}
	return fmt.Errorf("unknown command %q", os.Args[1])
}
