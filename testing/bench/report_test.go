package bench

import (
	"bytes"
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
