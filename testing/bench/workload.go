// Package bench measures fleet against ansible-playbook and parallel
// OpenSSH on the same simulated hosts, in the same run. Each does the same
// work per host: connect, upload a 4 KiB file atomically with mode 0600,
// then five short commands in order, keeping their output.
package bench

import (
	"context"
	"fmt"
	"sync"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/playbooks"
)

// PayloadPath is where every tool puts the uploaded file on each host.
const PayloadPath = "/root/fleet-bench.payload"

// Commands are the five commands each tool runs after the upload, in order.
var Commands = []string{
	"uname -a",
	"cat /etc/os-release",
	"sha256sum " + PayloadPath,
	"test -d /etc/kubernetes; echo $?",
	"true",
}

// Outputs collects every command's output, per host.
type Outputs struct {
	mu sync.Mutex
	m  map[string][]string
}

func (o *Outputs) add(host, out string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[string][]string{}
	}
	o.m[host] = append(o.m[host], out)
}

// Of returns a host's outputs, in command order.
func (o *Outputs) Of(host string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.m[host]
}

// Graph is the work as a fleet step graph, built from fleet's public
// packages and run by its engine on its SSH connections: an upload step,
// then one step per command, each after the one before on the same host.
func Graph(s *playbooks.Session, hosts []string, payload []byte, out *Outputs) *steps.Graph {
	g := steps.New()
	g.MustAdd(steps.Step{Name: "upload", Hosts: hosts, Run: func(ctx context.Context, h string) error {
		conn, err := s.Conn(ctx, h)
		if err != nil {
			return err
		}
		return conn.Upload(ctx, PayloadPath, payload, 0o600)
	}})
	prev := "upload"
	for i, cmd := range Commands {
		name := fmt.Sprintf("cmd%d", i+1)
		g.MustAdd(steps.Step{Name: name, Hosts: hosts, After: []string{prev}, Run: func(ctx context.Context, h string) error {
			conn, err := s.Conn(ctx, h)
			if err != nil {
				return err
			}
			res, err := conn.Run(ctx, cmd)
			if err != nil {
				return err
			}
			out.add(h, res.Stdout)
			return nil
		}})
		prev = name
	}
	return g
}

// RunFleet runs the work on every host of the session's inventory.
func RunFleet(ctx context.Context, s *playbooks.Session, payload []byte) (*Outputs, error) {
	var hosts []string
	for _, h := range s.Inv.Hosts() {
		hosts = append(hosts, h.Name)
	}
	out := &Outputs{}
	_, err := s.Run(ctx, Graph(s, hosts, payload, out))
	return out, err
}
