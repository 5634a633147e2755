package playbooks

import (
	"context"
	"fmt"
	"strings"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// lbPackagesPhase installs the load balancer's software from the
// distribution's packages when fleet prepares hosts (cluster.install:
// packages or binaries; an air-gapped site has its distribution's
// mirror): nginx with its stream module for runAs: service, the docker
// engine for runAs: container. apt only so far: preflight names what to
// install on another distribution.
// With proxy set, it installs a node's local API proxy (nginx and its
// stream module) instead.
type lbPackagesPhase struct {
	inv   *inventory.Inventory
	proxy bool
	seen  seen[lbPackagesState]
}

// packages are the phase's program and packages.
func (p *lbPackagesPhase) packages() (string, []string) {
	if p.proxy {
		return "nginx", []string{"nginx", "libnginx-mod-stream"}
	}
	return lbPackages(p.inv)
}

// lbPackages are the packages the load balancer needs, the first one
// being the program's own.
// With a VIP, keepalived comes last.
func lbPackages(inv *inventory.Inventory) (program string, packages []string) {
	program, packages = "nginx", []string{"nginx", "libnginx-mod-stream"}
	if inv.NginxRunAs() == inventory.NginxContainer {
		program, packages = "docker", []string{"docker.io"}
	}
	if inv.VIP != nil {
		packages = append(packages, "keepalived")
	}
	return program, packages
}

// lbPackagesState is what dpkg says of the packages, and whether the
// program is on the PATH at all.
type lbPackagesState struct {
	installed map[string]bool
	program   bool
}

func (p *lbPackagesPhase) state(ctx context.Context, pr probe, host string) (lbPackagesState, error) {
	program, pkgs := p.packages()
	res, err := pr.query(ctx, host, exec.Command(append([]string{"dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\\n"}, pkgs...)...)+
		" 2>/dev/null; "+exec.Command("command", "-v", program)+" >/dev/null && echo program; :")
	if err != nil {
		return lbPackagesState{}, err
	}
	st := lbPackagesState{installed: map[string]bool{}}
	for _, line := range strings.Split(res.Stdout, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 1 && f[0] == "program":
			st.program = true
		case len(f) >= 2 && len(f[1]) >= 2 && f[1][1] == 'i': // see parsePackagesState
			st.installed[f[0]] = true
		}
	}
	return st, nil
}

// lbPackagesTodo is what is left to install: nothing when every package
// is there, or when the program came some other way (fleet leaves an
// nginx the site built itself alone).
func lbPackagesTodo(st lbPackagesState, pkgs []string) []string {
	var missing []string
	for _, name := range pkgs {
		if st.installed[name] {
			continue
		}
		// The balancer's program not from a package: its packages are
		// left out (keepalived is not one of them).
		if st.program && !st.installed[pkgs[0]] && name != "keepalived" {
			continue
		}
		missing = append(missing, name)
	}
	return missing
}

func (p *lbPackagesPhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	st, err := p.state(ctx, pr, host)
	if err != nil {
		return false, "", err
	}
	p.seen.keep(host, st)
	program, pkgs := p.packages()
	if missing := lbPackagesTodo(st, pkgs); len(missing) > 0 {
		return false, "install " + strings.Join(missing, ", ") + " from the distribution", nil
	}
	if !st.installed[pkgs[0]] {
		return true, program + " is installed (not from a package): fleet leaves it", nil
	}
	return true, strings.Join(pkgs, ", ") + " installed from the distribution", nil
}

// lbInstallScript installs $@ from the distribution's sources.
const lbInstallScript = `set -e
export DEBIAN_FRONTEND=noninteractive
apt-get -q update >/dev/null
apt-get -q install -y --no-install-recommends "$@"`

func (p *lbPackagesPhase) run(ctx context.Context, r remote, host string) error {
	st, ok := p.seen.take(host)
	if !ok {
		var err error
		if st, err = p.state(ctx, r.probe, host); err != nil {
			return err
		}
	}
	_, pkgs := p.packages()
	missing := lbPackagesTodo(st, pkgs)
	if len(missing) == 0 {
		return nil
	}
	if _, err := r.run(ctx, host, exec.Command(append([]string{"sh", "-c", lbInstallScript, "fleet-install"}, missing...)...)); err != nil {
		return fmt.Errorf("apt: %w", err)
	}
	return nil
}

// addPrepareLB adds, when fleet prepares hosts, the step that installs the
// load balancer's software after the gate; it returns the steps the load
// balancer's config must wait for.
func addPrepareLB(s *Session, g *steps.Graph) []string {
	if !s.Inv.Installs() || len(s.Inv.LoadBalancers) == 0 {
		return []string{"gate"}
	}
	_, pkgs := lbPackages(s.Inv)
	g.MustAdd(s.step(steps.Step{Name: "prepare-loadbalancer", Description: "install " + strings.Join(pkgs, ", ") + " from the distribution's packages (apt)",
		Hosts: s.Inv.LoadBalancerNames(), After: []string{"gate"}}, &lbPackagesPhase{inv: s.Inv}))
	return []string{"prepare-loadbalancer"}
}
