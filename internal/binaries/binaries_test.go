package binaries

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

const zeroSum = "0000000000000000000000000000000000000000000000000000000000000000"

func TestParseSums(t *testing.T) {
	tests := []struct {
		name, in string
		want     map[string]string
		wantErr  string
	}{
		{name: "text and binary mode", in: zeroSum + "  kubeadm\n" + strings.Replace(zeroSum, "0", "A", 1) + " *kubelet\n",
			want: map[string]string{"kubeadm": zeroSum, "kubelet": strings.Replace(zeroSum, "0", "a", 1)}},
		{name: "comments and blank lines", in: "# made by the release job\n\n" + zeroSum + "  kubectl\n", want: map[string]string{"kubectl": zeroSum}},
		{name: "CNI plugins", in: zeroSum + "  cni/bridge\n" + zeroSum + "  cni/portmap\n", want: map[string]string{"cni/bridge": zeroSum, "cni/portmap": zeroSum}},
		{name: "a CNI name that leaves the folder", in: zeroSum + "  cni/../../etc/passwd\n", wantErr: `SUMS:1: fleet does not install "cni/../../etc/passwd"`},
		{name: "unknown file", in: zeroSum + "  kubeadm\n" + zeroSum + "  notes.txt\n", wantErr: `SUMS:2: fleet does not install "notes.txt"`},
		{name: "short sum", in: "abc  kubeadm\n", wantErr: `SUMS:1: "abc" is not a SHA-256 sum`},
		{name: "no name", in: zeroSum + "\n", wantErr: "SUMS:1: want"},
		{name: "twice", in: zeroSum + "  kubeadm\n" + zeroSum + "  kubeadm\n", wantErr: "SUMS:2: kubeadm listed twice"},
		{name: "empty", in: "\n", wantErr: "lists no file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseSums("SUMS", []byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want error %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// folder writes a bundle of copies of this test's own executable (a real
// ELF file of this machine's architecture) under the given names.
func folder(t *testing.T, names ...string) string {
	t.Helper()
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var sums strings.Builder
	for i, n := range names {
		data := append(append([]byte{}, self...), byte(i)) // each file its own sum
		os.MkdirAll(filepath.Dir(filepath.Join(dir, n)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, n), data, 0o755); err != nil {
			t.Fatal(err)
		}
		s := sha256.Sum256(data)
		fmt.Fprintf(&sums, "%s  %s\n", hex.EncodeToString(s[:]), n)
	}
	if err := os.WriteFile(filepath.Join(dir, SumsFile), []byte(sums.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestLoad(t *testing.T) {
	dir := folder(t, "kubeadm", "kubelet", "kubectl", "containerd", "cni/bridge")
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b.Arch != runtime.GOARCH {
		t.Errorf("arch %q, want %q", b.Arch, runtime.GOARCH)
	}
	var names []string
	for _, f := range b.Files {
		names = append(names, f.Name+"→"+f.Dest)
		if f.Size == 0 || len(f.SHA256) != 64 {
			t.Errorf("%s: size %d, sum %q", f.Name, f.Size, f.SHA256)
		}
	}
	want := "cni/bridge→/opt/cni/bin/bridge containerd→/usr/local/bin/containerd kubeadm→/usr/bin/kubeadm kubectl→/usr/bin/kubectl kubelet→/usr/bin/kubelet"
	if strings.Join(names, " ") != want {
		t.Errorf("files %s, want %s", strings.Join(names, " "), want)
	}
	// Each copy is the executable plus one byte: all the same size.
	if c, ok := b.File("containerd"); !ok || b.TotalSize() != 5*c.Size {
		t.Errorf("total %d for 5 files of %d bytes (containerd found: %v)", b.TotalSize(), c.Size, ok)
	}
}

func TestLoadRefuses(t *testing.T) {
	t.Run("changed file", func(t *testing.T) {
		dir := folder(t, "kubeadm", "kubelet", "kubectl")
		f, err := os.OpenFile(filepath.Join(dir, "kubelet"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte("tampered"))
		f.Close()
		_, err = Load(dir)
		var ce *ChecksumError
		if !errors.As(err, &ce) || !strings.HasSuffix(ce.Path, "/kubelet") || ce.Got == ce.Want || len(ce.Got) != 64 {
			t.Fatalf("got %v, want a checksum error for kubelet with both sums", err)
		}
		if !strings.Contains(err.Error(), ce.Got) || !strings.Contains(err.Error(), ce.Want) {
			t.Errorf("message %q lacks a sum", err)
		}
	})
	t.Run("missing kubectl", func(t *testing.T) {
		_, err := Load(folder(t, "kubeadm", "kubelet"))
		if err == nil || !strings.Contains(err.Error(), "no line for kubectl") {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("not an executable", func(t *testing.T) {
		dir := folder(t, "kubeadm", "kubelet", "kubectl")
		script := []byte("#!/bin/sh\necho v1.34.4\n")
		os.WriteFile(filepath.Join(dir, "kubeadm"), script, 0o755)
		sums, _ := os.ReadFile(filepath.Join(dir, SumsFile))
		s := sha256.Sum256(script)
		lines := strings.SplitN(string(sums), "\n", 2)
		os.WriteFile(filepath.Join(dir, SumsFile), []byte(hex.EncodeToString(s[:])+"  kubeadm\n"+lines[1]), 0o644)
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), "kubeadm: not a Linux executable") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestUnameArch(t *testing.T) {
	for in, want := range map[string]string{"x86_64": "amd64", "aarch64": "arm64", "armv7l": "", "i86pc": ""} {
		if got := UnameArch(in); got != want {
			t.Errorf("UnameArch(%q) = %q, want %q", in, got, want)
		}
	}
}
