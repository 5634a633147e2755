package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/testing/bench"
	"github.com/fleetops/fleet/testing/sim"
)

// The tools compared, in the report's order.
const (
	toolFleet          = "fleet"
	toolAnsibleTuned   = "ansible-tuned"
	toolAnsibleDefault = "ansible-default"
	toolOpenSSH        = "openssh"
	toolPDSH           = "pdsh"
)

var tools = []string{toolFleet, toolAnsibleTuned, toolAnsibleDefault, toolOpenSSH, toolPDSH}

// sizeResult is everything measured at one host count.
type sizeResult struct {
	hosts          int
	goHandshake    time.Duration // median of fleet's exec.Dial to one host
	sshHandshake   time.Duration // median of `ssh host true` without multiplexing
	summaries      []bench.Summary
	fleetRSSPerHst float64 // KiB
}

func compare(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("compare", flag.ExitOnError)
	sizes := fs.String("sizes", "10,50", "host counts, comma-separated")
	runs := fs.Int("runs", 5, "runs of each tool at each size")
	peerRuns := fs.Int("peer-runs", 0, "runs of the Ansible variants, when fewer than -runs (one tuned Ansible run at 200 hosts takes ~15 min)")
	outDir := fs.String("out", "testing/bench", "where RESULTS.md and results.csv go")
	work := fs.String("dir", "/var/tmp/fleet-sim/bench", "scratch folder (sim hosts, peer configs)")
	self := fs.String("self", "", "this program's path (default: os.Executable)")
	skip := fs.String("skip", "", "tools to leave out, comma-separated: a tool everywhere, tool@N at N hosts only (ansible-default@200: its 200-host run takes half an hour)")
	applyLayer := fs.String("apply-layer", "", "node binaries layer: also measure a full fleet apply's overhead on the HA test bed")
	applyWorkers := fs.Int("apply-workers", 0, "with -apply-layer: also apply a load balancer, 3 masters and this many workers with the fleet CLI (-fleet)")
	fleetBin := fs.String("fleet", "bin/fleet", "the fleet CLI, for -apply-workers")
	fs.Parse(args)
	if *self == "" {
		p, err := os.Executable()
		if err != nil {
			return err
		}
		*self = p
	}
	if _, err := osexec.LookPath("ansible-playbook"); err != nil {
		return fmt.Errorf("ansible-playbook not found (make bench installs Debian's ansible-core): %w", err)
	}
	if *peerRuns <= 0 || *peerRuns > *runs {
		*peerRuns = *runs
	}
	var results []sizeResult
	var samples []bench.Sample
	for i, field := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || n < 5 || n > 240 {
			return fmt.Errorf("size %q: want 5-240 hosts", field)
		}
		r, s, err := measureSize(ctx, n, 60+i, *runs, *peerRuns, *self, filepath.Join(*work, strconv.Itoa(n)), strings.Split(*skip, ","))
		if err != nil {
			return fmt.Errorf("%d hosts: %w", n, err)
		}
		results = append(results, r)
		samples = append(samples, s...)
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		return err
	}
	var csv bytes.Buffer
	if err := bench.WriteCSV(&csv, samples); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*outDir, "results.csv"), csv.Bytes(), 0o644); err != nil {
		return err
	}
	var overhead string
	var extraMissed []string
	if *applyLayer != "" {
		o, err := measureApplyOverhead(ctx, *applyLayer, filepath.Join(*work, "apply"))
		if err != nil {
			return fmt.Errorf("apply overhead: %w", err)
		}
		section, missed := renderOverhead(o)
		overhead = section
		if missed != "" {
			extraMissed = append(extraMissed, missed)
		}
		p, err := measurePrepare(ctx, *applyLayer, filepath.Join(*work, "prepare"), 5)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		section, missed = renderPrepare(p)
		overhead += section
		if missed != "" {
			extraMissed = append(extraMissed, missed)
		}
		if *applyWorkers > 0 {
			section, missedAll, err := scaleSection(ctx, *fleetBin, *applyLayer, filepath.Join(*work, "scale"), *applyWorkers)
			if err != nil {
				return err
			}
			overhead += section
			extraMissed = append(extraMissed, missedAll...)
		}
	}
	report, missed := render(results, *runs, overhead, extraMissed, "fleet-bench compare "+strings.Join(args, " "))
	if err := os.WriteFile(filepath.Join(*outDir, "RESULTS.md"), []byte(report), 0o644); err != nil {
		return err
	}
	fmt.Print(report)
	if len(missed) > 0 {
		return fmt.Errorf("targets missed: %s", strings.Join(missed, "; "))
	}
	return nil
}

// measureSize brings up n hosts and runs every tool runs times, the order
// rotating each round so no tool always runs on warm (or cold) hosts.
func measureSize(ctx context.Context, n, subnet, runs, peerRuns int, self, dir string, skip []string) (sizeResult, []bench.Sample, error) {
	res := sizeResult{hosts: n}
	id := "b" + strconv.Itoa(n)
	c, err := sim.Up(ctx, filepath.Join(dir, "sim"), sim.Sized(id, subnet, n, 3))
	if err != nil {
		return res, nil, err
	}
	defer c.Close()
	fmt.Fprintf(os.Stderr, "bench: %d hosts up\n", n)

	targets := make([]bench.Target, len(c.Hosts))
	for i, h := range c.Hosts {
		targets[i] = bench.Target{Name: h.Name, Address: h.Address}
	}
	acc := bench.Access{KeyFile: c.KeyFile, KnownHosts: c.KnownHosts}
	payloadFile := filepath.Join(dir, "payload")

	if res.goHandshake, err = goHandshake(ctx, c); err != nil {
		return res, nil, err
	}
	if res.sshHandshake, err = sshHandshake(ctx, c); err != nil {
		return res, nil, err
	}

	commands := map[string]func(outDir string) ([]string, []string, error){
		toolFleet: func(outDir string) ([]string, []string, error) {
			return []string{self, "workload", "-i", c.Inventory, "-payload", payloadFile, "-out", outDir}, nil, nil
		},
		toolAnsibleTuned: func(string) ([]string, []string, error) {
			return bench.WriteAnsible(filepath.Join(dir, toolAnsibleTuned), bench.AnsibleVariant{Name: toolAnsibleTuned, Tuned: true}, targets, acc, payloadFile)
		},
		toolAnsibleDefault: func(string) ([]string, []string, error) {
			return bench.WriteAnsible(filepath.Join(dir, toolAnsibleDefault), bench.AnsibleVariant{Name: toolAnsibleDefault}, targets, acc, payloadFile)
		},
		toolOpenSSH: func(outDir string) ([]string, []string, error) {
			argv, err := bench.WriteOpenSSH(filepath.Join(dir, toolOpenSSH), targets, acc, payloadFile, outDir)
			return argv, nil, err
		},
		toolPDSH: func(outDir string) ([]string, []string, error) {
			argv, err := bench.WritePDSH(filepath.Join(dir, toolPDSH), targets, acc, payloadFile, outDir)
			return argv, nil, err
		},
	}
	var samples []bench.Sample
	for run := 1; run <= runs; run++ {
		order := slices.Clone(tools)
		k := (run - 1) % len(order)
		order = append(order[k:], order[:k]...)
		for _, tool := range order {
			if skipped(skip, tool, n) {
				continue
			}
			if run > peerRuns && (tool == toolAnsibleTuned || tool == toolAnsibleDefault) {
				continue
			}
			// A new payload every run: no tool may skip the transfer because
			// the file is already there (Ansible's copy compares checksums).
			payload := make([]byte, 4096)
			rand.Read(payload)
			if err := os.WriteFile(payloadFile, payload, 0o644); err != nil {
				return res, nil, err
			}
			outDir := filepath.Join(dir, "out", fmt.Sprintf("%s-%d", tool, run))
			os.RemoveAll(outDir)
			argv, env, err := commands[tool](outDir)
			if err != nil {
				return res, nil, err
			}
			wall, rss, err := timeRun(ctx, argv, env, filepath.Join(dir, "logs", fmt.Sprintf("%s-%d.log", tool, run)))
			if err != nil {
				return res, nil, fmt.Errorf("%s run %d: %w", tool, run, err)
			}
			if err := verify(c, payload, tool, outDir); err != nil {
				return res, nil, fmt.Errorf("%s run %d did not do the work: %w", tool, run, err)
			}
			fmt.Fprintf(os.Stderr, "bench: %3d hosts  %-16s run %d  %s\n", n, tool, run, wall.Round(time.Millisecond))
			s := bench.Sample{Hosts: n, Tool: tool, Run: run, Wall: wall}
			if tool == toolFleet {
				s.PeakRSS = rss
			}
			samples = append(samples, s)
		}
	}
	res.summaries = bench.Summarise(samples, n, tools)
	for _, s := range res.summaries {
		if s.Tool == toolFleet {
			res.fleetRSSPerHst = float64(s.PeakRSS) / float64(n)
		}
	}
	return res, samples, nil
}

// timeRun runs argv and returns its wall time and peak RSS (KiB).
func timeRun(ctx context.Context, argv, env []string, logFile string) (time.Duration, int64, error) {
	os.MkdirAll(filepath.Dir(logFile), 0o755)
	log, err := os.Create(logFile)
	if err != nil {
		return 0, 0, err
	}
	defer log.Close()
	cmd := osexec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("%v (log: %s)", err, logFile)
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss // KiB on Linux
	}
	return wall, rss, nil
}

// verify checks the work happened on every host: the payload in place with
// mode 0600, and (where the tool leaves them) the outputs collected.
func verify(c *sim.Cluster, payload []byte, tool, outDir string) error {
	sum := sha256.Sum256(payload)
	want := hex.EncodeToString(sum[:])
	for _, h := range c.Hosts {
		path := filepath.Join(h.Dir, "root", filepath.Base(bench.PayloadPath))
		got, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, payload) {
			return fmt.Errorf("%s: payload differs", h.Name)
		}
		if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
			return fmt.Errorf("%s: payload mode %v %v, want 0600", h.Name, st.Mode(), err)
		}
		if tool == toolFleet || tool == toolOpenSSH || tool == toolPDSH {
			out, err := os.ReadFile(filepath.Join(outDir, h.Name+".3"))
			if err != nil || !strings.HasPrefix(string(out), want) {
				return fmt.Errorf("%s: sha256sum output %q %v", h.Name, out, err)
			}
		}
	}
	return nil
}

// goHandshake is the median time of fleet's SSH layer to connect to one
// host and authenticate, host key verified: the floor per host.
func goHandshake(ctx context.Context, c *sim.Cluster) (time.Duration, error) {
	keys, err := exec.LoadHostKeys(c.KnownHosts, false)
	if err != nil {
		return 0, err
	}
	h := c.Hosts[len(c.Hosts)-1]
	var times []time.Duration
	for range 11 {
		start := time.Now()
		conn, err := exec.Dial(ctx, exec.Config{Host: h.Name, Address: h.Address, User: "root",
			IdentityFiles: []string{c.KeyFile}, HostKeys: keys, ConnectTimeout: 10 * time.Second})
		if err != nil {
			return 0, err
		}
		times = append(times, time.Since(start))
		conn.Close()
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}

// sshHandshake is the median of `ssh host true` without multiplexing.
func sshHandshake(ctx context.Context, c *sim.Cluster) (time.Duration, error) {
	h := c.Hosts[len(c.Hosts)-1]
	var times []time.Duration
	for range 11 {
		start := time.Now()
		cmd := osexec.CommandContext(ctx, "ssh", "-i", c.KeyFile, "-o", "UserKnownHostsFile="+c.KnownHosts,
			"-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ControlMaster=no", "-o", "ControlPath=none", "-l", "root", h.Address, "true")
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("ssh %s true: %v: %s", h.Address, err, out)
		}
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}

// skipped reports whether -skip leaves tool out at n hosts: named alone,
// everywhere; as tool@n, at that size only.
func skipped(skip []string, tool string, n int) bool {
	return slices.Contains(skip, tool) || slices.Contains(skip, tool+"@"+strconv.Itoa(n))
}
