package rpmrepo_test

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetops/fleet/testing/rpmrepo"
	"github.com/fleetops/fleet/testing/sim"
)

// TestDnfInstallsFromTheRepository: the real dnf installs a package from
// the repository into a root of its own, checking the package's signature
// and the metadata's (gpgcheck, repo_gpgcheck) against the repository's
// key; metadata that is not what the key signed is refused, and so is a
// repository signed by another key.
func TestDnfInstallsFromTheRepository(t *testing.T) {
	if os.Getenv(sim.IntegrationEnv) != "1" {
		t.Skipf("integration test: run with %s=1 as root (make test)", sim.IntegrationEnv)
	}
	dir := t.TempDir()
	payload := filepath.Join(dir, "hello")
	if err := os.WriteFile(payload, []byte("#!/bin/sh\necho hello from the test repository\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	pkgs := []rpmrepo.Package{{Name: "kubeadm", Version: "1.34.4", Release: "150500.1.1", Files: map[string]string{"/usr/bin/kubeadm": payload}}}
	repo, err := rpmrepo.Build(filepath.Join(dir, "one"), pkgs, "")
	if err != nil {
		t.Fatal(err)
	}
	other, err := rpmrepo.Build(filepath.Join(dir, "other"), pkgs, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(repo.Fingerprint) != 40 || repo.Fingerprint == other.Fingerprint {
		t.Fatalf("fingerprints %q and %q", repo.Fingerprint, other.Fingerprint)
	}
	// A repository signed with the first one's key has its fingerprint.
	again, err := rpmrepo.Build(filepath.Join(dir, "again"), pkgs, filepath.Join(dir, "one", "gnupg"))
	if err != nil || again.Fingerprint != repo.Fingerprint {
		t.Fatalf("signed with the same key: %v, fingerprint %q", err, again.Fingerprint)
	}
	if out, err := exec.Command("rpm", "-qp", "--qf", "%{RSAHEADER:pgpsig}", filepath.Join(repo.Dir, "kubeadm-1.34.4-150500.1.1.x86_64.rpm")).CombinedOutput(); err != nil ||
		!strings.Contains(strings.ToLower(string(out)), strings.ToLower(repo.Fingerprint[24:])) {
		t.Errorf("the package is not signed by the repository's key: %v %s", err, out)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(repo.Dir))}
	go srv.Serve(ln)
	defer srv.Close()

	install := func(key string) (string, error) {
		root := t.TempDir()
		repos := filepath.Join(root, "etc", "yum.repos.d")
		if err := os.MkdirAll(repos, 0o755); err != nil {
			t.Fatal(err)
		}
		def := "[test]\nname=test\nbaseurl=http://" + ln.Addr().String() + "/\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file://" + key + "\n"
		if err := os.WriteFile(filepath.Join(repos, "test.repo"), []byte(def), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("dnf", "-y", "-q", "--installroot", root, "--setopt=reposdir="+repos, "--disableplugin=*", "--releasever=9",
			"install", "kubeadm-1.34.4").CombinedOutput()
		if err == nil {
			data, readErr := os.ReadFile(filepath.Join(root, "usr", "bin", "kubeadm"))
			if readErr != nil || !strings.Contains(string(data), "hello from the test repository") {
				t.Errorf("dnf succeeded without installing the file: %v", readErr)
			}
		}
		return string(out), err
	}
	if out, err := install(repo.KeyFile); err != nil {
		t.Fatalf("install with the repository's key: %v\n%s", err, out)
	}
	if out, err := install(other.KeyFile); err == nil {
		t.Errorf("installed with another key than the one that signed the repository:\n%s", out)
	}
	repomd := filepath.Join(repo.Dir, "repodata", "repomd.xml")
	data, err := os.ReadFile(repomd)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(repomd, append(data, "<!-- changed after signing -->\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := install(repo.KeyFile); err == nil {
		t.Errorf("installed from metadata that is not what the key signed:\n%s", out)
	}
}
