package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/fleetops/fleet/internal/binaries"
	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/bench"
	"github.com/fleetops/fleet/testing/sim"
)

// The prepare row: fleet prepare (install: binaries) on bare hosts against
// the floor of sending the same files with OpenSSH's scp, all hosts at once.
const (
	prepareNodes         = 20
	maxPrepareVsSCPRatio = 1.3
)

type prepareResult struct {
	nodes        int
	folderBytes  int64
	fleet, scp   []time.Duration
	fleetBytes   int64 // sent by one fleet run
	scpBytes     int64 // sent by one scp run
	afterSeconds time.Duration
}

// measurePrepare alternates fleet and scp runs, each on freshly booted
// bare hosts, and times a second fleet prepare (nothing to send).
func measurePrepare(ctx context.Context, layer, dir string, runs int) (prepareResult, error) {
	folder := sim.AirgapFolder(layer)
	b, err := binaries.Load(folder)
	if err != nil {
		return prepareResult{}, err
	}
	res := prepareResult{nodes: prepareNodes, folderBytes: b.TotalSize()}
	for i := 0; i < runs; i++ {
		for _, tool := range []string{toolFleet, toolOpenSSH} {
			if i%2 == 1 { // the other order every second round
				tool = map[string]string{toolFleet: toolOpenSSH, toolOpenSSH: toolFleet}[tool]
			}
			if err := ctx.Err(); err != nil {
				return res, err
			}
			c, err := bareHosts(ctx, layer, filepath.Join(dir, "sim"))
			if err != nil {
				return res, err
			}
			var took time.Duration
			if tool == toolFleet {
				var sent int64
				took, sent, err = fleetPrepare(ctx, c, folder)
				res.fleetBytes = sent
				if err == nil && i == runs-1 {
					res.afterSeconds, sent, err = fleetPrepare(ctx, c, folder)
					if err == nil && sent != 0 {
						err = fmt.Errorf("second prepare sent %d bytes", sent)
					}
				}
				res.fleet = append(res.fleet, took)
			} else {
				took, err = scpAll(ctx, c, b)
				res.scpBytes = int64(prepareNodes) * b.TotalSize()
				res.scp = append(res.scp, took)
			}
			c.Close()
			if err != nil {
				return res, fmt.Errorf("%s: %w", tool, err)
			}
			fmt.Fprintf(os.Stderr, "prepare %s run %d: %s\n", tool, i+1, secs(took))
		}
	}
	return res, nil
}

// bareHosts boots a load balancer and prepareNodes bare nodes. The load
// balancer gets its nginx (with apt, from the hosts' mirror) before any
// clock starts: the row compares the nodes' preparation with the floor of
// sending them their files, and the floor sends nothing to the load
// balancer.
func bareHosts(ctx context.Context, layer, dir string) (*sim.Cluster, error) {
	topo := sim.Sized("bp", 64, prepareNodes+1, 1)
	topo.Tools, topo.Bare = layer, true
	c, err := sim.Up(ctx, dir, topo)
	if err != nil {
		return nil, err
	}
	for _, h := range c.Hosts {
		if h.Role != "loadbalancer" {
			continue
		}
		if _, err := c.Exec(h.Name, "sh", "-c", "apt-get -q update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends nginx libnginx-mod-stream >/dev/null"); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// fleetPrepare runs `fleet prepare` as the CLI would: the folder checked,
// then every node prepared in parallel.
func fleetPrepare(ctx context.Context, c *sim.Cluster, folder string) (time.Duration, int64, error) {
	if err := c.InstallFromFolder(folder); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	inv, err := inventory.Load(c.Inventory)
	if err != nil {
		return 0, 0, err
	}
	var opts playbooks.Options
	if os.Getenv("FLEET_BENCH_TRACE") != "" {
		opts.OnCommand = func(t exec.CommandTrace) {
			fmt.Fprintf(os.Stderr, "%8s +%-6s %-8s %.90q\n", t.Start.Sub(start).Round(time.Millisecond), t.Duration.Round(time.Millisecond), t.Host, t.Command)
		}
	}
	s, err := playbooks.NewSession(inv, opts)
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	if _, err := playbooks.Prepare(ctx, s, playbooks.DefaultApplyOptions()); err != nil {
		return 0, 0, err
	}
	return time.Since(start), s.Uploaded(), nil
}

// scpAll sends the folder's files to every node with one scp per node,
// all at once: the floor of getting the bytes there over SSH.
func scpAll(ctx context.Context, c *sim.Cluster, b *binaries.Bundle) (time.Duration, error) {
	var srcs []string
	for _, f := range b.Files {
		srcs = append(srcs, f.Path)
	}
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	for _, h := range c.Hosts {
		if h.Role == "loadbalancer" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := append([]string{"-q", "-B", "-i", c.KeyFile, "-o", "UserKnownHostsFile=" + c.KnownHosts,
				"-o", "StrictHostKeyChecking=yes"}, srcs...)
			args = append(args, "root@"+h.Address+":/usr/local/bin/")
			if out, err := osexec.CommandContext(ctx, "scp", args...).CombinedOutput(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("%s: %v: %s", h.Name, err, out))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return 0, fmt.Errorf("scp: %s", strings.Join(errs, "; "))
	}
	return time.Since(start), nil
}

// renderPrepare is RESULTS.md's prepare section; missed says if the target
// failed.
func renderPrepare(r prepareResult) (string, string) {
	fleet, scp := bench.Median(r.fleet), bench.Median(r.scp)
	var b strings.Builder
	fmt.Fprintf(&b, "## Preparing %d bare hosts (install: binaries)\n\n", r.nodes)
	fmt.Fprintf(&b, "Each run on freshly booted bare hosts (no kubeadm, kubelet, kubectl or containerd; forwarding off): the test bed's air-gapped folder, %.1f MB (kubeadm, kubelet, kubectl, containerd).\n\n", float64(r.folderBytes)/1e6)
	b.WriteString("- **fleet**: `fleet prepare`, timed from loading the inventory: the folder's sums checked here (while the hosts are dialled), the cluster lock, preflight (whose one command also answers every prepare check), kernel (modules, sysctls, swap), each binary sent to a temporary name (fsynced), its version asked (once per run, while the next one is sent), moved into place and stamped; units; containerd's config. The load balancer has its nginx already (installed with apt before the clock starts: the floor sends nothing there), so fleet only checks it.\n")
	b.WriteString("- **scp**: the floor: one `scp` of the same four files per host, all hosts at once, nothing checked.\n\n")
	b.WriteString("| tool | runs | median | min – max | bytes sent |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| fleet | %d | %s | %s – %s | %.1f MB |\n", len(r.fleet), secs(fleet), secs(slicesMin(r.fleet)), secs(slicesMax(r.fleet)), float64(r.fleetBytes)/1e6)
	fmt.Fprintf(&b, "| scp | %d | %s | %s – %s | %.1f MB |\n\n", len(r.scp), secs(scp), secs(slicesMin(r.scp)), secs(slicesMax(r.scp)), float64(r.scpBytes)/1e6)
	fmt.Fprintf(&b, "- fleet / scp floor: **%s**\n", bench.Ratio(fleet, scp))
	fmt.Fprintf(&b, "- a second `fleet prepare` on the prepared hosts: %s, 0 bytes sent\n\n", secs(r.afterSeconds))
	if float64(fleet)/float64(scp) > maxPrepareVsSCPRatio {
		return b.String(), fmt.Sprintf("prepare: fleet at %s of the scp floor (target ≤ %.1f×)", bench.Ratio(fleet, scp), maxPrepareVsSCPRatio)
	}
	return b.String(), ""
}

func slicesMin(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = min(m, x)
	}
	return m
}

func slicesMax(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = max(m, x)
	}
	return m
}

// prepareOnly measures and prints the prepare row alone.
func prepareOnly(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("prepare", flag.ExitOnError)
	layer := fs.String("layer", "/var/cache/fleet-sim/layer", "node binaries layer (its -airgap folder is sent)")
	dir := fs.String("dir", "/var/tmp/fleet-sim/bench/prepare", "scratch folder")
	runs := fs.Int("runs", 5, "runs of each (scp's time varies run to run by a third)")
	out := fs.String("out", "", "also write the section, with the command that made it, to this file")
	fs.Parse(args)
	r, err := measurePrepare(ctx, *layer, *dir, *runs)
	if err != nil {
		return err
	}
	section, missed := renderPrepare(r)
	fmt.Print(section)
	if *out != "" {
		doc := fmt.Sprintf("# fleet prepare against parallel scp\n\nGenerated by `make bench-prepare` (`fleet-bench prepare -runs %d`) on %s, %d CPUs, %s; `make bench` runs the same section into RESULTS.md.\n\n%s",
			*runs, time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.Version(), section)
		if missed != "" {
			doc += "- MISSED: " + missed + "\n"
		}
		if err := os.WriteFile(*out, []byte(doc), 0o644); err != nil {
			return err
		}
	}
	if missed != "" {
		return fmt.Errorf("target missed: %s", missed)
	}
	return nil
}
