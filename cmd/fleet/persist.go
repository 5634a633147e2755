package main

import (
	"context"
	"time"

	"github.com/fleetops/fleet/playbooks"
)

// muxServeCmd is the connection holder that --persist starts: not a
// command users type.
type muxServeCmd struct {
	Dir  string        `help:"Folder of the socket." required:""`
	Idle time.Duration `help:"End this long after the last run left." default:"60s"`
}

func (c *muxServeCmd) Run(ctx context.Context) error {
	return playbooks.ServeConnections(ctx, c.Dir, c.Idle)
}
