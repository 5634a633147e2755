package runreport

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func task(step, host string, from, to float64) Task {
	return Task{Step: step, Host: host, Start: at(from), End: at(to), Outcome: "succeeded"}
}

func TestCriticalPath(t *testing.T) {
	after := map[string][]string{"init": {"preflight"}, "join-masters": {"init"}, "join-workers": {"init"}, "kubeconfig": {"join-masters", "join-workers"}}
	tests := []struct {
		name  string
		tasks []Task
		want  []string // step host, last first
	}{
		{
			name: "the slow master chain, not the quick workers",
			tasks: []Task{
				task("preflight", "m0", 0, 1), task("preflight", "w0", 0, 2),
				task("init", "m0", 1, 10),
				task("join-masters", "m1", 10, 20), task("join-masters", "m2", 20, 31),
				task("join-workers", "w0", 10, 14),
				task("kubeconfig", "", 31, 33),
			},
			want: []string{"kubeconfig ", "join-masters m2", "join-masters m1", "init m0", "preflight m0"},
		},
		{
			name: "a dependency on the same host is what it waited for",
			tasks: []Task{
				task("preflight", "w0", 0, 3), task("preflight", "w1", 0, 5),
				task("init", "w0", 3, 4),
			},
			want: []string{"preflight w1"}, // init w0 ended before preflight w1: the run's end is w1
		},
		{
			name: "tasks skipped at one instant do not send the walk round in circles",
			tasks: []Task{
				task("init", "m0", 0, 5),
				task("join-masters", "m1", 5, 5), task("join-masters", "m2", 5, 5),
				task("join-workers", "w0", 5, 5), task("kubeconfig", "", 5, 5),
			},
			want: []string{"kubeconfig ", "join-masters m1", "init m0"},
		},
		{
			name:  "one task",
			tasks: []Task{task("preflight", "m0", 0, 1)},
			want:  []string{"preflight m0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Run{Tasks: tt.tasks, After: after, SerialStep: map[string]bool{"join-masters": true}}
			var got []string
			for _, i := range CriticalPath(r) {
				got = append(got, r.Tasks[i].Step+" "+r.Tasks[i].Host)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("critical path %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRenderPutsFailuresFirstAndEscapes(t *testing.T) {
	failed := task("join-workers", "w1", 10, 12)
	failed.Outcome, failed.Detail = "failed", "kubeadm join: command exited 1"
	r := Run{
		Title:   "fleet apply",
		Started: at(0), Ended: at(13),
		Error: "apply failed",
		Tasks: []Task{task("preflight", "w0", 0, 1), task("init", "m0", 1, 10), task("join-workers", "w0", 10, 11), failed,
			{Step: "kubeconfig", Start: at(12), End: at(12), Outcome: "blocked", Detail: "join-workers failed on w1"}},
		Commands: []Command{
			{Step: "join-workers", Host: "w1", RanOn: "w1", Command: "kubeadm join --config /etc/fleet/kubeadm-join.yaml", ExitCode: 1, StderrTail: "[ERROR Port-10250]: Port 10250 is in use", Start: at(10.5), Duration: time.Second},
			{Step: "init", Host: "m0", RanOn: "m0", Command: `echo "<script>alert(1)</script>"`, Start: at(2), Duration: time.Second},
			{RanOn: "m0", Command: "cat /var/lib/fleet/lock", Start: at(0)},
		},
		After: map[string][]string{"init": {"preflight"}, "join-workers": {"init"}, "kubeconfig": {"join-workers"}},
	}
	var b bytes.Buffer
	if err := Render(&b, r); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	failures, timeline := strings.Index(page, `id="failures"`), strings.Index(page, `id="timeline"`)
	if failures < 0 || failures > timeline {
		t.Fatalf("the failures are not before the timeline (%d, %d)", failures, timeline)
	}
	first := page[failures:timeline]
	for _, want := range []string{`data-host="w1"`, "kubeadm join: command exited 1", "[ERROR Port-10250]: Port 10250 is in use", "exit-nonzero"} {
		if !strings.Contains(first, want) {
			t.Errorf("the failure section lacks %q:\n%s", want, first)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Error("a command's text reached the page unescaped")
	}
	if regexp.MustCompile(`(src|href)="?https?:`).MatchString(page) {
		t.Error("the page loads something from outside")
	}
	// One bar per task, each with a width; the blocked one too.
	bars := regexp.MustCompile(`class="bar [^"]*" data-step="([^"]+)" data-host="([^"]+)" style="left:[0-9.]+%;width:([0-9.]+)%"`).FindAllStringSubmatch(page, -1)
	if len(bars) != len(r.Tasks) {
		t.Fatalf("%d bars for %d tasks", len(bars), len(r.Tasks))
	}
	for _, m := range bars {
		if m[3] == "0.000" {
			t.Errorf("bar %s on %s has no width", m[1], m[2])
		}
	}
	if !strings.Contains(page, "Commands outside the steps") || !strings.Contains(page, "cat /var/lib/fleet/lock") {
		t.Error("the command outside every step is not shown")
	}
}
