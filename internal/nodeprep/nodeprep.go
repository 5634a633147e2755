// Package nodeprep holds what a bare host needs before kubeadm can run on
// it, as files and values: which distributions fleet prepares, the kernel
// modules and sysctls Kubernetes networking needs, swap taken out of
// /etc/fstab, containerd's configuration, and the systemd units of the
// kubelet and containerd when they come as plain binaries. It has no I/O:
// playbooks compares these with what a host has and writes the difference.
package nodeprep

import (
	"fmt"
	"regexp"
	"strings"
)

// Families of distribution fleet prepares, by their package manager.
const (
	FamilyDebian = "debian" // apt: Debian, Ubuntu
	FamilyRHEL   = "rhel"   // dnf: RHEL, Rocky, Alma, Fedora, CentOS Stream
)

var familyIDs = map[string]string{
	"debian": FamilyDebian, "ubuntu": FamilyDebian,
	"rhel": FamilyRHEL, "rocky": FamilyRHEL, "almalinux": FamilyRHEL, "fedora": FamilyRHEL, "centos": FamilyRHEL,
}

// Family reads os-release's ID and ID_LIKE: "" when fleet does not
// prepare that distribution.
func Family(id, idLike string) string {
	for _, w := range append([]string{id}, strings.Fields(idLike)...) {
		if f, ok := familyIDs[strings.ToLower(strings.Trim(w, `"`))]; ok {
			return f
		}
	}
	return ""
}

// Modules are the kernel modules containerd and kube-proxy need: overlay
// for the image snapshots, br_netfilter so bridged pod traffic passes
// iptables.
var Modules = []string{"overlay", "br_netfilter"}

// Sysctls are the values Kubernetes networking needs, in file order.
var Sysctls = []struct{ Key, Value string }{
	{"net.bridge.bridge-nf-call-iptables", "1"},
	{"net.bridge.bridge-nf-call-ip6tables", "1"},
	{"net.ipv4.ip_forward", "1"},
}

// Where the kernel settings persist.
const (
	ModulesFile = "/etc/modules-load.d/fleet-kubernetes.conf"
	SysctlFile  = "/etc/sysctl.d/90-fleet-kubernetes.conf"
)

const header = "# written by fleet: Kubernetes needs these; fleet apply rewrites this file\n"

// ModulesConf is ModulesFile's content.
func ModulesConf() string { return header + strings.Join(Modules, "\n") + "\n" }

// SysctlConf is SysctlFile's content.
func SysctlConf() string {
	var b strings.Builder
	b.WriteString(header)
	for _, s := range Sysctls {
		fmt.Fprintf(&b, "%s = %s\n", s.Key, s.Value)
	}
	return b.String()
}

// SysctlPath is where key lives under /proc/sys.
func SysctlPath(key string) string { return "/proc/sys/" + strings.ReplaceAll(key, ".", "/") }

var swapLine = regexp.MustCompile(`^\s*[^#\s]\S*\s+\S+\s+swap\s`)

// CommentSwap comments out every active swap line of an fstab, so swap
// stays off after a reboot; changed is false when there was none.
func CommentSwap(fstab string) (out string, changed bool) {
	lines := strings.SplitAfter(fstab, "\n")
	for i, l := range lines {
		if swapLine.MatchString(l) {
			lines[i] = "#fleet: the kubelet needs swap off# " + l
			changed = true
		}
	}
	return strings.Join(lines, ""), changed
}

// Containerd's files.
const (
	ContainerdConfigFile = "/etc/containerd/config.toml"
	ContainerdUnitFile   = "/etc/systemd/system/containerd.service"
)

// RegistryHostsDir is containerd's registry configuration folder
// (config_path): one hosts.toml per registry host. containerd 1.5 and
// later read it; 2.0 removed the inline registry.mirrors it replaces.
const RegistryHostsDir = "/etc/containerd/certs.d"

// WrittenByFleet begins every file fleet owns on a host: fleet rewrites
// it, and removes it when the inventory no longer asks for it.
const WrittenByFleet = "# written by fleet"

// ContainerdConfig is containerd's configuration for a kubelet with the
// systemd cgroup driver (kubeadm's default since v1.22), the sandbox image
// kubeadm pulls for its version, and its registries configured from
// RegistryHostsDir (the mirrors: HostsTOML), so that a mirror added or
// removed later needs no restart. Version 2, which containerd 2.x still
// reads (it migrates it in memory).
func ContainerdConfig(pauseImage string) string {
	var b strings.Builder
	b.WriteString(WrittenByFleet + "; fleet apply rewrites this file\nversion = 2\n\n")
	b.WriteString("[plugins.\"io.containerd.grpc.v1.cri\"]\n")
	fmt.Fprintf(&b, "  sandbox_image = %q\n\n", pauseImage)
	b.WriteString("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n\n")
	b.WriteString("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n\n")
	fmt.Fprintf(&b, "[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = %q\n", RegistryHostsDir)
	return b.String()
}

// HostsFile is where a registry's hosts.toml goes ("registry.k8s.io",
// "myregistry:5000").
func HostsFile(registry string) string { return RegistryHostsDir + "/" + registry + "/hosts.toml" }

// HostsTOML is a registry's hosts.toml: its mirrors tried in order for
// pulls, then the registry itself (server) when none answers.
func HostsTOML(registry string, mirrors []string) string {
	var b strings.Builder
	b.WriteString(WrittenByFleet + " from the inventory's cluster.registryMirrors\n")
	fmt.Fprintf(&b, "server = %q\n", registryServer(registry))
	for _, m := range mirrors {
		fmt.Fprintf(&b, "\n[host.%q]\n  capabilities = [\"pull\", \"resolve\"]\n", m)
	}
	return b.String()
}

// registryServer is the URL a registry name's images come from: Docker
// Hub's name is not its API host.
func registryServer(registry string) string {
	if registry == "docker.io" {
		return "https://registry-1.docker.io"
	}
	return "https://" + registry
}

// RegistryFiles are the hosts.toml files for the inventory's mirrors,
// path → content.
func RegistryFiles(mirrors map[string][]string) map[string]string {
	files := map[string]string{}
	for registry, urls := range mirrors {
		files[HostsFile(registry)] = HostsTOML(registry, urls)
	}
	return files
}

// ContainerdUnit is containerd's systemd unit when it comes as a binary
// (the one its release ships, with the binary where fleet puts it).
const ContainerdUnit = `# written by fleet
[Unit]
Description=containerd container runtime
After=network.target local-fs.target

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/containerd
Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
`

// The kubelet's files when it comes as a binary.
const (
	KubeletUnitFile = "/etc/systemd/system/kubelet.service"
	KubeadmDropIn   = "/etc/systemd/system/kubelet.service.d/10-kubeadm.conf"
)

// KubeletUnit is the kubelet's unit as the Kubernetes packages ship it.
const KubeletUnit = `# written by fleet
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
`

// KubeadmDropInConf is the drop-in through which kubeadm hands the kubelet
// its kubeconfigs, config file and flags.
const KubeadmDropInConf = `# written by fleet
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
`

// PauseImage picks the sandbox image from `kubeadm config images list`.
func PauseImage(images string) (string, error) {
	for _, l := range strings.Fields(images) {
		if i := strings.LastIndexByte(l, '/'); strings.HasPrefix(l[i+1:], "pause:") {
			return l, nil
		}
	}
	return "", fmt.Errorf("no pause image in kubeadm's list %q", strings.TrimSpace(images))
}
