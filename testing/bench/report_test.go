package bench

import (
	"bytes"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSummarise(t *testing.T) {
	s := func(tool string, run int, ms int, rss int64) Sample {
		return Sample{Hosts: 10, Tool: tool, Run: run, Wall: time.Duration(ms) * time.Millisecond, PeakRSS: rss}
	}
	samples := []Sample{s("fleet", 1, 300, 9000), s("fleet", 2, 100, 12000), s("fleet", 3, 200, 8000),
		s("openssh", 1, 400, 0), s("openssh", 2, 600, 0), {Hosts: 50, Tool: "fleet", Wall: time.Hour}}
	got := Summarise(samples, 10, []string{"ansible", "fleet", "openssh"})
	if len(got) != 2 || got[0].Tool != "fleet" || got[1].Tool != "openssh" {
		t.Fatalf("%+v", got)
	}
	if f := got[0]; f.Median != 200*time.Millisecond || f.Min != 100*time.Millisecond || f.Max != 300*time.Millisecond || f.PeakRSS != 12000 || f.Runs != 3 {
		t.Errorf("fleet %+v", f)
	}
	if o := got[1]; o.Median != 500*time.Millisecond {
		t.Errorf("even count median %v, want 500ms", o.Median)
	}
	if r := Ratio(got[0].Median, got[1].Median); r != "0.40×" {
		t.Errorf("ratio %s", r)
	}
	// A tool left out of a size has no median: no ratio, not "0.00× faster".
	if r := Ratio(0, got[0].Median); r != "-" {
		t.Errorf("ratio against an unmeasured tool %s, want -", r)
	}
}

func TestWriteCSV(t *testing.T) {
	var b bytes.Buffer
	if err := WriteCSV(&b, []Sample{{Hosts: 10, Tool: "fleet", Run: 1, Wall: 1500 * time.Millisecond, PeakRSS: 42}}); err != nil {
		t.Fatal(err)
	}
	if want := "hosts,tool,run,wall_seconds,peak_rss_kib\n10,fleet,1,1.500,42\n"; b.String() != want {
		t.Errorf("%q", b.String())
	}
	if !strings.Contains(b.String(), "fleet") {
		t.Error("no tool")
	}
}

// TestWritePDSH: the pdsh floor's script parses (bash -n), sends to every
// host with fan-out = hosts, and files outputs under the hosts' names.
func TestWritePDSH(t *testing.T) {
	dir := t.TempDir()
	targets := []Target{{Name: "w0", Address: "198.18.9.10"}, {Name: "w1", Address: "198.18.9.11"}}
	argv, err := WritePDSH(dir, targets, Access{KeyFile: "/k/id", KnownHosts: "/k/known_hosts"}, "/p/payload", dir+"/out")
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(argv[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"hosts=198.18.9.10,198.18.9.11", "pdcp -f 2 ", "pdsh -f 2 ", "StrictHostKeyChecking=yes", "chmod 600 " + PayloadPath + ".tmp"} {
		if !strings.Contains(string(script), want) {
			t.Errorf("script lacks %q:\n%s", want, script)
		}
	}
	if names, _ := os.ReadFile(filepath.Join(dir, "names")); string(names) != "198.18.9.10 w0\n198.18.9.11 w1\n" {
		t.Errorf("names file %q", names)
	}
	if out, err := osexec.Command("bash", "-n", argv[1]).CombinedOutput(); err != nil {
		t.Errorf("bash -n: %v\n%s", err, out)
	}
}
