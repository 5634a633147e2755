// Package rpmrepo builds a signed RPM package repository for the test bed,
// laid out like the Kubernetes project's (pkgs.k8s.io: one repository per
// minor version, its metadata in repodata/, repomd.xml signed and the key
// beside it as repodata/repomd.xml.key): packages made with rpmbuild from
// the test bed's binaries and signed with rpmsign, indexed with
// createrepo_c, all with a throwaway key gpg makes for the run. Simulated
// hosts that claim a RHEL-family distribution install from it with the
// real dnf and rpm.
package rpmrepo

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/fleetops/fleet/testing/signkey"
)

// Package is one .rpm to build.
type Package struct {
	Name    string            // kubeadm
	Version string            // 1.34.4
	Release string            // 150500.1.1, as pkgs.k8s.io numbers them
	Files   map[string]string // path on the host (/usr/bin/kubeadm) -> file on this machine
}

// Repo is a built, signed repository.
type Repo struct {
	Dir         string // serve this folder: repodata/ and the .rpm files
	KeyFile     string // the signing key, ASCII-armored
	Fingerprint string // the key's fingerprint (40 hex digits)
}

// Build makes the repository in dir (emptied first) from pkgs, signed
// with the key in the gpg home signer (as pkgs.k8s.io signs its apt and
// rpm repositories with one key), or with a new throwaway key when
// signer is "".
func Build(dir string, pkgs []Package, signer string) (*Repo, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	pool := filepath.Join(dir, "repo")
	if err := os.MkdirAll(pool, 0o755); err != nil {
		return nil, err
	}
	var k *signkey.Key
	var err error
	if signer == "" {
		k, err = signkey.New(filepath.Join(dir, "gnupg"))
	} else {
		k, err = signkey.Open(signer)
	}
	if err != nil {
		return nil, fmt.Errorf("rpmrepo: %w", err)
	}
	home := k.Home
	var rpms []string
	for _, p := range pkgs {
		rpm, err := buildRPM(dir, pool, p)
		if err != nil {
			return nil, fmt.Errorf("rpmrepo: %s: %w", p.Name, err)
		}
		rpms = append(rpms, rpm)
	}
	if len(rpms) > 0 {
		// rpmsign runs gpg without a terminal: the sign command is given
		// whole, with the key's empty passphrase (its first word is the
		// program, its second the program's name).
		sign := "%{__gpg} gpg --homedir " + home + " --batch --pinentry-mode loopback --passphrase '' --no-verbose --no-armor -u '%{_gpg_name}' -sbo %{__signature_filename} %{__plaintext_filename}"
		gpg, err := exec.LookPath("gpg") // rpm's default is gpg2's path
		if err != nil {
			return nil, err
		}
		args := append([]string{"--define", "__gpg " + gpg, "--define", "_gpg_name " + k.Fingerprint, "--define", "__gpg_sign_cmd " + sign, "--addsign"}, rpms...)
		if _, err := run(dir, "rpmsign", args...); err != nil {
			return nil, err
		}
	}
	if _, err := run(dir, "createrepo_c", "--quiet", "--no-database", pool); err != nil {
		return nil, err
	}
	repomd := filepath.Join(pool, "repodata", "repomd.xml")
	if _, err := k.GPG(dir, "--armor", "--detach-sign", "-o", repomd+".asc", repomd); err != nil {
		return nil, fmt.Errorf("rpmrepo: %w", err)
	}
	r := &Repo{Dir: pool, KeyFile: filepath.Join(dir, "signing-key.asc"), Fingerprint: k.Fingerprint}
	if err := os.WriteFile(r.KeyFile, k.Public, 0o644); err != nil {
		return nil, err
	}
	return r, os.WriteFile(repomd+".key", k.Public, 0o644)
}

// buildRPM packs p's files into pool with rpmbuild: no dependencies read
// from the files, no stripping, gzip at level 1 (the test bed's binaries
// are large, and rpm's default compression would take a minute each).
func buildRPM(dir, pool string, p Package) (string, error) {
	top := filepath.Join(dir, "rpmbuild")
	var install, files strings.Builder
	for onHost, src := range p.Files {
		fmt.Fprintf(&install, "mkdir -p %%{buildroot}%s\ncp -p %s %%{buildroot}%s\n", filepath.Dir(onHost), src, onHost)
		fmt.Fprintf(&files, "%s\n", onHost)
	}
	spec := fmt.Sprintf(`Name: %s
Version: %s
Release: %s
Summary: %s for fleet's test bed
License: Apache-2.0
AutoReqProv: no
%%global debug_package %%{nil}
%%global __os_install_post %%{nil}
%%global _binary_payload w1.gzdio
%%global _build_id_links none

%%description
%s for fleet's test bed, packaged as pkgs.k8s.io packages it.

%%install
%s
%%files
%s`, p.Name, p.Version, p.Release, p.Name, p.Name, install.String(), files.String())
	specFile := filepath.Join(dir, p.Name+".spec")
	if err := os.WriteFile(specFile, []byte(spec), 0o644); err != nil {
		return "", err
	}
	if _, err := run(dir, "rpmbuild", "--quiet", "--define", "_topdir "+top, "--define", "_rpmdir "+pool,
		"--define", "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm", "-bb", specFile); err != nil {
		return "", err
	}
	matches, _ := filepath.Glob(filepath.Join(pool, p.Name+"-"+p.Version+"-"+p.Release+".*.rpm"))
	if len(matches) != 1 {
		return "", fmt.Errorf("rpmbuild made %v", matches)
	}
	return matches[0], nil
}

func run(dir, name string, args ...string) ([]byte, error) {
	out, err := signkey.Run(dir, name, args...)
	if err != nil {
		return nil, fmt.Errorf("rpmrepo: %w", err)
	}
	return out, nil
}

// FromDeb repackages Debian's .deb of name (the newest name_*.deb in
// debs) as an rpm: its files under usr/, the Debian version split into
// rpm's version and release (1.6.20~ds1-1+b1: 1.6.20~ds1, 1+b1). Its
// maintainer scripts are left out: the test bed needs the files.
func FromDeb(dir, name, debs string) (Package, error) {
	matches, _ := filepath.Glob(filepath.Join(debs, name+"_*.deb"))
	if len(matches) == 0 {
		return Package{}, fmt.Errorf("rpmrepo: no %s_*.deb in %s", name, debs)
	}
	deb := matches[len(matches)-1]
	fields := strings.Split(filepath.Base(deb), "_")
	if len(fields) != 3 {
		return Package{}, fmt.Errorf("rpmrepo: %s is not named package_version_arch.deb", deb)
	}
	p := Package{Name: name, Files: map[string]string{}}
	var ok bool
	if p.Version, p.Release, ok = cutLast(fields[1], "-"); !ok {
		p.Version, p.Release = fields[1], "1"
	}
	if _, v, ok := strings.Cut(p.Version, "%3a"); ok { // apt-get download's name of an epoch
		p.Version = v
	}
	tree := filepath.Join(dir, name)
	if err := os.RemoveAll(tree); err != nil {
		return Package{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Package{}, err
	}
	if _, err := run(dir, "dpkg-deb", "-x", deb, tree); err != nil {
		return Package{}, err
	}
	err := filepath.WalkDir(filepath.Join(tree, "usr"), func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, err := filepath.Rel(tree, path)
		p.Files["/"+rel] = path
		return err
	})
	return p, err
}

func cutLast(s, sep string) (before, after string, found bool) {
	if i := strings.LastIndex(s, sep); i >= 0 {
		return s[:i], s[i+len(sep):], true
	}
	return s, "", false
}
