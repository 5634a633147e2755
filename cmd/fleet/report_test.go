package main

import (
	"encoding/json"
	"html"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fleetops/fleet/testing/sim"
)

// measuredBar is a timeline bar as the browser laid it out.
type measuredBar struct {
	Step  string  `json:"step"`
	Host  string  `json:"host"`
	Width float64 `json:"width"`
}

// measureScript, added to a copy of the report, writes every bar's laid
// out width into the page for --dump-dom to read.
const measureScript = `<script>
const bars = [...document.querySelectorAll('#timeline .bar')].map(b => ({step: b.dataset.step, host: b.dataset.host, width: b.getBoundingClientRect().width}));
const pre = document.createElement('pre'); pre.id = 'measured'; pre.textContent = JSON.stringify(bars); document.body.appendChild(pre);
</script>`

// chromium runs Debian's headless Chromium as this machine allows it: no
// sandbox as root, nothing fetched from outside, a fresh profile.
func chromium(t *testing.T, args ...string) []byte {
	t.Helper()
	bin, err := osexec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is needed for the report test (make setup installs it): %v", err)
	}
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--user-data-dir=" + t.TempDir(), "--window-size=1400,1000"}
	cmd := osexec.Command(bin, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// checkReportInBrowser loads the report in headless Chromium: a
// screenshot is kept (FLEET_ARTIFACTS, default /var/tmp/fleet-artifacts),
// and every bar of the timeline, each step on each host, has a width.
func checkReportInBrowser(t *testing.T, report, name string) []measuredBar {
	t.Helper()
	page, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	artifacts := os.Getenv("FLEET_ARTIFACTS")
	if artifacts == "" {
		artifacts = "/var/tmp/fleet-artifacts"
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(artifacts, name+".png")
	os.Remove(shot)
	chromium(t, "--screenshot="+shot, "file://"+report)
	if st, err := os.Stat(shot); err != nil || st.Size() < 10_000 {
		t.Errorf("screenshot of the report: %v (%v)", st, err)
	} else {
		t.Logf("report screenshot: %s", shot)
	}
	measured := filepath.Join(t.TempDir(), "measured.html")
	if err := os.WriteFile(measured, []byte(strings.Replace(string(page), "</body>", measureScript+"</body>", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	dom := chromium(t, "--dump-dom", "file://"+measured)
	m := regexp.MustCompile(`(?s)<pre id="measured">(.*?)</pre>`).FindSubmatch(dom)
	if m == nil {
		t.Fatalf("the browser did not lay the timeline out:\n%.2000s", dom)
	}
	var bars []measuredBar
	if err := json.Unmarshal([]byte(html.UnescapeString(string(m[1]))), &bars); err != nil {
		t.Fatal(err)
	}
	for _, b := range bars {
		if b.Width <= 0 {
			t.Errorf("bar %s on %s is %.1f px wide", b.Step, b.Host, b.Width)
		}
	}
	return bars
}

// hasBar reports whether step on host has a bar.
func hasBar(bars []measuredBar, step, host string) bool {
	for _, b := range bars {
		if b.Step == step && b.Host == host {
			return true
		}
	}
	return false
}

// TestReportOfAFailedApply: the load balancer host's nginx has a config
// nginx -t refuses; apply fails at the loadbalancer step, and its report
// shows that failure first, with the host and the tail of nginx's stderr,
// before the timeline.
func TestReportOfAFailedApply(t *testing.T) {
	sim.Need(t, cluster)
	broken := filepath.Join(cluster.Host("lb").Dir, "etc/nginx/conf.d/broken.conf")
	if err := os.WriteFile(broken, []byte("bogus_directive on;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(broken)
	report := filepath.Join(t.TempDir(), "failed.html")
	code, out, errs := fleet("apply", "-i", cluster.Inventory, "--report", report, "--generate-ca")
	if code != exitFailed || !strings.Contains(errs, "report: "+report) {
		t.Fatalf("apply with a broken nginx: exit %d\n%s%s", code, out, errs)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	page := string(data)
	failures, timeline := strings.Index(page, `id="failures"`), strings.Index(page, `id="timeline"`)
	if failures < 0 || failures > timeline {
		t.Fatalf("no failure section before the timeline:\n%.3000s", page)
	}
	first := page[failures:timeline]
	if !strings.Contains(first, `data-step="loadbalancer" data-host="lb"`) || !strings.Contains(first, `unknown directive &#34;bogus_directive&#34;`) {
		t.Errorf("the failure section does not name the load balancer's nginx -t and its stderr:\n%s", first)
	}
	bars := checkReportInBrowser(t, report, "report-failed-apply")
	if !hasBar(bars, "loadbalancer", "lb") || !hasBar(bars, "init", "master0") {
		t.Errorf("the timeline lacks the failed step or the one it blocked: %+v", bars)
	}
}
