package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fleetops/fleet/testing/sim"
)

// clockTicks is the kernel's USER_HZ: /proc's CPU times count these.
const clockTicks = 100

// cpuSample is one reading of the machine's CPU and of the watched
// processes' CPU, each process keyed by its PID.
type cpuSample struct {
	at         time.Time
	busy, all  uint64                    // the machine's ticks, over every CPU
	cpus       int                       // the CPUs the kernel schedules on
	components map[string]map[int]uint64 // component → PID → utime+stime ticks
}

// cpuSampler reads, once a second, the CPU time of the named processes on
// the given hosts. The simulated hosts share the machine's PID namespace:
// a process belongs to a host when its network namespace is the host's.
type cpuSampler struct {
	hosts map[uint64]bool   // netns inodes of the watched hosts
	comms map[string]string // /proc/PID/comm → component name

	mu      sync.Mutex
	samples []cpuSample
}

func newCPUSampler(c *sim.Cluster, hosts []string, comms map[string]string) (*cpuSampler, error) {
	s := &cpuSampler{hosts: map[uint64]bool{}, comms: comms}
	for _, h := range hosts {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join("/run/netns", c.Host(h).NetNS), &st); err != nil {
			return nil, fmt.Errorf("netns of %s: %w", h, err)
		}
		s.hosts[st.Ino] = true
	}
	return s, nil
}

// run samples until ctx ends.
func (s *cpuSampler) run(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		s.sample()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (s *cpuSampler) sample() {
	cur := cpuSample{at: time.Now(), components: map[string]map[int]uint64{}}
	cur.busy, cur.all, cur.cpus = machineTicks()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		component, watched := s.comms[strings.TrimSpace(string(comm))]
		if !watched {
			continue
		}
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			continue
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(link, "net:["), "]"), 10, 64)
		if err != nil || !s.hosts[ino] {
			continue
		}
		if ticks, ok := processTicks(pid); ok {
			if cur.components[component] == nil {
				cur.components[component] = map[int]uint64{}
			}
			cur.components[component][pid] = ticks
		}
	}
	s.mu.Lock()
	s.samples = append(s.samples, cur)
	s.mu.Unlock()
}

// cpuUse is the cores used over a window: the machine's, and each
// watched component's summed over its hosts.
type cpuUse struct {
	cpus       int // the machine's
	machine    float64
	components map[string]float64
}

// between returns the CPU used from the last sample at or before from to
// the first at or after to. A process that started inside the window
// counts from zero.
func (s *cpuSampler) between(from, to time.Time) cpuUse {
	s.mu.Lock()
	defer s.mu.Unlock()
	use := cpuUse{components: map[string]float64{}}
	if len(s.samples) < 2 {
		return use
	}
	first, last := 0, len(s.samples)-1
	for i, smp := range s.samples {
		if !smp.at.After(from) {
			first = i
		}
	}
	for i := len(s.samples) - 1; i > first; i-- {
		if !s.samples[i].at.Before(to) {
			last = i
		}
	}
	if last <= first {
		return use
	}
	a, b := s.samples[first], s.samples[last]
	secs := b.at.Sub(a.at).Seconds()
	use.cpus = b.cpus
	if b.all > a.all {
		use.machine = float64(b.cpus) * float64(b.busy-a.busy) / float64(b.all-a.all)
	}
	for component, pids := range b.components {
		var ticks uint64
		for pid, t := range pids {
			if t0, ok := a.components[component][pid]; ok && t0 <= t {
				ticks += t - t0
			} else {
				ticks += t
			}
		}
		use.components[component] = float64(ticks) / clockTicks / secs
	}
	return use
}

// processTicks is a process's user plus system CPU time, in ticks.
func processTicks(pid int) (uint64, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command (field 2) may hold spaces: count fields after its ')'.
	_, rest, ok := strings.Cut(string(data), ") ")
	if !ok {
		return 0, false
	}
	f := strings.Fields(rest) // f[0] is field 3 (state): utime is field 14
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	return utime + stime, err1 == nil && err2 == nil
}

// machineTicks reads /proc/stat: from its first line the ticks spent
// busy (all but idle and iowait) and in all, over every CPU; from its
// per-CPU lines how many CPUs the kernel schedules on.
func machineTicks() (busy, all uint64, cpus int) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0
	}
	lines := strings.Split(string(data), "\n")
	// user nice system idle iowait irq softirq steal [guest guest_nice]:
	// guest time is counted in user already.
	for i, f := range strings.Fields(lines[0])[1:] {
		if i >= 8 {
			break
		}
		v, _ := strconv.ParseUint(f, 10, 64)
		all += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "cpu") {
			cpus++
		}
	}
	return busy, all, cpus
}
