package playbooks

import (
	"context"
	"fmt"
	"strings"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/nodeprep"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// lbPackagesPhase installs the load balancer's software from the
// distribution's packages when fleet prepares hosts (cluster.install:
// packages or binaries; an air-gapped site has its distribution's
// mirror): nginx with its stream module for runAs: service, the docker
// engine for runAs: container; with apt or dnf by the host's family (a
// dnf host's docker engine is not the distribution's: preflight asks for
// it).
// With proxy set, it installs a node's local API proxy (nginx and its
// stream module) instead.
type lbPackagesPhase struct {
	inv   *inventory.Inventory
	proxy bool
	seen  seen[lbPackagesState]
}

// packages are the phase's program and packages on a host of manager.
func (p *lbPackagesPhase) packages(manager string) (string, []string) {
	if p.proxy {
		return "nginx", nginxPackages(manager)
	}
	return lbPackages(p.inv, manager)
}

// nginxPackages are nginx and its stream module, as the distributions
// name them.
func nginxPackages(manager string) []string {
	if manager == "dnf" {
		return []string{"nginx", "nginx-mod-stream"}
	}
	return []string{"nginx", "libnginx-mod-stream"}
}

// lbPackages are the packages the load balancer needs on a host of
// manager (apt, dnf), the first one being the program's own.
// With a VIP, keepalived comes last.
func lbPackages(inv *inventory.Inventory, manager string) (program string, packages []string) {
	program, packages = "nginx", nginxPackages(manager)
	if inv.NginxRunAs() == inventory.NginxContainer {
		program, packages = "docker", []string{"docker.io"}
		if manager == "dnf" {
			packages = []string{"docker-ce"} // Docker's repository: never installed by fleet (see above)
		}
	}
	if inv.VIP != nil {
		packages = append(packages, "keepalived")
	}
	return program, packages
}

// installsLB reports whether fleet installs the load balancer's program
// on a host of family when it prepares hosts; otherwise preflight wants
// it installed.
func installsLB(inv *inventory.Inventory, family string) bool {
	return family == nodeprep.FamilyDebian || family == nodeprep.FamilyRHEL && inv.NginxRunAs() != inventory.NginxContainer
}

// lbPackagesState is what dpkg or rpm says of the packages, and whether
// the program is on the PATH at all.
type lbPackagesState struct {
	installed map[string]bool
	program   bool
}

func (p *lbPackagesPhase) state(ctx context.Context, pr probe, host string, m packageManager) (lbPackagesState, error) {
	program, pkgs := p.packages(m.name)
	query := exec.Command(append(append([]string{}, m.installedQuery...), pkgs...)...)
	res, err := pr.query(ctx, host, query+" 2>/dev/null; "+exec.Command("command", "-v", program)+" >/dev/null && echo program; :")
	if err != nil {
		return lbPackagesState{}, err
	}
	st := lbPackagesState{installed: map[string]bool{}}
	for _, line := range strings.Split(res.Stdout, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 1 && f[0] == "program":
			st.program = true
		case len(f) >= 2 && len(f[1]) >= 2 && f[1][1] == 'i': // see packageManager.installedQuery
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
	m, err := pr.s.managerOf(host)
	if err != nil {
		return false, "", err
	}
	st, err := p.state(ctx, pr, host, m)
	if err != nil {
		return false, "", err
	}
	p.seen.keep(host, st)
	program, pkgs := p.packages(m.name)
	if missing := lbPackagesTodo(st, pkgs); len(missing) > 0 {
		return false, "install " + strings.Join(missing, ", ") + " from the distribution", nil
	}
	if !st.installed[pkgs[0]] {
		return true, program + " is installed (not from a package): fleet leaves it", nil
	}
	return true, strings.Join(pkgs, ", ") + " installed from the distribution", nil
}

func (p *lbPackagesPhase) run(ctx context.Context, r remote, host string) error {
	m, err := r.s.managerOf(host)
	if err != nil {
		return err
	}
	st, ok := p.seen.take(host)
	if !ok {
		if st, err = p.state(ctx, r.probe, host, m); err != nil {
			return err
		}
	}
	_, pkgs := p.packages(m.name)
	missing := lbPackagesTodo(st, pkgs)
	if len(missing) == 0 {
		return nil
	}
	if _, err := r.run(ctx, host, exec.Command(append([]string{"sh", "-c", m.plainInstallScript, "fleet-install"}, missing...)...)); err != nil {
		return fmt.Errorf("%s: %w", m.name, err)
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
	_, pkgs := lbPackages(s.Inv, "apt")
	g.MustAdd(s.step(steps.Step{Name: "prepare-loadbalancer", Description: "install " + strings.Join(pkgs, ", ") + " (apt's names) from the distribution's packages",
		Hosts: s.Inv.LoadBalancerNames(), After: []string{"gate"}}, &lbPackagesPhase{inv: s.Inv}))
	return []string{"prepare-loadbalancer"}
}
