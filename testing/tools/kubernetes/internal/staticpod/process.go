package staticpod

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Backoff is the restart delay policy of a crashing container.
type Backoff struct {
	Initial, Max time.Duration
	// ResetAfter: a container that ran this long before dying starts over
	// from Initial, as the kubelet forgets an old crash loop.
	ResetAfter time.Duration
}

// DefaultBackoff is shorter than the kubelet's 10s..5m so that tests that
// kill control-plane processes converge in seconds.
var DefaultBackoff = Backoff{Initial: time.Second, Max: 20 * time.Second, ResetAfter: time.Minute}

// Next returns the delay after a run that lasted ran, given the previous delay.
func (b Backoff) Next(prev, ran time.Duration) time.Duration {
	if prev == 0 || ran >= b.ResetAfter {
		return b.Initial
	}
	return min(2*prev, b.Max)
}

// ContainerStatus is what the mirror pod reports of one container.
type ContainerStatus struct {
	Name         string
	Running      bool
	StartedAt    time.Time
	RestartCount int32
	LastExit     string
}

// container supervises one container's process.
type container struct {
	spec    corev1.Container
	log     string
	backoff Backoff

	mu     sync.Mutex
	status ContainerStatus
}

// run starts the process and restarts it until ctx ends, then stops it:
// SIGTERM to its process group, SIGKILL after grace.
func (c *container) run(ctx context.Context, grace time.Duration) {
	var delay time.Duration
	for {
		began := time.Now()
		err := c.once(ctx, grace)
		if ctx.Err() != nil {
			return
		}
		delay = c.backoff.Next(delay, time.Since(began))
		c.mu.Lock()
		c.status.Running = false
		c.status.RestartCount++
		c.status.LastExit = fmt.Sprint(err)
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
}

func (c *container) once(ctx context.Context, grace time.Duration) error {
	argv := append(append([]string{}, c.spec.Command...), c.spec.Args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = os.Environ()
	for _, e := range c.spec.Env {
		cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
	}
	cmd.Dir = c.spec.WorkingDir
	logf, err := os.OpenFile(c.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(logf, "sim-kubelet: start %v: %v\n", argv, err)
		return err
	}
	c.mu.Lock()
	c.status.Running, c.status.StartedAt = true, time.Now()
	c.mu.Unlock()

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		fmt.Fprintf(logf, "sim-kubelet: %s exited: %v\n", c.spec.Name, err)
		return fmt.Errorf("exited: %v", err)
	case <-ctx.Done():
	}
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
	return ctx.Err()
}

func (c *container) snapshot() ContainerStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.status
	s.Name = c.spec.Name
	return s
}
