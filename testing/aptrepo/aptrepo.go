// Package aptrepo builds a signed Debian package repository for the test
// bed, laid out like the Kubernetes project's (pkgs.k8s.io: one flat
// repository per minor version, "deb [signed-by=KEY] URL /"): .deb files made
// with dpkg-deb from the test bed's binaries, indexed with apt-ftparchive,
// signed with a throwaway key gpg makes for the run. Simulated hosts install
// from it with the real apt-get and dpkg.
package aptrepo

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/fleetops/fleet/testing/signkey"
)

// Package is one .deb to build.
type Package struct {
	Name    string            // kubeadm
	Version string            // 1.34.4-1.1, as pkgs.k8s.io numbers them
	Arch    string            // amd64
	Files   map[string]string // path in the package (usr/bin/kubeadm) -> file on this machine
	Depends string            // the control file's Depends, or ""
}

// Repo is a built, signed repository.
type Repo struct {
	Dir         string // serve this folder: Packages, Release, InRelease, the .debs
	KeyFile     string // the signing key, ASCII-armored, for signed-by
	Fingerprint string // the key's fingerprint (40 hex digits)
	GPGHome     string // the gpg home that holds the key: other repositories may sign with it
}

// DebsDir is where scripts/setup.sh keeps Debian's own .deb files
// (containerd, runc, nginx): the distribution mirror of bare simulated
// hosts serves them (sim).
const DebsDir = "/var/cache/fleet-sim/debs"

// Build makes the repository in dir (emptied first) from pkgs, and the
// ready-made .deb files of extra.
func Build(dir string, pkgs []Package, extra ...string) (*Repo, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	pool := filepath.Join(dir, "repo")
	if err := os.MkdirAll(pool, 0o755); err != nil {
		return nil, err
	}
	for _, p := range pkgs {
		if err := buildDeb(dir, pool, p); err != nil {
			return nil, fmt.Errorf("aptrepo: %s: %w", p.Name, err)
		}
	}
	for _, deb := range extra {
		if err := os.Link(deb, filepath.Join(pool, filepath.Base(deb))); err != nil {
			if out, err := exec.Command("cp", deb, pool).CombinedOutput(); err != nil {
				return nil, fmt.Errorf("aptrepo: copy %s: %v: %s", deb, err, out)
			}
		}
	}
	packages, err := run(pool, "apt-ftparchive", "packages", ".")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(pool, "Packages"), packages, 0o644); err != nil {
		return nil, err
	}
	release, err := run(pool, "apt-ftparchive", "-o", "APT::FTPArchive::Release::Origin=fleet-test", "release", ".")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(pool, "Release"), release, 0o644); err != nil {
		return nil, err
	}
	r := &Repo{Dir: pool, KeyFile: filepath.Join(dir, "signing-key.asc"), GPGHome: filepath.Join(dir, "gnupg")}
	if r.Fingerprint, err = sign(dir, pool, r.KeyFile); err != nil {
		return nil, err
	}
	// Served beside the index too, as pkgs.k8s.io serves Release.key.
	key, err := os.ReadFile(r.KeyFile)
	if err != nil {
		return nil, err
	}
	return r, os.WriteFile(filepath.Join(pool, "Release.key"), key, 0o644)
}

// buildDeb lays the package out under dir/stage and builds it into pool.
// gzip at level 1: the test bed's binaries are large, and xz, dpkg-deb's
// default, would take a minute per package.
func buildDeb(dir, pool string, p Package) error {
	stage := filepath.Join(dir, "stage", p.Name)
	if err := os.MkdirAll(filepath.Join(stage, "DEBIAN"), 0o755); err != nil {
		return err
	}
	for inPkg, src := range p.Files {
		dst := filepath.Join(stage, inPkg)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Link(src, dst); err != nil {
			if out, err := exec.Command("cp", src, dst).CombinedOutput(); err != nil {
				return fmt.Errorf("copy %s: %v: %s", src, err, out)
			}
		}
	}
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: fleet test bed <test@fleet.invalid>\nSection: admin\nPriority: optional\nDescription: %s for fleet's test bed\n",
		p.Name, p.Version, p.Arch, p.Name)
	if p.Depends != "" {
		control += "Depends: " + p.Depends + "\n"
	}
	if err := os.WriteFile(filepath.Join(stage, "DEBIAN", "control"), []byte(control), 0o644); err != nil {
		return err
	}
	deb := filepath.Join(pool, fmt.Sprintf("%s_%s_%s.deb", p.Name, p.Version, p.Arch))
	_, err := run(dir, "dpkg-deb", "--root-owner-group", "-Zgzip", "-z1", "--build", stage, deb)
	return err
}

// sign makes a throwaway key, signs Release as InRelease and
// Release.gpg, exports the public key and returns its fingerprint.
func sign(dir, pool, keyFile string) (string, error) {
	k, err := signkey.New(filepath.Join(dir, "gnupg"))
	if err != nil {
		return "", fmt.Errorf("aptrepo: %w", err)
	}
	if _, err := k.GPG(dir, "--clearsign", "-o", filepath.Join(pool, "InRelease"), filepath.Join(pool, "Release")); err != nil {
		return "", fmt.Errorf("aptrepo: %w", err)
	}
	if _, err := k.GPG(dir, "--armor", "--detach-sign", "-o", filepath.Join(pool, "Release.gpg"), filepath.Join(pool, "Release")); err != nil {
		return "", fmt.Errorf("aptrepo: %w", err)
	}
	return k.Fingerprint, os.WriteFile(keyFile, k.Public, 0o644)
}

func run(dir, name string, args ...string) ([]byte, error) {
	out, err := signkey.Run(dir, name, args...)
	if err != nil {
		return nil, fmt.Errorf("aptrepo: %w", err)
	}
	return out, nil
}
