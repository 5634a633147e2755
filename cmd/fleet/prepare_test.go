package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPrepareRefusesAChangedBinaryBeforeAnyHost: a folder file whose sum
// differs from SHA256SUMS is bad input (exit 2), named with both sums, and
// no host is in the error (the inventory's hosts do not exist: their
// dials, begun meanwhile, are cut short).
func TestPrepareRefusesAChangedBinaryBeforeAnyHost(t *testing.T) {
	dir := t.TempDir()
	folder := filepath.Join(dir, "airgap")
	os.Mkdir(folder, 0o755)
	self, err := os.ReadFile(os.Args[0]) // a real ELF file of this machine
	if err != nil {
		t.Fatal(err)
	}
	var sums strings.Builder
	for _, name := range []string{"kubeadm", "kubelet", "kubectl"} {
		os.WriteFile(filepath.Join(folder, name), self, 0o755)
		s := sha256.Sum256(self)
		fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(s[:]), name)
	}
	os.WriteFile(filepath.Join(folder, "SHA256SUMS"), []byte(sums.String()), 0o644)
	os.WriteFile(filepath.Join(folder, "kubectl"), append(self, 0), 0o755)
	inv := filepath.Join(dir, "inventory.yaml")
	// 192.0.2.0/24 (TEST-NET-1): nothing answers there; a dial would hang
	// until connectTimeout, and the error would name the host.
	os.WriteFile(inv, []byte(`cluster:
  name: airgap
  kubernetesVersion: v1.34.4
  install: binaries
  binaries: ./airgap
ssh:
  knownHosts: ./known_hosts
  connectTimeout: 1s
loadbalancer: {name: lb, address: 192.0.2.10}
masters:
  - {name: master0, address: 192.0.2.11}
`), 0o600)
	os.WriteFile(filepath.Join(dir, "known_hosts"), nil, 0o600)
	code, out, errs := fleet("prepare", "-i", inv)
	if code != exitBadInput {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitBadInput, out, errs)
	}
	want := filepath.Join(folder, "kubectl") + ": SHA-256 is "
	if !strings.Contains(errs, want) || strings.Count(errs, "says") != 1 || strings.Contains(errs, "192.0.2") {
		t.Errorf("stderr %q: want %q with both sums and no host", errs, want)
	}
}

func TestPrepareNeedsInstallBinaries(t *testing.T) {
	inv := filepath.Join(t.TempDir(), "inventory.yaml")
	os.WriteFile(inv, []byte("cluster: {name: x, kubernetesVersion: v1.34.4}\nloadbalancer: {name: lb, address: 192.0.2.10}\nmasters:\n  - {name: m0, address: 192.0.2.11}\n"), 0o600)
	code, _, errs := fleet("prepare", "-i", inv)
	if code != exitBadInput || !strings.Contains(errs, "cluster.install is prepared: fleet prepares hosts with install: binaries") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}
