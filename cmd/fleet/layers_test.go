package main

import (
	"go/build"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/fleetops/fleet"

// ourImports lists the packages of this module that the Go files (not the
// tests) in dir import.
func ourImports(t *testing.T, dir string) []string {
	t.Helper()
	pkg, err := build.ImportDir(dir, 0)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	var ours []string
	for _, imp := range pkg.Imports {
		if strings.HasPrefix(imp, module+"/") {
			ours = append(ours, strings.TrimPrefix(imp, module+"/"))
		}
	}
	return ours
}

// The CLI sees only playbooks and inventory: whatever it shows, a test of
// playbooks can reach.
func TestCLIImportsOnlyPlaybooksAndInventory(t *testing.T) {
	imports := ourImports(t, ".")
	if !slices.Contains(imports, "playbooks") {
		t.Fatalf("cmd/fleet imports %v: the check reads the wrong package", imports)
	}
	for _, imp := range imports {
		if imp != "playbooks" && imp != "inventory" {
			t.Errorf("cmd/fleet imports %s: only playbooks and inventory are allowed", imp)
		}
	}
}

// The layers point one way: nothing under internal/ and nothing in
// inventory imports playbooks or the CLI, and inventory imports nothing of
// internal/.
func TestLayersPointOneWay(t *testing.T) {
	dirs := []string{"../../inventory"}
	internal, err := os.ReadDir("../../internal")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range internal {
		if d.IsDir() {
			dirs = append(dirs, filepath.Join("../../internal", d.Name()))
		}
	}
	if len(dirs) < 5 {
		t.Fatalf("only %d packages found: %v", len(dirs), dirs)
	}
	for _, dir := range dirs {
		from := strings.TrimPrefix(dir, "../../")
		for _, imp := range ourImports(t, dir) {
			switch {
			case imp == "playbooks" || strings.HasPrefix(imp, "cmd/"):
				t.Errorf("%s imports %s: a lower layer must not know the playbooks or the CLI", from, imp)
			case from == "inventory" && strings.HasPrefix(imp, "internal/"):
				t.Errorf("inventory imports %s: it parses and validates, nothing more", imp)
			}
		}
	}
}
