// Package binaries reads the operator's folder of node binaries for an
// air-gapped install: which files it holds, their SHA-256 sums (checked
// against the folder's SHA256SUMS before anything is uploaded), the
// architecture they are built for, and where on a host each one goes.
package binaries

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// SumsFile is the checksum list every folder carries, in sha256sum's format.
const SumsFile = "SHA256SUMS"

// Destinations says where each binary fleet knows goes on a host: the
// Kubernetes ones where the distribution packages put them (kubeadm's
// kubelet drop-in names /usr/bin/kubelet), the container runtime where its
// release tarball's instructions do.
var Destinations = map[string]string{
	"kubeadm": "/usr/bin/kubeadm", "kubelet": "/usr/bin/kubelet", "kubectl": "/usr/bin/kubectl",
	"crictl":     "/usr/bin/crictl",
	"containerd": "/usr/local/bin/containerd", "containerd-shim-runc-v2": "/usr/local/bin/containerd-shim-runc-v2",
	"ctr": "/usr/local/bin/ctr", "runc": "/usr/local/sbin/runc",
	// The CA host's: where its cfssl service expects them on Linux.
	"cfssl": "/usr/local/bin/cfssl", "cfssljson": "/usr/local/bin/cfssljson",
}

// CAHostOnly are the binaries that go to the CA host, and only there.
var CAHostOnly = []string{"cfssl", "cfssljson"}

// CNIDir is where the CNI plugins go: a folder's "cni/NAME" files (the
// containernetworking/plugins release: bridge, loopback, portmap, ...),
// which the kubelet's network plugin and most CNI manifests need.
const CNIDir = "/opt/cni/bin"

// Dest is where the file the folder calls name goes on a host; ok is false
// for a name fleet does not install.
func Dest(name string) (dest string, ok bool) {
	if plugin, isCNI := strings.CutPrefix(name, "cni/"); isCNI {
		if plugin == "" || strings.ContainsAny(plugin, "/\\") || strings.HasPrefix(plugin, ".") {
			return "", false
		}
		return CNIDir + "/" + plugin, true
	}
	dest, ok = Destinations[name]
	return dest, ok
}

// Required are the binaries every folder must hold.
var Required = []string{"kubeadm", "kubelet", "kubectl"}

// File is one binary of the folder.
type File struct {
	Name   string // kubeadm
	Path   string // on this machine
	Dest   string // on a host
	Size   int64
	SHA256 string // hex
}

// Bundle is a checked folder: every file's sum matched SHA256SUMS.
type Bundle struct {
	Dir   string
	Arch  string // amd64 or arm64, from the ELF headers
	Files []File // sorted by name
}

// File returns the named binary, if the folder has it.
func (b *Bundle) File(name string) (File, bool) {
	i := slices.IndexFunc(b.Files, func(f File) bool { return f.Name == name })
	if i < 0 {
		return File{}, false
	}
	return b.Files[i], true
}

// NodeFiles are the files every master and worker gets.
func (b *Bundle) NodeFiles() []File {
	var files []File
	for _, f := range b.Files {
		if !slices.Contains(CAHostOnly, f.Name) {
			files = append(files, f)
		}
	}
	return files
}

// CAFiles are the files the CA host gets.
func (b *Bundle) CAFiles() []File {
	var files []File
	for _, f := range b.Files {
		if slices.Contains(CAHostOnly, f.Name) {
			files = append(files, f)
		}
	}
	return files
}

// TotalSize is what a node that has none of the files is sent.
func (b *Bundle) TotalSize() int64 {
	var n int64
	for _, f := range b.NodeFiles() {
		n += f.Size
	}
	return n
}

// ChecksumError is a file whose content is not what SHA256SUMS says.
type ChecksumError struct {
	Path      string
	Got, Want string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("%s: SHA-256 is %s, %s says %s", e.Path, e.Got, SumsFile, e.Want)
}

// Load reads dir's SHA256SUMS, hashes every file it lists and checks it,
// and reads each file's architecture. Any mismatch is an error naming the
// file; nothing is returned half-checked.
func Load(dir string) (*Bundle, error) {
	sumsPath := filepath.Join(dir, SumsFile)
	data, err := os.ReadFile(sumsPath)
	if err != nil {
		return nil, fmt.Errorf("binaries: %w", err)
	}
	want, err := ParseSums(sumsPath, data)
	if err != nil {
		return nil, err
	}
	for _, name := range Required {
		if _, ok := want[name]; !ok {
			return nil, fmt.Errorf("%s: no line for %s (the folder needs %s)", sumsPath, name, strings.Join(Required, ", "))
		}
	}
	b := &Bundle{Dir: dir}
	for name, sum := range want {
		f, arch, err := checkFile(filepath.Join(dir, name), sum)
		if err != nil {
			return nil, err
		}
		f.Name = name
		f.Dest, _ = Dest(name)
		if b.Arch == "" {
			b.Arch = arch
		} else if arch != b.Arch {
			return nil, fmt.Errorf("binaries: %s is built for %s, other files of %s for %s", f.Path, arch, dir, b.Arch)
		}
		b.Files = append(b.Files, f)
	}
	sort.Slice(b.Files, func(i, j int) bool { return b.Files[i].Name < b.Files[j].Name })
	return b, nil
}

// ParseSums reads sha256sum's output format ("<hex>  <name>", or with
// " *<name>" for binary mode); path is for the errors. Every name must be
// a binary fleet knows where to put.
func ParseSums(path string, data []byte) (map[string]string, error) {
	sums := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sum, name, ok := strings.Cut(line, " ")
		name = strings.TrimPrefix(strings.TrimLeft(name, " "), "*")
		if !ok || name == "" {
			return nil, fmt.Errorf("%s:%d: want \"<sha256>  <file>\", got %q", path, n, line)
		}
		if raw, err := hex.DecodeString(sum); err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("%s:%d: %q is not a SHA-256 sum", path, n, sum)
		}
		if _, known := Dest(name); !known {
			return nil, fmt.Errorf("%s:%d: fleet does not install %q (it knows %s, and cni/PLUGIN)", path, n, name, strings.Join(knownNames(), ", "))
		}
		if _, dup := sums[name]; dup {
			return nil, fmt.Errorf("%s:%d: %s listed twice", path, n, name)
		}
		sums[name] = strings.ToLower(sum)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(sums) == 0 {
		return nil, fmt.Errorf("%s: lists no file", path)
	}
	return sums, nil
}

func knownNames() []string {
	var names []string
	for n := range Destinations {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// checkFile hashes the file and compares the sum, and reads its ELF
// header for the architecture.
func checkFile(path, want string) (File, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return File{}, "", fmt.Errorf("binaries: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(h, f)
	if err != nil {
		return File{}, "", fmt.Errorf("binaries: %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return File{}, "", &ChecksumError{Path: path, Got: got, Want: want}
	}
	arch, err := archOf(f)
	if err != nil {
		return File{}, "", fmt.Errorf("binaries: %s: %w", path, err)
	}
	return File{Path: path, Size: size, SHA256: want}, arch, nil
}

// archOf names a Linux executable's architecture as Go and Kubernetes do.
func archOf(r io.ReaderAt) (string, error) {
	ef, err := elf.NewFile(r)
	if err != nil {
		return "", errors.New("not a Linux executable (no ELF header)")
	}
	switch ef.Machine {
	case elf.EM_X86_64:
		return "amd64", nil
	case elf.EM_AARCH64:
		return "arm64", nil
	}
	return "", fmt.Errorf("built for %s, fleet installs amd64 and arm64", ef.Machine)
}

// UnameArch is the architecture `uname -m` names, as Kubernetes names it:
// "" when fleet installs nothing for it.
func UnameArch(machine string) string {
	switch machine {
	case "x86_64", "amd64":
		return "amd64"
	case "aarch64", "arm64":
		return "arm64"
	}
	return ""
}
