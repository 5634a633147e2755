package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetops/fleet/playbooks"
)

type upgradeCmd struct {
	Inventory          string        `short:"i" default:"${inventory}" help:"Inventory file (default: $$FLEET_INVENTORY, else ./inventory.yaml); its kubernetesVersion is the version to upgrade to." type:"existingfile"`
	MaxUnavailable     string        `help:"Workers drained and upgraded at once: a number, or a percentage of the workers (default 10%, at least 1)." placeholder:"N|P%"`
	DrainTimeout       time.Duration `help:"How long a node's evictions may wait for PodDisruptionBudgets." default:"5m"`
	ForceDrain         bool          `name:"force-drain" help:"Delete pods that no controller manages (nothing recreates them), as kubectl drain --force does."`
	DeleteEmptyDirData bool          `help:"Evict pods that use emptyDir volumes; their data is lost, as with kubectl drain --delete-emptydir-data."`
	ReadyTimeout       time.Duration `help:"How long a node may take to be Ready at the new version after its kubelet restarts." default:"5m"`
	KubeadmTimeout     time.Duration `help:"Bound on one kubeadm upgrade apply or node; one still running then is killed on its host." default:"15m"`
}

func (c *upgradeCmd) Run(ctx context.Context, g *globals) error {
	s, err := openSession(g, c.Inventory, showProgress)
	if err != nil {
		return err
	}
	defer s.Close()
	opts := playbooks.DefaultUpgradeOptions()
	opts.MaxUnavailable = c.MaxUnavailable
	opts.SetDrain(c.DrainTimeout, c.ForceDrain, c.DeleteEmptyDirData)
	opts.ReadyTimeout, opts.KubeadmTimeout = c.ReadyTimeout, c.KubeadmTimeout
	start := time.Now()
	report, err := playbooks.Upgrade(ctx, s, opts)
	g.stopProgress()
	out := s.Output(g.stdout)
	defer out.Flush()
	if err != nil {
		return fmt.Errorf("upgrade failed after %s; fix the cause and run it again, upgraded nodes are skipped:\n%s",
			time.Since(start).Round(time.Millisecond), err)
	}
	if !report.Changed() {
		fmt.Fprintf(out, "no changes: every node is at %s (done in %s)\n", s.Inv.Cluster.KubernetesVersion, time.Since(start).Round(time.Millisecond))
		return nil
	}
	printNodeOutcome(out, report, playbooks.UpgradeNodes(s.Inv), "upgraded to "+s.Inv.Cluster.KubernetesVersion, "at "+s.Inv.Cluster.KubernetesVersion+" already", time.Since(start))
	return nil
}
