package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fleetops/fleet/playbooks"
)

type joinCmd struct {
	Inventory      string        `short:"i" default:"${inventory}" help:"Inventory file (default: $$FLEET_INVENTORY, else ./inventory.yaml)." type:"existingfile"`
	TokenTTL       time.Duration `help:"Lifetime of the bootstrap token this run creates." default:"15m"`
	ReadyTimeout   time.Duration `help:"How long to wait for the joined nodes to be Ready." default:"3m"`
	KubeadmTimeout time.Duration `help:"How long one kubeadm join may run before it is killed on its host." default:"10m"`
	Nodes          []string      `arg:"" help:"Inventory nodes to join (those joined already are skipped)." name:"node" predictor:"unjoined"`
}

func (c *joinCmd) Run(ctx context.Context, g *globals) error {
	s, err := openSession(g, c.Inventory, showProgress)
	if err != nil {
		return err
	}
	defer s.Close()
	start := time.Now()
	report, err := playbooks.Join(ctx, s, c.Nodes, playbooks.JoinOptions{TokenTTL: c.TokenTTL, ReadyTimeout: c.ReadyTimeout, KubeadmTimeout: c.KubeadmTimeout})
	g.stopProgress()
	out := s.Output(g.stdout)
	defer out.Flush()
	if err != nil {
		return fmt.Errorf("join failed after %s; fix the cause and run it again, joined nodes are skipped:\n%s",
			time.Since(start).Round(time.Millisecond), err)
	}
	printNodeOutcome(out, report, c.Nodes, "joined", "already joined", time.Since(start))
	return nil
}

type removeCmd struct {
	Inventory          string        `short:"i" default:"${inventory}" help:"Inventory file (default: $$FLEET_INVENTORY, else ./inventory.yaml)." type:"existingfile"`
	Force              bool          `help:"Remove the last master, or masters past etcd's quorum."`
	DrainTimeout       time.Duration `help:"How long evictions may wait for PodDisruptionBudgets." default:"2m"`
	ForceDrain         bool          `name:"force-drain" help:"Delete pods that no controller manages (nothing recreates them), as kubectl drain --force does."`
	DeleteEmptyDirData bool          `help:"Evict pods that use emptyDir volumes; their data is lost, as with kubectl drain --delete-emptydir-data."`
	Gone               bool          `help:"The nodes are dead for good: do not drain or reset them, only take them out of the load balancer, etcd and the API (refused if one answers over SSH)."`
	Nodes              []string      `arg:"" help:"Inventory nodes to drain, reset and delete." name:"node" predictor:"joined"`
}

func (c *removeCmd) Run(ctx context.Context, g *globals) error {
	s, err := openSession(g, c.Inventory, showProgress)
	if err != nil {
		return err
	}
	defer s.Close()
	start := time.Now()
	report, err := playbooks.Remove(ctx, s, c.Nodes, playbooks.RemoveOptions{Force: c.Force, DrainTimeout: c.DrainTimeout,
		ForceDrain: c.ForceDrain, DeleteEmptyDirData: c.DeleteEmptyDirData, Gone: c.Gone})
	g.stopProgress()
	out := s.Output(g.stdout)
	defer out.Flush()
	if err != nil {
		return fmt.Errorf("remove failed after %s; fix the cause and run it again, finished steps are skipped:\n%s",
			time.Since(start).Round(time.Millisecond), err)
	}
	printNodeOutcome(out, report, c.Nodes, "removed", "already out of the cluster", time.Since(start))
	if c.Gone {
		fmt.Fprintln(out, "take the nodes out of the inventory, or put fresh machines at their addresses: the next fleet apply joins those")
		return nil
	}
	fmt.Fprintln(out, "a node still in the inventory joins again on the next fleet apply: delete it there to keep it out")
	return nil
}

// printNodeOutcome says per node whether the run changed it.
func printNodeOutcome(out interface{ Write([]byte) (int, error) }, r *playbooks.Report, nodes []string, did, already string, took time.Duration) {
	changed := map[string]bool{}
	for _, e := range r.Changes() {
		changed[e.Host] = true
	}
	for _, n := range nodes {
		if changed[n] {
			fmt.Fprintf(out, "%s: %s\n", n, did)
		} else {
			fmt.Fprintf(out, "%s: %s, nothing to do\n", n, already)
		}
	}
	fmt.Fprintf(out, "done in %s\n", took.Round(time.Millisecond))
}
