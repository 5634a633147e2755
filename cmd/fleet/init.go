package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/fleetops/fleet/inventory"
)

type initCmd struct {
	Output       string   `short:"o" help:"Where to write the inventory." default:"inventory.yaml" type:"path"`
	Force        bool     `help:"Overwrite the file if it exists."`
	Name         string   `help:"The cluster's name (a DNS label)." default:"cluster"`
	Version      string   `name:"kubernetes-version" help:"The Kubernetes version kubeadm deploys." default:"v1.34.4"`
	LB           string   `name:"lb" required:"" help:"The load balancer host's address." placeholder:"ADDR"`
	Masters      []string `required:"" help:"The masters' addresses, the first one initialises the cluster (an odd number: etcd quorum)." placeholder:"ADDR,..."`
	Workers      []string `help:"The workers' addresses." placeholder:"ADDR,..."`
	User         string   `help:"SSH user on every host (not root: sudo without a password)." default:"root"`
	IdentityFile string   `help:"SSH private key (default: ssh-agent's keys)." type:"path" placeholder:"FILE"`
}

// Run writes a commented starter inventory, checked by loading it as
// every command will, atomically and never over an existing file unless
// --force.
func (c *initCmd) Run(g *globals) error {
	if _, err := os.Stat(c.Output); err == nil && !c.Force {
		return refusedByCheck{fmt.Errorf("%s exists: nothing written (--force overwrites it)", c.Output)}
	}
	starter := inventory.Starter{Name: c.Name, KubernetesVersion: c.Version, LoadBalancer: c.LB, Masters: c.Masters,
		Workers: c.Workers, User: c.User, IdentityFile: c.IdentityFile}
	doc, err := starter.Render(c.Output)
	if err != nil {
		return badInput{err}
	}
	tmp, err := os.CreateTemp(filepath.Dir(c.Output), ".fleet-init-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(doc); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// Relative paths in it (none yet) would resolve beside the output.
	if _, err := inventory.Load(tmp.Name()); err != nil {
		return badInput{fmt.Errorf("the starter inventory does not load (nothing written): %w", err)}
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), c.Output); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "wrote %s (load balancer %s, masters: %d, workers: %d)\nnext: fleet check --accept-new-host-keys -i %s\n",
		c.Output, c.LB, len(c.Masters), len(c.Workers), c.Output)
	return nil
}
