package playbooks_test

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// cmdlineWatcher samples the command line of every process on the machine
// while a test runs, as any local user of a host could through
// /proc/<pid>/cmdline: the simulated hosts share the machine's PID
// namespace, so one watcher sees every host. The secrets are only known
// afterwards (each session's redactor holds those it made), so it keeps
// every distinct command line it saw.
type cmdlineWatcher struct {
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	seen    map[string]bool
	samples int
}

// cmdlineInterval is short enough to see a kubeadm or kubectl run (a Go
// binary that starts, talks to the API and exits takes far longer).
const cmdlineInterval = 5 * time.Millisecond

func watchCmdlines(t *testing.T) *cmdlineWatcher {
	w := &cmdlineWatcher{stop: make(chan struct{}), done: make(chan struct{}), seen: map[string]bool{}}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(cmdlineInterval)
		defer tick.Stop()
		for {
			w.sample()
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(w.Stop)
	return w
}

func (w *cmdlineWatcher) sample() {
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var lines []string
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue // gone, or a kernel thread
		}
		lines = append(lines, string(bytes.ReplaceAll(bytes.TrimRight(b, "\x00"), []byte{0}, []byte{' '})))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.samples++
	for _, l := range lines {
		w.seen[l] = true
	}
}

// Stop ends the sampling; it may be called more than once.
func (w *cmdlineWatcher) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// Seen returns the distinct command lines and how many samples were taken.
func (w *cmdlineWatcher) Seen() ([]string, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.seen))
	for l := range w.seen {
		out = append(out, l)
	}
	return out, w.samples
}
