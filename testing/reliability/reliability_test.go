package reliability

import (
	"strings"
	"testing"
)

func TestRecordReadRender(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvDir, dir)
	Record(t, Row{N: 5, Did: "step join-workers on worker1: not joined:\n load balancer endpoint down", Rerun: "converged"})
	Record(t, Row{N: 14, Did: "upload failed: no space left on device", Rerun: "n/a"})
	rows, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0].Test != t.Name() || rows[1].N != 14 {
		t.Fatalf("rows %+v", rows)
	}
	md := Render(rows)
	for _, want := range []string{
		"## 5. The load balancer's nginx stopped during worker joins\n\n- test: `TestRecordReadRender`\n- fleet did: step join-workers on worker1: not joined: load balancer endpoint down\n- re-run: converged",
		"## 1. A worker unreachable before the run (link down)\n\nNot covered by a test in this run.",
		"2 of 23 rows covered in this run; not covered: 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 17, 18, 19, 20, 21, 22, 23.",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestRecordWithoutDirDoesNothing(t *testing.T) {
	t.Setenv(EnvDir, "")
	Record(t, Row{N: 1}) // must not fail or write
	if _, err := Read(t.TempDir()); err == nil {
		t.Error("rows appeared without a folder")
	}
}
