package playbooks

import (
	"context"
	"sync"
	"time"

	"github.com/fleetops/fleet/internal/facts"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// HostCheck is what `fleet check` learned about one host.
type HostCheck struct {
	Host    string
	Role    inventory.Role
	Address string
	Facts   facts.Facts // zero when unreachable
	Took    time.Duration
	Err     error // nil when reachable and probed
}

// Reachable reports whether the probe ran.
func (c HostCheck) Reachable() bool { return c.Err == nil }

// Check connects to every host in parallel and probes what it is. It
// changes nothing. Results come in inventory order (load balancer, masters,
// workers, CA); the error collects the hosts that could not be probed.
func Check(ctx context.Context, s *Session) ([]HostCheck, *steps.Report, error) {
	hosts := s.Inv.Hosts()
	var mu sync.Mutex
	results := map[string]*HostCheck{}
	for _, h := range hosts {
		results[h.Name] = &HostCheck{Host: h.Name, Role: h.Role, Address: h.Address}
	}

	g := steps.New()
	g.MustAdd(steps.Step{
		Name:        "probe",
		Description: "connect and read OS, architecture and installed tools",
		Hosts:       hostNames(hosts),
		Run: func(ctx context.Context, host string) error {
			start := time.Now()
			f, err := probeFacts(ctx, s, host)
			mu.Lock()
			defer mu.Unlock()
			r := results[host]
			r.Facts, r.Err, r.Took = f, err, time.Since(start)
			return err
		},
	})
	report, err := s.Run(ctx, g)

	out := make([]HostCheck, 0, len(hosts))
	for _, h := range hosts {
		out = append(out, *results[h.Name])
	}
	return out, report, err
}

func probeFacts(ctx context.Context, s *Session, host string) (facts.Facts, error) {
	conn, err := s.Conn(ctx, host)
	if err != nil {
		return facts.Facts{}, err
	}
	res, err := conn.Run(ctx, facts.Command())
	if err != nil {
		return facts.Facts{}, err
	}
	return facts.Parse(res.Stdout)
}
