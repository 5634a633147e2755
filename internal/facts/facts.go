// Package facts says what a host is: kernel, architecture, distribution and
// which of the tools fleet drives are installed. One command gathers it all,
// so probing a host costs one round trip.
package facts

import (
	"fmt"
	"strings"
)

// Tools fleet looks for on every host.
var Tools = []string{"kubeadm", "kubelet", "kubectl", "nginx", "docker", "containerd", "keepalived"}

// Facts describe one host.
type Facts struct {
	OS     string // uname -s: Linux, SunOS
	Arch   string // uname -m: x86_64, aarch64, i86pc
	Distro string // PRETTY_NAME of os-release, or "unknown"
	ID     string // os-release's ID: debian, rocky, alpine
	IDLike string // os-release's ID_LIKE: "rhel centos fedora"
	// Systemd is whether systemd runs the host (it has /run/systemd/system).
	Systemd bool
	// CgroupV1: the host mounts cgroups v1 (legacy or hybrid), which
	// kubelets of v1.35 and later refuse by default.
	CgroupV1 bool
	Paths    map[string]string // tool -> path, "" when absent
}

// Has reports whether tool is installed.
func (f Facts) Has(tool string) bool { return f.Paths[tool] != "" }

// Command is the probe: POSIX sh, no bashisms, works on Linux and illumos.
func Command() string {
	var b strings.Builder
	// Linux says both in /proc (arch since 6.1): no process. Elsewhere one
	// uname for both: every process costs on a busy host.
	b.WriteString(`if read -r o </proc/sys/kernel/ostype && read -r m </proc/sys/kernel/arch; then set -- "$o" "$m"; else set -- $(uname -sm); fi 2>/dev/null; `)
	b.WriteString(`echo "os=$1"; echo "arch=$2"; `)
	b.WriteString(`if [ -r /etc/os-release ]; then . /etc/os-release; echo "distro=$PRETTY_NAME"; echo "id=$ID"; echo "idlike=$ID_LIKE"; else echo "distro=unknown"; fi; `)
	b.WriteString(`if [ -d /run/systemd/system ]; then echo init=systemd; else echo init=other; fi; `)
	// cgroups v2 has cgroup.controllers at the root (a test: no fork).
	b.WriteString(`if [ -e /sys/fs/cgroup/cgroup.controllers ]; then echo cgroup=2; elif [ -d /sys/fs/cgroup ]; then echo cgroup=1; fi; `)
	// command -v prints the path itself: no subshell (a fork) per tool.
	b.WriteString(`for t in ` + strings.Join(Tools, " ") + `; do printf 'tool.%s=' "$t"; command -v "$t" 2>/dev/null || echo; done`)
	return b.String()
}

// Parse reads the probe's output.
func Parse(out string) (Facts, error) {
	f := Facts{Paths: map[string]string{}}
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return Facts{}, fmt.Errorf("facts: unexpected line %q", line)
		}
		switch {
		case k == "os":
			f.OS = v
		case k == "arch":
			f.Arch = v
		case k == "distro":
			f.Distro = v
		case k == "id":
			f.ID = v
		case k == "idlike":
			f.IDLike = v
		case k == "init":
			f.Systemd = v == "systemd"
		case k == "cgroup":
			f.CgroupV1 = v == "1"
		case strings.HasPrefix(k, "tool."):
			f.Paths[strings.TrimPrefix(k, "tool.")] = v
		}
	}
	if f.OS == "" || f.Arch == "" {
		return Facts{}, fmt.Errorf("facts: probe output lacks os or arch: %q", out)
	}
	for _, t := range Tools {
		if _, ok := f.Paths[t]; !ok {
			return Facts{}, fmt.Errorf("facts: probe output lacks tool %s", t)
		}
	}
	return f, nil
}
