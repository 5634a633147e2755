package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fleetops/fleet/testing/sim"
)

// maxIdleCommand is the bound on a no-change apply, a plan and a
// status of the scaled cluster.
const maxIdleCommand = 3 * time.Second

// scaleResult is one apply at scale: a load balancer, 3 masters and N
// workers, fresh, then the same cluster's no-change commands.
type scaleResult struct {
	workers     int
	wall        time.Duration
	firstOutput time.Duration // from the start of fleet to its first byte of output
	firstStep   time.Duration // and to its first step's start line
	kubeTools   time.Duration // union of kubeadm and kubectl spans
	readyWait   time.Duration // the kubeconfig step's wait for Ready, outside those
	// fleet's own work before the first kubeadm/kubectl command starts
	// (connections, the lock, preflight, the load balancer) and after the
	// last one ends (the last load-balancer change, clean-up, the lock)
	ownBefore, ownAfter time.Duration
	steps       []stepTime

	joinWorkers time.Duration   // the join-workers step, first start to last end
	joins       []time.Duration // each worker's kubeadm join in it
	joinAlone   time.Duration   // one worker's kubeadm join, alone on the cluster
	cpu         cpuUse          // during join-workers

	peakRSS    int64 // KiB, fleet's
	sent, recv uint64

	idle []idleRun // no-change apply, plan, status
}

// idleRun is one command on the finished cluster, run twice: connecting
// to every host itself, and with --persist after a run that left its
// connections with the holder.
type idleRun struct {
	command   string
	wall      time.Duration // connecting itself
	persisted time.Duration // with --persist, the connections held
	said      string        // its first line of output
	ok        bool          // it said there was nothing to do (apply, plan), or listed every node (status, check), both times
	floor     bool          // a peer for the others, not held to the bound
}

func (r scaleResult) fleetOwn() time.Duration { return r.wall - r.kubeTools - r.readyWait }

// maxScaleOverhead is the bound on fleet's own share of the apply
// at scale.
const maxScaleOverhead = 0.05

// fleetRun is one `fleet` process and what it cost.
type fleetRun struct {
	start             time.Time
	wall, firstOutput time.Duration
	firstStep         time.Duration // to the first step's start line
	peakRSS           int64         // KiB
	output            string        // stdout and stderr as they came
	stdout            string
}

// runFleet runs the fleet CLI and records its wall time, the time to its
// first byte of output (stdout or stderr) and its peak RSS.
func runFleet(ctx context.Context, bin, dir string, args ...string) (fleetRun, error) {
	var res fleetRun
	cmd := osexec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	// --persist's holder lives in the bench's folder, not the user's.
	cmd.Env = append(os.Environ(), "FLEET_MUX_DIR="+filepath.Join(dir, "mux"))
	out := &firstWrite{}
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.MultiWriter(out, &stdout), out
	start := time.Now()
	out.start, res.start = start, start
	err := cmd.Run()
	res.wall = time.Since(start)
	res.firstOutput, res.firstStep = out.first, out.firstStep
	res.output, res.stdout = out.buf.String(), stdout.String()
	if cmd.ProcessState != nil {
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			res.peakRSS = ru.Maxrss
		}
	}
	if err != nil {
		return res, fmt.Errorf("fleet %s: %w\n%s", strings.Join(args, " "), err, lastLines(res.output, 30))
	}
	return res, nil
}

// firstWrite keeps a process's output and when its first byte came.
type firstWrite struct {
	mu        sync.Mutex
	start     time.Time
	first     time.Duration
	firstStep time.Duration // the first "▶ step" line
	buf       bytes.Buffer
}

func (w *firstWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() == 0 && len(p) > 0 {
		w.first = time.Since(w.start)
	}
	if w.firstStep == 0 && bytes.Contains(p, []byte("▶ ")) {
		w.firstStep = time.Since(w.start)
	}
	return w.buf.Write(p)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logLine is one line of fleet's --log-file: a step event or a command.
type logLine struct {
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"`
	Step       string    `json:"step"`
	Host       string    `json:"host"`
	Command    string    `json:"command"`
	DurationMS int64     `json:"duration_ms"`
}

func readLog(path string) ([]logLine, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []logLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l logLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		lines = append(lines, l)
	}
	return lines, sc.Err()
}

// logSplit is what a --log-file says of one run: each step's span, the
// kubeadm/kubectl spans, and each kubeadm join's duration by step.
type logSplit struct {
	order []string
	spans map[string]*interval
	kube  []interval
	joins map[string][]time.Duration // step → kubeadm join durations
}

func splitLog(lines []logLine) logSplit {
	s := logSplit{spans: map[string]*interval{}, joins: map[string][]time.Duration{}}
	for _, l := range lines {
		if l.Kind == "command" {
			d := time.Duration(l.DurationMS) * time.Millisecond
			if name := programOf(l.Command); name == "kubeadm" || name == "kubectl" {
				s.kube = append(s.kube, interval{l.Time, l.Time.Add(d)})
			}
			if isKubeadmJoin(l.Command) {
				s.joins[l.Step] = append(s.joins[l.Step], d)
			}
			continue
		}
		span := s.spans[l.Step]
		if span == nil {
			span = &interval{start: l.Time, end: l.Time}
			s.spans[l.Step] = span
			s.order = append(s.order, l.Step)
		}
		if l.Time.After(span.end) {
			span.end = l.Time
		}
	}
	return s
}

// isKubeadmJoin is whether a command runs `kubeadm join` (not one of its
// phases alone).
func isKubeadmJoin(command string) bool {
	rest, ok := strings.CutPrefix(strings.TrimLeft(command, "{ "), "kubeadm join ")
	return ok && !strings.HasPrefix(rest, "phase ")
}

// bridgeBytes reads the bridge's counters: what this machine sent to the
// hosts and received from them.
func bridgeBytes(bridge string) (sent, recv uint64) {
	read := func(name string) uint64 {
		data, _ := os.ReadFile(filepath.Join("/sys/class/net", bridge, "statistics", name))
		v, _ := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
		return v
	}
	return read("tx_bytes"), read("rx_bytes")
}

// measureScale brings up a load balancer, 3 masters and workers workers,
// applies once from fresh hosts with the fleet CLI, then times one
// worker's join alone and the no-change apply, plan and status.
func measureScale(ctx context.Context, fleetBin, layer, dir string, workers int) (scaleResult, error) {
	res := scaleResult{workers: workers}
	topo := sim.Sized("sc", 65, 4+workers, 3)
	topo.Tools = layer
	c, err := sim.Up(ctx, filepath.Join(dir, "sim"), topo)
	if err != nil {
		return res, err
	}
	defer c.Close()
	fmt.Fprintf(os.Stderr, "bench: %d hosts up\n", len(c.Hosts))
	sampler, err := newCPUSampler(c, []string{"master0", "master1", "master2"},
		map[string]string{"kube-apiserver": "kube-apiserver", "etcd": "etcd"})
	if err != nil {
		return res, err
	}
	sctx, stopSampling := context.WithCancel(ctx)
	defer stopSampling()
	go sampler.run(sctx)

	kubeconfig := filepath.Join(dir, "admin.kubeconfig")
	logFile := filepath.Join(dir, "apply.log")
	os.Remove(logFile)
	sent0, recv0 := bridgeBytes(c.Bridge)
	apply, err := runFleet(ctx, fleetBin, dir, "--progress", "plain", "--log-file", logFile, "apply", "-i", c.Inventory, "--kubeconfig", kubeconfig)
	if err != nil {
		return res, err
	}
	sent1, recv1 := bridgeBytes(c.Bridge)
	stopSampling()
	res.wall, res.firstOutput, res.firstStep, res.peakRSS = apply.wall, apply.firstOutput, apply.firstStep, apply.peakRSS
	res.sent, res.recv = sent1-sent0, recv1-recv0
	lines, err := readLog(logFile)
	if err != nil {
		return res, err
	}
	split := splitLog(lines)
	res.kubeTools = unionLength(split.kube)
	if k := split.spans["kubeconfig"]; k != nil {
		res.readyWait = unionLength(append(slices.Clone(split.kube), *k)) - res.kubeTools
	}
	if len(split.kube) == 0 {
		return res, fmt.Errorf("the apply's log has no kubeadm or kubectl command")
	}
	firstKube, lastKube := split.kube[0].start, split.kube[0].end
	for _, k := range split.kube {
		if k.start.Before(firstKube) {
			firstKube = k.start
		}
		if k.end.After(lastKube) {
			lastKube = k.end
		}
	}
	res.ownBefore = firstKube.Sub(apply.start)
	res.ownAfter = max(0, apply.start.Add(apply.wall).Sub(lastKube)-res.readyWait)
	for _, name := range split.order {
		sp := split.spans[name]
		res.steps = append(res.steps, stepTime{name, sp.end.Sub(sp.start)})
	}
	jw := split.spans["join-workers"]
	if jw == nil {
		return res, fmt.Errorf("the apply's log has no join-workers step")
	}
	res.joinWorkers = jw.end.Sub(jw.start)
	res.joins = split.joins["join-workers"]
	if len(res.joins) != workers {
		return res, fmt.Errorf("the apply's log has %d kubeadm joins in join-workers, want %d", len(res.joins), workers)
	}
	res.cpu = sampler.between(jw.start, jw.end)

	// One worker's join alone: the last worker removed, then joined again
	// while nothing else joins.
	last := fmt.Sprintf("worker%d", workers-1)
	if _, err := runFleet(ctx, fleetBin, dir, "--progress", "plain", "remove", "-i", c.Inventory, last); err != nil {
		return res, err
	}
	joinLog := filepath.Join(dir, "join.log")
	os.Remove(joinLog)
	if _, err := runFleet(ctx, fleetBin, dir, "--progress", "plain", "--log-file", joinLog, "join", "-i", c.Inventory, last); err != nil {
		return res, err
	}
	if lines, err = readLog(joinLog); err != nil {
		return res, err
	}
	var alone []time.Duration
	for _, d := range splitLog(lines).joins {
		alone = append(alone, d...)
	}
	if len(alone) != 1 {
		return res, fmt.Errorf("fleet join %s ran %d kubeadm joins, want 1", last, len(alone))
	}
	res.joinAlone = alone[0]

	for _, idle := range []struct {
		args  []string
		ok    func(string) bool
		floor bool
	}{
		{[]string{"apply", "-i", c.Inventory, "--kubeconfig", kubeconfig}, func(out string) bool { return strings.HasPrefix(out, "no changes") }, false},
		{[]string{"plan", "-i", c.Inventory, "--kubeconfig", kubeconfig}, func(out string) bool { return strings.Contains(out, "no changes") }, false},
		{[]string{"status", "-i", c.Inventory}, func(out string) bool { return strings.Count(out, "worker") >= workers }, false},
		// The floor beside them: a connection and one probe per host.
		{[]string{"check", "-i", c.Inventory}, func(out string) bool { return strings.Count(out, "worker") >= workers }, true},
	} {
		logFile := filepath.Join(dir, "idle-"+idle.args[0]+".log")
		os.Remove(logFile)
		r, err := runFleet(ctx, fleetBin, dir, append([]string{"--progress", "plain", "--log-file", logFile}, idle.args...)...)
		if err != nil {
			return res, err
		}
		// The same with --persist, the hosts' connections held by the
		// run before (the first fills the holder, the second is timed).
		var held fleetRun
		for range 2 {
			if held, err = runFleet(ctx, fleetBin, dir, append([]string{"--progress", "plain", "--persist", "20s"}, idle.args...)...); err != nil {
				return res, err
			}
		}
		first, _, _ := strings.Cut(r.stdout, "\n")
		res.idle = append(res.idle, idleRun{command: "fleet " + idle.args[0], wall: r.wall, persisted: held.wall, said: first,
			ok: idle.ok(r.stdout) && idle.ok(held.stdout), floor: idle.floor})
	}
	return res, nil
}

// renderScale is RESULTS.md's apply-at-scale section; missed lists the
// targets it failed.
func renderScale(r scaleResult) (string, []string) {
	var b strings.Builder
	pct := func(d time.Duration) string { return fmt.Sprintf("%.1f %%", 100*float64(d)/float64(r.wall)) }
	hosts := 4 + r.workers
	fmt.Fprintf(&b, "## Apply at scale: a load balancer, 3 masters and %d workers\n\n", r.workers)
	b.WriteString("One `fleet apply` (the CLI, `--progress plain`) from fresh hosts, split by its own `--log-file` (every step event and remote command); ")
	b.WriteString("CPU read from /proc once a second; bytes from the test network's bridge counters (this machine ↔ the hosts only). ")
	fmt.Fprintf(&b, "Alone: `make bench-scale BENCH_APPLY_WORKERS=%d`.\n\n", r.workers)
	b.WriteString("| part | time | share |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| wall time | %s | 100 %% |\n", secs(r.wall))
	fmt.Fprintf(&b, "| inside kubeadm / kubectl commands (union of their spans) | %s | %s |\n", secs(r.kubeTools), pct(r.kubeTools))
	fmt.Fprintf(&b, "| waiting for the kubelets to report Ready (kubeconfig step) | %s | %s |\n", secs(r.readyWait), pct(r.readyWait))
	fmt.Fprintf(&b, "| **fleet's own work** (connections, checks, uploads, other waiting) | %s | **%s** |\n", secs(r.fleetOwn()), pct(r.fleetOwn()))
	between := r.fleetOwn() - r.ownBefore - r.ownAfter
	fmt.Fprintf(&b, "| … of it before the first kubeadm command (connections, lock, preflight of every host, load balancer) | %s | %s |\n", secs(r.ownBefore), pct(r.ownBefore))
	fmt.Fprintf(&b, "| … between kubeadm commands, none running (credentials, uploads, checks before each join) | %s | %s |\n", secs(between), pct(between))
	fmt.Fprintf(&b, "| … after the last (the last master into the load balancer, clean-up, the lock, exit) | %s | %s |\n\n", secs(r.ownAfter), pct(r.ownAfter))

	var missed []string
	if share := float64(r.fleetOwn()) / float64(r.wall); share > maxScaleOverhead {
		missed = append(missed, fmt.Sprintf("fleet's own share of the apply at %d workers %.1f %% (target ≤ %.0f %%)", r.workers, 100*share, 100*maxScaleOverhead))
	}

	sorted := slices.Clone(r.joins)
	slices.Sort(sorted)
	median, longest := sorted[len(sorted)/2], sorted[len(sorted)-1]
	serial := time.Duration(r.workers) * r.joinAlone
	fmt.Fprintf(&b, "| joins | |\n|---|---|\n")
	fmt.Fprintf(&b, "| `join-workers`, %d workers at once | %s |\n", r.workers, secs(r.joinWorkers))
	fmt.Fprintf(&b, "| one worker's `kubeadm join` alone (removed, then `fleet join`) | %s |\n", secs(r.joinAlone))
	fmt.Fprintf(&b, "| each `kubeadm join` inside the step: median / longest | %s / %s |\n", secs(median), secs(longest))
	fmt.Fprintf(&b, "| parallel speed-up: %d joins one after another (%s) ÷ the step | %.1f× |\n", r.workers, secs(serial), float64(serial)/float64(r.joinWorkers))
	fmt.Fprintf(&b, "| CPU during the step: the 3 API servers / the 3 etcds / the whole machine (%d CPUs) | %.2f / %.2f / %.2f cores |\n",
		r.cpu.cpus, r.cpu.components["kube-apiserver"], r.cpu.components["etcd"], r.cpu.machine)
	fmt.Fprintf(&b, "| time to fleet's first line of output / to its first step (▶ preflight) | %s / %s |\n", secs(r.firstOutput), secs(r.firstStep))
	fmt.Fprintf(&b, "| fleet's peak RSS / per host (%d hosts) | %.1f MiB / %.0f KiB |\n", hosts, float64(r.peakRSS)/1024, float64(r.peakRSS)/float64(hosts))
	fmt.Fprintf(&b, "| bytes sent / received by this machine | %s / %s |\n\n", mib(r.sent), mib(r.recv))
	b.WriteString(bottleneck(r) + "\n\n")

	fmt.Fprintf(&b, "The finished cluster, nothing to do: each command connecting to every host itself, and with `--persist` after a run that left the hosts' connections with fleet's connection holder (as OpenSSH's ControlPersist; the runs that follow one another, the case the bound is for: each must take under %s). `fleet check`, one connection and one probe per host, is the floor they are set against:\n\n| command | connecting itself | with `--persist` | said |\n|---|---|---|---|\n", secs(maxIdleCommand))
	for _, i := range r.idle {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", i.command, secs(i.wall), secs(i.persisted), strings.ReplaceAll(i.said, "|", "\\|"))
		if i.persisted > maxIdleCommand && !i.floor {
			missed = append(missed, fmt.Sprintf("%s --persist at %d workers took %s (target < %s)", i.command, r.workers, secs(i.persisted), secs(maxIdleCommand)))
		}
		if !i.ok {
			missed = append(missed, fmt.Sprintf("%s at %d workers did not say what it should: %q", i.command, r.workers, i.said))
		}
	}
	b.WriteString("\nSteps (first start to last end over their hosts):\n\n| step | time |\n|---|---|\n")
	for _, s := range r.steps {
		fmt.Fprintf(&b, "| %s | %s |\n", s.name, secs(s.duration))
	}
	b.WriteString("\n")
	return b.String(), missed
}

// bottleneck names what the joins waited on, from the CPU readings: the
// machine's CPUs, the API servers or etcd, else neither.
func bottleneck(r scaleResult) string {
	cpus := float64(r.cpu.cpus)
	api, etcd := r.cpu.components["kube-apiserver"], r.cpu.components["etcd"]
	switch {
	case r.cpu.machine >= 0.9*cpus:
		return fmt.Sprintf("**Bottleneck: this machine's CPUs.** During the joins its %.0f CPUs were %.0f %% busy; the API servers took %.0f %% of that and etcd %.0f %%, "+
			"the rest went to the %d `kubeadm join` processes, the emulated kubelets and sshd, all on the same CPUs. On the test bed the joins are CPU-bound, not serialized by fleet.",
			cpus, 100*r.cpu.machine/cpus, 100*api/r.cpu.machine, 100*etcd/r.cpu.machine, r.workers)
	case api >= 0.5*r.cpu.machine:
		return fmt.Sprintf("**Bottleneck: the API servers** (%.2f of the %.2f cores busy during the joins).", api, r.cpu.machine)
	case etcd >= 0.5*r.cpu.machine:
		return fmt.Sprintf("**Bottleneck: etcd** (%.2f of the %.2f cores busy during the joins).", etcd, r.cpu.machine)
	}
	return fmt.Sprintf("No CPU bottleneck: the machine was %.0f %% busy during the joins (API servers %.2f cores, etcd %.2f).", 100*r.cpu.machine/cpus, api, etcd)
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// scaleOnly measures and writes the apply-at-scale section alone.
func scaleOnly(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("scale", flag.ExitOnError)
	workers := fs.Int("workers", 25, "workers besides the load balancer and 3 masters")
	layer := fs.String("layer", "/var/cache/fleet-sim/layer", "node binaries layer")
	fleetBin := fs.String("fleet", "bin/fleet", "the fleet CLI to measure")
	dir := fs.String("dir", "/var/tmp/fleet-sim/bench/scale", "scratch folder")
	out := fs.String("out", "", "also write the section to this file")
	fs.Parse(args)
	section, missed, err := scaleSection(ctx, *fleetBin, *layer, *dir, *workers)
	if err != nil {
		return err
	}
	fmt.Print(section)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(section), 0o644); err != nil {
			return err
		}
	}
	if len(missed) > 0 {
		return fmt.Errorf("targets missed: %s", strings.Join(missed, "; "))
	}
	return nil
}

// scaleSection measures and renders; workers must leave the hosts inside
// the test network's /24.
func scaleSection(ctx context.Context, fleetBin, layer, dir string, workers int) (string, []string, error) {
	if workers < 2 || workers > 236 {
		return "", nil, fmt.Errorf("-workers %d: want 2 to 236", workers)
	}
	bin, err := filepath.Abs(fleetBin)
	if err != nil {
		return "", nil, err
	}
	if _, err := os.Stat(bin); err != nil {
		return "", nil, fmt.Errorf("the fleet CLI: %w (make bench builds bin/fleet)", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", nil, err
	}
	r, err := measureScale(ctx, bin, layer, dir, workers)
	if err != nil {
		return "", nil, fmt.Errorf("apply at scale (%d workers): %w", workers, err)
	}
	section, missed := renderScale(r)
	return section, missed, nil
}
