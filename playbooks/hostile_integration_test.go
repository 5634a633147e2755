package playbooks_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/reliability"
	"github.com/fleetops/fleet/testing/sim"
)

// hostileKubeadm shadows the real kubeadm on a host (/usr/local/bin comes
// first in PATH): it prints 100 MB of garbage on stdout, a long garbage line
// and a join command with an extra, unsafe flag on stderr, and fails.
const hostileKubeadm = `#!/bin/sh
head -c 100000000 /dev/urandom | base64 -w 0
head -c 3000000 /dev/urandom | base64 -w 0 >&2
echo >&2
echo "kubeadm join 198.18.26.10:6443 --token abcdef.0123456789abcdef --discovery-token-unsafe-skip-ca-verification" >&2
exit 1
`

// TestHostileKubeadm: a kubeadm that floods its output and prints garbage
// and a doctored join command does not crash fleet or blow its memory; the
// init step fails with a bounded error naming the host and the command,
// and nothing is taken from the garbage. With the real kubeadm back, the
// next apply converges.
func TestHostileKubeadm(t *testing.T) {
	sim.Need(t, cluster)
	topo := sim.Sized("hk", 26, 4, 1) // lb, master0, worker0; worker1 for the interrupted join
	c := upWithNodeBinaries(t, topo)
	if _, err := c.Exec("master0", "sh", "-c", `printf '%s' "$1" > /usr/local/bin/kubeadm && chmod 0755 /usr/local/bin/kubeadm`, "w", hostileKubeadm); err != nil {
		t.Fatal(err)
	}
	if out, _ := c.Exec("master0", "sh", "-c", "command -v kubeadm"); strings.TrimSpace(string(out)) != "/usr/local/bin/kubeadm" {
		t.Fatalf("the hostile kubeadm does not shadow the real one: %s", out)
	}
	inv, err := inventory.Load(c.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	opts := playbooks.DefaultApplyOptions()
	opts.Kubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	opts.Exclude = []string{"worker1"}
	_, _, shown, err := runApply(t, inv, opts, nil)
	var se *steps.StepError
	if !errors.As(err, &se) || se.Step != "init" || se.Host != "master0" {
		t.Fatalf("apply with a hostile kubeadm: %v, want the init step on master0 to fail", err)
	}
	msg := err.Error()
	if !strings.Contains(msg, "kubeadm init") || !strings.Contains(msg, "exited 1") || !strings.Contains(msg, "printed more than") {
		t.Errorf("error does not say which command flooded its output: %.300s", msg)
	}
	if len(msg) > 16<<10 || len(shown) > 64<<10 {
		t.Errorf("error %d bytes, output %d bytes: fleet passed the flood on", len(msg), len(shown))
	}
	if _, err := os.Stat(filepath.Join(c.Host("worker0").Dir, "etc/kubernetes/kubelet.conf")); err == nil {
		t.Error("worker0 joined after a failed init")
	}

	if _, err := c.Exec("master0", "rm", "-f", "/usr/local/bin/kubeadm"); err != nil {
		t.Fatal(err)
	}
	report, _, shown, err := runApply(t, inv, opts, nil)
	if err != nil {
		t.Fatalf("apply with the real kubeadm back: %v\n%s", err, shown)
	}
	if !ran(report, "init") || !ran(report, "join-workers") {
		t.Errorf("changes %+v: want init and the worker's join", report.Changes())
	}

	t.Run("a kubeadm join that hangs", func(t *testing.T) {
		// worker1's kubeadm never returns from join; everything else is
		// the real one.
		hang := "#!/bin/sh\nif [ \"$1\" = join ]; then sleep 3600; exit 1; fi\nexec /usr/bin/kubeadm \"$@\"\n"
		if _, err := c.Exec("worker1", "sh", "-c", `printf '%s' "$1" > /usr/local/bin/kubeadm && chmod 0755 /usr/local/bin/kubeadm`, "w", hang); err != nil {
			t.Fatal(err)
		}
		opts.Exclude = nil
		opts.KubeadmTimeout = 5 * time.Second
		defer func() { opts.KubeadmTimeout = playbooks.DefaultApplyOptions().KubeadmTimeout }()
		start := time.Now()
		_, s, _, err := runApply(t, inv, opts, nil)
		took := time.Since(start)
		var se *steps.StepError
		if !errors.As(err, &se) || se.Step != "join-workers" || se.Host != "worker1" || !strings.Contains(err.Error(), "still running after 5s (--kubeadm-timeout)") {
			t.Fatalf("apply with a hanging kubeadm join: %v, want join-workers on worker1 to time out", err)
		}
		if out, err := c.Exec("worker1", "sh", "-c", `pgrep --ns $$ --nslist net,mnt -af '[s]leep 3600|/usr/local/bin/[k]ubeadm join'`); err == nil {
			t.Errorf("the hung join still runs on worker1: %s", out)
		}
		if _, err := c.Exec("worker1", "rm", "-f", "/usr/local/bin/kubeadm"); err != nil {
			t.Fatal(err)
		}
		reliability.Record(t, reliability.Row{N: 9, Did: firstLine(s.Redactor.String(se.Error())) + " (run ended after " + took.Round(time.Second).String() + "; no process of it left on worker1)",
			Rerun: "the next apply (worker1's kubeadm answering again) joined worker1 — as the next subtest shows, through one more fault"})
	})

	t.Run("a worker's sshd killed during its join", func(t *testing.T) {
		// Kill worker1's sshd (every connection with it) once its join
		// has started the kubelet: the middle of kubeadm join.
		flags := filepath.Join(c.Host("worker1").Dir, "var/lib/kubelet/kubeadm-flags.env")
		hook, killed := faultOnFile("join-workers", "worker1", flags, func() error { return c.StopSSHD("worker1") })
		opts.Exclude = nil
		_, _, _, err := runApply(t, inv, opts, hook)
		if err := <-killed; err != nil {
			t.Fatal(err)
		}
		var se *steps.StepError
		if !errors.As(err, &se) || se.Step != "join-workers" || se.Host != "worker1" {
			t.Fatalf("apply with worker1's sshd killed: %v, want join-workers on worker1 to fail", err)
		}
		interrupted := err.Error()
		if err := c.StartSSHD(context.Background(), "worker1"); err != nil {
			t.Fatal(err)
		}
		report, _, shown, err := runApply(t, inv, opts, nil)
		if err != nil {
			t.Fatalf("apply after sshd came back: %v\n%s", err, shown)
		}
		how := "found worker1 joined (its kubelet finished the TLS bootstrap on its own) and changed nothing there"
		if ran(report, "join-workers") {
			how = "cleared the interrupted join's leftovers (kubeadm reset -f) and joined worker1 again"
		}
		if ran(report, "init") {
			t.Error("the re-run ran kubeadm init")
		}
		reliability.Record(t, reliability.Row{N: 2, Did: interrupted, Rerun: "with sshd back, the next apply " + how + "; every node Ready"})
	})
}
