package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/fleetops/fleet/playbooks"
)

type backupCmd struct {
	Inventory string `short:"i" default:"${inventory}" help:"Inventory file (default: $$FLEET_INVENTORY, else ./inventory.yaml)." type:"existingfile"`
	Output    string `short:"o" help:"Folder for the backups, one sub-folder each (default: backups/ beside the inventory)." type:"path" placeholder:"DIR"`
	Keep      int    `help:"Keep this many of the cluster's backups in the folder, the newest; older ones are removed (0: keep all)." default:"0"`
}

// Run takes an etcd snapshot from the leader with the cluster's PKI and
// the inventory; it changes nothing on the hosts.
func (c *backupCmd) Run(ctx context.Context, g *globals) error {
	s, err := openSession(g, c.Inventory, quiet)
	if err != nil {
		return err
	}
	defer s.Close()
	dir := c.Output
	if dir == "" {
		dir = filepath.Join(filepath.Dir(c.Inventory), "backups")
	}
	res, err := playbooks.Backup(ctx, s, playbooks.BackupOptions{Dir: dir, Keep: c.Keep})
	if err != nil {
		return fmt.Errorf("backup failed (nothing kept): %w", err)
	}
	out := s.Output(g.stdout)
	defer out.Flush()
	m := res.Manifest
	fmt.Fprintf(out, "backup %s\n  etcd snapshot: %d bytes from %s (etcd %s, the leader), sha256 %s… (etcd.db.sha256)\n  with the cluster's PKI (keys: keep this folder as safe as the cluster) and the inventory\n",
		res.Path, m.Size, m.From, m.EtcdVersion, m.SnapshotSHA[:16])
	for _, p := range res.Pruned {
		fmt.Fprintf(out, "removed %s (--keep %d)\n", p, c.Keep)
	}
	return nil
}
