package exec_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/testing/sim"
)

func TestPoolDialsOncePerHostAndRedialsADeadConnection(t *testing.T) {
	sim.Need(t, cluster)
	p := exec.NewPool()
	defer p.Close()
	p.Add(config(t, "master2"), nil)

	conns := make([]*exec.Conn, 20)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := p.Get(context.Background(), "master2")
			if err != nil {
				t.Error(err)
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	for _, c := range conns[1:] {
		if c != conns[0] {
			t.Fatal("concurrent Gets returned different connections")
		}
	}

	if err := cluster.StopSSHD("master2"); err != nil {
		t.Fatal(err)
	}
	if err := cluster.StartSSHD(context.Background(), "master2"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for conns[0].Alive() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	c, err := p.Get(context.Background(), "master2")
	if err != nil {
		t.Fatal(err)
	}
	if c == conns[0] {
		t.Fatal("pool returned the dead connection")
	}
	if _, err := c.Run(context.Background(), "true"); err != nil {
		t.Fatal(err)
	}
}

func TestPoolSharesJumpHost(t *testing.T) {
	sim.Need(t, cluster)
	p := exec.NewPool()
	defer p.Close()
	jump := config(t, "lb")
	for _, h := range []string{"worker0", "worker1", "worker2"} {
		p.Add(config(t, h), &jump)
	}
	for _, h := range []string{"worker0", "worker1", "worker2"} {
		c, err := p.Get(context.Background(), h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Run(context.Background(), "true"); err != nil {
			t.Fatal(err)
		}
	}
	out, err := cluster.Exec("lb", "sh", "-c", "ss -tn state established '( sport = :22 )' | tail -n +2 | wc -l")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(out); got != "1\n" {
		t.Errorf("connections to the jump host: %q, want 1", got)
	}
}
