package playbooks_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/sim"
)

// TestContainerLoadBalancer: nginx as a container (runAs: container, seed
// 002's `docker run -p 6443:6443 nginx`), driven through the real docker
// CLI against the simulated host's engine. The cluster comes up through
// it; a second apply changes nothing; a config nginx -t rejects never goes
// live; a new option reloads the same container; a new image replaces it;
// switching to the host's nginx and back hands the port over both ways;
// reset leaves nothing of fleet's on the load balancer.
func TestContainerLoadBalancer(t *testing.T) {
	sim.Need(t, cluster)
	topo := sim.Sized("dk", 24, 3, 1) // lb, master0, worker0
	c := upWithNodeBinaries(t, topo)
	if out, err := c.Exec("lb", "sh", "-c", "command -v docker"); err != nil {
		t.Fatalf("no docker CLI on the load balancer (scripts/setup.sh installs one): %v %s", err, out)
	}
	pristine, err := os.ReadFile(c.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	lbAt := "loadbalancer:\n  name: lb\n  address: " + c.Host("lb").Address + "\n"
	if !bytes.Contains(pristine, []byte(lbAt)) {
		t.Fatalf("inventory has no %q:\n%s", lbAt, pristine)
	}
	// withNginx writes the inventory with these nginx options on the LB.
	withNginx := func(opts string) *inventory.Inventory {
		t.Helper()
		return editInventory(t, c.Inventory, pristine, [2]string{lbAt, lbAt + "  nginx:\n" + opts})
	}
	kubeconfig := filepath.Join(c.Dir, "admin.kubeconfig")
	apply := func(inv *inventory.Inventory) *steps.Report {
		t.Helper()
		opts := playbooks.DefaultApplyOptions()
		opts.Kubeconfig = kubeconfig
		report, _, shown, err := runApply(t, inv, opts, nil)
		if err != nil {
			t.Fatalf("apply: %v\n%s", err, shown)
		}
		return report
	}
	docker := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := c.Exec("lb", append([]string{"docker"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	// container is the fleet-lb container's id, state and image.
	container := func() (id, state string) {
		out, err := c.Exec("lb", "docker", "container", "inspect", "-f", "{{.Id}} {{.State.Running}} {{.Config.Image}} {{.HostConfig.RestartPolicy.Name}}", "fleet-lb")
		if err != nil {
			return "", "missing"
		}
		id, state, _ = strings.Cut(strings.TrimSpace(string(out)), " ")
		return id, state
	}
	apiAnswers := func(t *testing.T) {
		t.Helper()
		nodes, err := clientFor(t, kubeconfig).CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 2 {
			t.Fatalf("the API through the load balancer: %v (%d nodes)", err, len(nodes.Items))
		}
	}
	lb := c.Host("lb")
	live := filepath.Join(lb.Dir, "etc/fleet/lb/kube-apiserver.conf")
	hostNginxPid := filepath.Join(lb.Dir, "run/nginx.pid")

	inv := withNginx("    runAs: container\n    image: nginx:1.27\n")
	if r := apply(inv); !ran(r, "loadbalancer") {
		t.Fatal("the loadbalancer step did not run")
	}
	apiAnswers(t)
	id, state := container()
	if state != "true nginx:1.27 unless-stopped" {
		t.Fatalf("fleet-lb: %q", state)
	}
	if conf, err := os.ReadFile(live); err != nil || !strings.Contains(string(conf), c.Host("master0").Address+":6443") {
		t.Fatalf("live stream config: %v\n%s", err, conf)
	}
	if _, err := os.Stat(hostNginxPid); err == nil {
		t.Error("the host's own nginx runs too")
	}

	t.Run("second apply changes nothing", func(t *testing.T) {
		r := apply(inv)
		if r.Changed() {
			t.Errorf("changed: %+v", r.Changes())
		}
		if again, _ := container(); again != id {
			t.Errorf("container replaced: %s -> %s", id, again)
		}
	})

	t.Run("a config nginx -t rejects never goes live", func(t *testing.T) {
		var out output
		s, err := playbooks.NewSession(inv, playbooks.Options{OnEvent: out.event})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		before, _ := os.ReadFile(live)
		bad := []byte("stream {\n    upstream kube_apiserver {\n        least_conn;\n        server " + c.Host("master0").Address + ":6443 bogus_parameter;\n    }\n}\n")
		err = playbooks.ApplyLB(context.Background(), s, "lb", bad)
		if err == nil || !strings.Contains(err.Error(), "nginx -t in a nginx:1.27 container rejected") || !strings.Contains(err.Error(), "bogus_parameter") {
			t.Fatalf("got %v, want nginx -t's refusal naming the bad parameter", err)
		}
		if after, _ := os.ReadFile(live); !bytes.Equal(before, after) {
			t.Errorf("the live config changed:\n%s", after)
		}
		if again, st := container(); again != id || !strings.HasPrefix(st, "true ") {
			t.Errorf("fleet-lb after the refusal: %s %s, want %s running", again, st, id)
		}
		if out := docker(t, "ps", "-a", "--format", "{{.Names}}"); strings.Contains(out, "fleet-lb-check") {
			t.Errorf("the check container was left: %s", out)
		}
		apiAnswers(t)
	})

	t.Run("a new option reloads the same container", func(t *testing.T) {
		inv = withNginx("    runAs: container\n    image: nginx:1.27\n    proxyTimeout: 5s\n")
		if r := apply(inv); !ran(r, "loadbalancer") {
			t.Fatal("the loadbalancer step did not run")
		}
		if conf, _ := os.ReadFile(live); !strings.Contains(string(conf), "proxy_timeout 5s;") {
			t.Errorf("live config:\n%s", conf)
		}
		if again, st := container(); again != id || !strings.HasPrefix(st, "true ") {
			t.Errorf("container %s %s, want %s reloaded in place", again, st, id)
		}
		if logs := docker(t, "logs", "fleet-lb"); !strings.Contains(logs, "reconfiguring") {
			t.Errorf("no reload in the container's log:\n%s", logs)
		}
		apiAnswers(t)
	})

	t.Run("a new image replaces the container", func(t *testing.T) {
		inv = withNginx("    runAs: container\n    image: nginx:stable\n    proxyTimeout: 5s\n")
		apply(inv)
		again, st := container()
		if again == id || st != "true nginx:stable unless-stopped" {
			t.Errorf("container %s %q, want a new one running nginx:stable", again, st)
		}
		id = again
		apiAnswers(t)
	})

	t.Run("switching to the host's nginx and back hands the port over", func(t *testing.T) {
		apply(withNginx("    runAs: service\n"))
		if _, st := container(); st != "missing" {
			t.Errorf("fleet-lb still there after runAs: service: %s", st)
		}
		if _, err := os.Stat(hostNginxPid); err != nil {
			t.Errorf("the host's nginx does not run: %v", err)
		}
		apiAnswers(t)

		inv = withNginx("    runAs: container\n")
		apply(inv)
		if _, st := container(); st != "true "+inventory.DefaultNginxImage+" unless-stopped" {
			t.Errorf("fleet-lb: %q", st)
		}
		hostConf, _ := os.ReadFile(filepath.Join(lb.Dir, "etc/nginx/nginx.conf"))
		if strings.Contains(string(hostConf), "fleet.d") {
			t.Errorf("the host's nginx.conf still includes fleet's folder:\n%s", hostConf)
		}
		if _, err := os.Stat(filepath.Join(lb.Dir, "etc/nginx/fleet.d/kube-apiserver.conf")); err == nil {
			t.Error("the host-service config is still there")
		}
		apiAnswers(t)
	})

	t.Run("reset leaves nothing on the load balancer", func(t *testing.T) {
		var out output
		s, err := playbooks.NewSession(inv, playbooks.Options{OnEvent: out.event})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := playbooks.Reset(context.Background(), s); err != nil {
			t.Fatalf("reset: %v\n%s", err, out.buf.String())
		}
		if _, st := container(); st != "missing" {
			t.Errorf("fleet-lb after reset: %s", st)
		}
		if _, err := os.Stat(filepath.Join(lb.Dir, "etc/fleet/lb")); err == nil {
			t.Error("/etc/fleet/lb is still there")
		}
	})
}
