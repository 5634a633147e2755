package playbooks

import (
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fleetops/fleet/internal/binaries"
	"github.com/fleetops/fleet/internal/cfssl"
	"github.com/fleetops/fleet/internal/nodeprep"
	"github.com/fleetops/fleet/inventory"
)

// preparedKernel is a host with everything the kernel step wants.
func preparedKernel() kernelState {
	st := kernelState{modules: map[string]bool{"overlay": true, "br_netfilter": true}, sysctls: map[string]string{},
		files: map[string][]byte{
			nodeprep.ModulesFile: []byte(nodeprep.ModulesConf()),
			nodeprep.SysctlFile:  []byte(nodeprep.SysctlConf()),
			fstab:                []byte("UUID=1 / ext4 defaults 0 1\n"),
		}}
	for _, s := range nodeprep.Sysctls {
		st.sysctls[s.Key] = s.Value
	}
	return st
}

func TestKernelTodo(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(*kernelState)
		allowSwap bool
		wants     string
	}{
		{"prepared", func(*kernelState) {}, false, ""},
		{"bare Debian", func(st *kernelState) {
			st.modules["br_netfilter"] = false
			st.sysctls["net.ipv4.ip_forward"] = "0"
			delete(st.files, nodeprep.ModulesFile)
			delete(st.files, nodeprep.SysctlFile)
			st.swaps = 1
			st.files[fstab] = []byte("UUID=2 none swap sw 0 0\n")
		}, false, "load br_netfilter; write /etc/modules-load.d/fleet-kubernetes.conf; set net.ipv4.ip_forward=1; write /etc/sysctl.d/90-fleet-kubernetes.conf; turn swap off (1 devices); comment swap out of /etc/fstab"},
		{"bare Debian, swap allowed", func(st *kernelState) {
			st.modules["br_netfilter"] = false
			st.swaps = 1
			st.files[fstab] = []byte("UUID=2 none swap sw 0 0\n")
		}, true, "load br_netfilter"},
		{"a sysctl file someone edited", func(st *kernelState) { st.files[nodeprep.SysctlFile] = []byte("net.ipv4.ip_forward = 1\n") }, false,
			"write /etc/sysctl.d/90-fleet-kubernetes.conf"},
		{"swap in fstab but off now", func(st *kernelState) { st.files[fstab] = []byte("/swapfile none swap sw 0 0\n") }, false,
			"comment swap out of /etc/fstab"},
		{"no fstab at all", func(st *kernelState) { delete(st.files, fstab) }, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := preparedKernel()
			tt.edit(&st)
			if got := strings.Join(kernelTodo(st, tt.allowSwap), "; "); got != tt.wants {
				t.Errorf("got  %q\nwant %q", got, tt.wants)
			}
		})
	}
}

func TestBinariesTodo(t *testing.T) {
	b := &binaries.Bundle{Arch: "amd64", Files: []binaries.File{
		{Name: "kubeadm", Dest: "/usr/bin/kubeadm", Size: 10, SHA256: "aa"},
		{Name: "kubelet", Dest: "/usr/bin/kubelet", Size: 20, SHA256: "bb"},
	}}
	allUnits := map[string][]byte{}
	for _, u := range units(b) {
		allUnits[u.path] = u.data
	}
	stamps := parseStamps("aa 10 100 /usr/bin/kubeadm v1.34.4\nbb 20 200 /usr/bin/kubelet v1.34.4\ngarbage line\n")
	tests := []struct {
		name              string
		stat              map[string]stamp
		units             map[string][]byte
		stamps            map[string]stamp
		missing, unitsOff int
	}{
		{"installed", map[string]stamp{"/usr/bin/kubeadm": {size: 10, mtime: 100}, "/usr/bin/kubelet": {size: 20, mtime: 200}}, allUnits, stamps, 0, 0},
		{"bare", map[string]stamp{}, map[string][]byte{}, map[string]stamp{}, 2, 2},
		{"kubelet replaced by hand (mtime moved)", map[string]stamp{"/usr/bin/kubeadm": {size: 10, mtime: 100}, "/usr/bin/kubelet": {size: 20, mtime: 201}}, allUnits, stamps, 1, 0},
		{"a kubeadm there, not fleet's", map[string]stamp{"/usr/bin/kubeadm": {size: 10, mtime: 100}, "/usr/bin/kubelet": {size: 20, mtime: 200}}, allUnits,
			parseStamps("bb 20 200 /usr/bin/kubelet v1.34.4\n"), 1, 0},
		{"drop-in edited", map[string]stamp{"/usr/bin/kubeadm": {size: 10, mtime: 100}, "/usr/bin/kubelet": {size: 20, mtime: 200}},
			map[string][]byte{nodeprep.KubeletUnitFile: []byte(nodeprep.KubeletUnit), nodeprep.KubeadmDropIn: []byte("[Service]\n")}, stamps, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			missing, stale := binariesTodo(binariesState{stat: tt.stat, stamps: tt.stamps, units: tt.units}, nodeKit("v1.34.4")(b))
			if len(missing) != tt.missing || len(stale) != tt.unitsOff {
				t.Errorf("missing %v, stale units %d; want %d, %d", missing, len(stale), tt.missing, tt.unitsOff)
			}
		})
	}
	if stamps["/usr/bin/kubeadm"].version != "v1.34.4" || len(stamps) != 2 {
		t.Errorf("stamps %+v", stamps)
	}
}

func TestInstallProblems(t *testing.T) {
	b := &binaries.Bundle{Dir: "/airgap", Arch: "amd64", Files: []binaries.File{{Name: "kubeadm"}, {Name: "containerd"}}}
	noRuntime := &binaries.Bundle{Dir: "/airgap", Arch: "amd64", Files: []binaries.File{{Name: "kubeadm"}}}
	worker := &inventory.Host{Name: "worker0", Role: inventory.RoleWorker}
	debian := hostFacts{distro: "Debian GNU/Linux 12 (bookworm)", id: "debian", arch: "x86_64", family: nodeprep.FamilyDebian, versions: map[string]string{}}
	tests := []struct {
		name   string
		host   *inventory.Host
		facts  func(hostFacts) hostFacts
		bundle *binaries.Bundle
		want   string
	}{
		{"bare Debian", worker, func(f hostFacts) hostFacts { return f }, b, ""},
		{"Alpine", worker, func(f hostFacts) hostFacts {
			f.distro, f.id, f.family = "Alpine Linux v3.20", "alpine", ""
			return f
		}, b, "Alpine Linux v3.20 (ID=alpine) is not a distribution fleet prepares"},
		{"arm64 host, amd64 folder", worker, func(f hostFacts) hostFacts { f.arch = "aarch64"; return f }, b, "the host is aarch64, the binaries of /airgap are for amd64"},
		{"another kubeadm", worker, func(f hostFacts) hostFacts {
			f.versions = map[string]string{"kubeadm": "v1.33.2", "kubelet": "v1.34.4"}
			return f
		}, b, "kubeadm v1.33.2 is installed, the inventory wants v1.34.4"},
		{"no runtime anywhere", worker, func(f hostFacts) hostFacts { return f }, noRuntime, "containerd is not installed and /airgap has none"},
		{"the host's own runtime", worker, func(f hostFacts) hostFacts { f.containerd = true; return f }, noRuntime, ""},
		{"load balancer is not prepared", &inventory.Host{Name: "lb", Role: inventory.RoleLoadBalancer}, func(f hostFacts) hostFacts {
			f.family = ""
			return f
		}, b, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Join(installProblems(tt.host, tt.facts(debian), tt.bundle, "v1.34.4"), "; ")
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseVersion(t *testing.T) {
	for _, tt := range []struct{ name, out, want string }{
		{"kubeadm", "v1.34.4\n", "v1.34.4"},
		{"kubelet", "Kubernetes v1.34.4\n", "v1.34.4"},
		{"kubectl", "Client Version: v1.34.4\nKustomize Version: v5.7.1\n", "v1.34.4"},
		{"kubeadm", "v1.34.4\nregistry.k8s.io/pause:3.10.1\n", "v1.34.4"},
		{"kubeadm", "", ""},
	} {
		if got := parseVersion(tt.name, tt.out); got != tt.want {
			t.Errorf("parseVersion(%s, %q) = %q, want %q", tt.name, tt.out, got, tt.want)
		}
	}
}

// TestVersionsScriptReadsTheStamp runs the preflight versions script in
// this machine's /bin/sh against fake binaries: a binary fleet stamped is
// not started (its version comes from the stamp), one it did not is asked.
func TestVersionsScriptReadsTheStamp(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	// Each fake records that it ran.
	for name, says := range map[string]string{"kubeadm": "v1.33.0", "kubelet": "Kubernetes v1.33.0"} {
		script := "#!/bin/sh\necho ran >> " + filepath.Join(dir, name+".ran") + "\necho '" + says + "'\n"
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(filepath.Join(bin, "kubeadm"))
	if err != nil {
		t.Fatal(err)
	}
	stampPath := filepath.Join(dir, "binaries.sha256")
	stampLine := "aa " + strconv.FormatInt(st.Size(), 10) + " " + strconv.FormatInt(st.ModTime().Unix(), 10) + " " + filepath.Join(bin, "kubeadm") + " v1.34.4\n"
	os.WriteFile(stampPath, []byte(stampLine), 0o644)
	script := strings.ReplaceAll(versionsScript, stampFile, stampPath)
	cmd := osexec.Command("/bin/sh", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+bin+":/usr/bin:/bin")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	got := parseVersions(string(out))
	if got["kubeadm"] != "v1.34.4" || got["kubelet"] != "v1.33.0" {
		t.Errorf("versions %v from %q", got, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "kubeadm.ran")); err == nil {
		t.Error("the stamped kubeadm was started")
	}
	if _, err := os.Stat(filepath.Join(dir, "kubelet.ran")); err != nil {
		t.Error("the unstamped kubelet was not asked")
	}
}

func TestReadPackagesStatus(t *testing.T) {
	key := []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n...\n")
	inv := &inventory.Inventory{Cluster: inventory.Cluster{KubernetesVersion: "v1.34.4"}}
	apt, dnf := managerFor(inv, nodeprep.FamilyDebian), managerFor(inv, nodeprep.FamilyRHEL)
	aptFiles := map[string][]byte{aptKeyFile: key, aptListFile: []byte(aptList("https://pkgs.k8s.io/core:/stable:/v1.34/deb/"))}
	dnfFiles := map[string][]byte{dnfKeyFile: key, dnfRepoFile: []byte(dnfRepo("https://pkgs.k8s.io/core:/stable:/v1.34/rpm/")), versionlockConf: []byte("[main]\n")}
	tests := []struct {
		name      string
		m         packageManager
		installed map[string]string
		held      []string
		files     map[string][]byte
		want      string
	}{
		{"installed and held", apt, map[string]string{"kubeadm": "1.34.4-1.1", "kubelet": "1.34.4-1.1", "kubectl": "1.34.4-1.1", "containerd": "1.6.20~ds1-1+deb12u3"},
			[]string{"kubeadm", "kubectl", "kubelet"}, aptFiles, ""},
		{"bare", apt, map[string]string{}, nil, map[string][]byte{},
			"write /etc/apt/keyrings/fleet-kubernetes.asc; write /etc/apt/sources.list.d/fleet-kubernetes.list; install kubeadm 1.34.4; install kubelet 1.34.4; install kubectl 1.34.4; install containerd; hold kubeadm; hold kubelet; hold kubectl"},
		{"1.34.40 is not 1.34.4", apt, map[string]string{"kubeadm": "1.34.40-1.1", "kubelet": "1.34.4-1.1", "kubectl": "1.34.4-1.1", "containerd": "1.7"},
			[]string{"kubeadm", "kubectl", "kubelet"}, aptFiles, "install kubeadm 1.34.4"},
		{"someone released the hold", apt, map[string]string{"kubeadm": "1.34.4-1.1", "kubelet": "1.34.4-1.1", "kubectl": "1.34.4-1.1", "containerd": "1.7"},
			[]string{"kubeadm", "kubectl"}, aptFiles, "hold kubelet"},
		{"dnf: installed and locked", dnf, map[string]string{"kubeadm": "1.34.4-150500.1.1", "kubelet": "1.34.4-150500.1.1", "kubectl": "1.34.4-150500.1.1", "containerd": "1.7.27-3.1.el9"},
			[]string{"kubeadm", "kubectl", "kubelet"}, dnfFiles, ""},
		{"dnf: a minimal host without the versionlock plugin", dnf, map[string]string{}, nil, map[string][]byte{},
			"write /etc/pki/rpm-gpg/fleet-kubernetes.asc; write /etc/yum.repos.d/fleet-kubernetes.repo; install python3-dnf-plugin-versionlock; install kubeadm 1.34.4; install kubelet 1.34.4; install kubectl 1.34.4; install containerd; hold kubeadm; hold kubelet; hold kubectl"},
		{"dnf: the apt files do not count", dnf, map[string]string{"kubeadm": "1.34.4-150500.1.1", "kubelet": "1.34.4-150500.1.1", "kubectl": "1.34.4-150500.1.1", "containerd": "1.7"},
			[]string{"kubeadm", "kubectl", "kubelet"}, aptFiles, "write /etc/pki/rpm-gpg/fleet-kubernetes.asc; write /etc/yum.repos.d/fleet-kubernetes.repo; install python3-dnf-plugin-versionlock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := packagesState{installed: tt.installed, held: map[string]bool{}, files: tt.files}
			for _, h := range tt.held {
				st.held[h] = true
			}
			if got := strings.Join(packagesTodo(st, tt.m, key, "v1.34.4"), "; "); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestParsePackagesState(t *testing.T) {
	out := "kubeadm 1.34.4-1.1 hi \nkubelet 1.34.4-1.1 ii \nkubectl  un \ncontainerd 1.6.20~ds1-1+deb12u3 rc \n" +
		heldMarker + "\nkubeadm\n" + rpmMarker + "\nno package provides kubeadm\n"
	st, err := parsePackagesState(out, map[string][]byte{aptKeyFile: []byte("key")}, "apt")
	if err != nil {
		t.Fatal(err)
	}
	if len(st.installed) != 2 || st.installed["kubeadm"] != "1.34.4-1.1" || st.installed["kubelet"] != "1.34.4-1.1" {
		t.Errorf("installed %v: want kubeadm (held) and kubelet; kubectl unknown, containerd removed", st.installed)
	}
	if !st.held["kubeadm"] || len(st.held) != 1 || string(st.files[aptKeyFile]) != "key" || st.files[aptListFile] != nil {
		t.Errorf("held %v, files %q", st.held, st.files)
	}
	if _, err := parsePackagesState("dpkg-query: error\n", nil, "apt"); err == nil {
		t.Error("a cut answer parsed")
	}
}

// TestParseDnfPackagesState: rpm's answer (what provides containerd may be
// Docker's containerd.io), holds from versionlock's list; dpkg's part,
// which a RHEL host with dpkg around may also print, is not read.
func TestParseDnfPackagesState(t *testing.T) {
	out := "kubeadm 1.34.4-1.1 ii \n" + heldMarker + "\nkubeadm\n" + rpmMarker +
		"\nkubeadm 1.34.4-150500.1.1\nno package provides kubelet\nkubectl 1.34.4-150500.1.1\ncontainerd.io 1.7.27-3.1.el9\n"
	lock := "# Added lock on Mon Dec  7 10:00:00 2026\nkubeadm-0:1.34.4-150500.1.1.*\n!kubelet-0:1.34.3-150500.1.1.*\nkubectl-1.34.4-150500.1.1.*\nkubectl-convert-0:1.34.4-1.*\n"
	st, err := parsePackagesState(out, map[string][]byte{versionlockList: []byte(lock)}, "dnf")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"kubeadm": "1.34.4-150500.1.1", "kubectl": "1.34.4-150500.1.1", "containerd": "1.7.27-3.1.el9"}
	if fmt.Sprint(st.installed) != fmt.Sprint(want) {
		t.Errorf("installed %v, want %v", st.installed, want)
	}
	if fmt.Sprint(st.held) != fmt.Sprint(map[string]bool{"kubeadm": true, "kubectl": true}) {
		t.Errorf("held %v: want kubeadm and kubectl (an excluded kubelet is not held)", st.held)
	}
}

// TestLBPackagesTodo: what the load balancer still needs from apt; an
// nginx that no package brought is the site's, and fleet leaves it.
func TestLBPackagesTodo(t *testing.T) {
	pkgs := []string{"nginx", "libnginx-mod-stream"}
	for _, tc := range []struct {
		name      string
		installed []string
		program   bool
		want      string
	}{
		{"bare", nil, false, "nginx,libnginx-mod-stream"},
		{"both installed", pkgs, true, ""},
		{"nginx without its stream module", []string{"nginx"}, true, "libnginx-mod-stream"},
		{"an nginx the site built", nil, true, ""},
		{"the module left after nginx was removed", []string{"libnginx-mod-stream"}, false, "nginx"},
		{"a VIP: keepalived too", pkgs, true, "keepalived"},
		{"a VIP beside the site's nginx", nil, true, "keepalived"},
		{"a VIP, all installed", append(slices.Clone(pkgs), "keepalived"), true, ""},
	} {
		st := lbPackagesState{installed: map[string]bool{}, program: tc.program}
		for _, p := range tc.installed {
			st.installed[p] = true
		}
		want := pkgs
		if strings.HasPrefix(tc.name, "a VIP") {
			want = append(slices.Clone(pkgs), "keepalived")
		}
		if got := strings.Join(lbPackagesTodo(st, want), ","); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestLBPackages: the load balancer's packages by the distribution's
// names; a dnf host's docker engine is never fleet's to install
// (preflight asks for it), its nginx is.
func TestLBPackages(t *testing.T) {
	container := &inventory.Inventory{LoadBalancer: &inventory.Host{Name: "lb", Nginx: &inventory.Nginx{RunAs: inventory.NginxContainer}}}
	vip := &inventory.Inventory{VIP: &inventory.VIP{}}
	for _, tc := range []struct {
		name     string
		inv      *inventory.Inventory
		family   string
		want     string
		installs bool
	}{
		{"Debian", &inventory.Inventory{}, nodeprep.FamilyDebian, "nginx: nginx libnginx-mod-stream", true},
		{"Rocky", &inventory.Inventory{}, nodeprep.FamilyRHEL, "nginx: nginx nginx-mod-stream", true},
		{"Rocky with a VIP", vip, nodeprep.FamilyRHEL, "nginx: nginx nginx-mod-stream keepalived", true},
		{"Debian, nginx in a container", container, nodeprep.FamilyDebian, "docker: docker.io", true},
		{"Rocky, nginx in a container", container, nodeprep.FamilyRHEL, "docker: docker-ce", false},
		{"Alpine", &inventory.Inventory{}, "", "nginx: nginx libnginx-mod-stream", false},
	} {
		manager := managerFor(tc.inv, tc.family).name
		program, pkgs := lbPackages(tc.inv, manager)
		if got := program + ": " + strings.Join(pkgs, " "); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
		if got := installsLB(tc.inv, tc.family); got != tc.installs {
			t.Errorf("%s: fleet installs the balancer: %v, want %v", tc.name, got, tc.installs)
		}
	}
}

// TestCAKit: the CA host gets cfssl and cfssljson, where its service runs
// them; the nodes never get them, and a node's byte count leaves them out.
func TestCAKit(t *testing.T) {
	b := &binaries.Bundle{Arch: "amd64", Files: []binaries.File{
		{Name: "cfssl", Dest: "/usr/local/bin/cfssl", Size: 5},
		{Name: "cfssljson", Dest: "/usr/local/bin/cfssljson", Size: 3},
		{Name: "kubeadm", Dest: "/usr/bin/kubeadm", Size: 10},
		{Name: "kubelet", Dest: "/usr/bin/kubelet", Size: 20},
	}}
	ca, node := caKit(b), nodeKit("v1.34.4")(b)
	names := func(files []binaries.File) (out []string) {
		for _, f := range files {
			out = append(out, f.Name)
		}
		return out
	}
	if got := strings.Join(names(ca.files), ","); got != "cfssl,cfssljson" || len(ca.units) != 0 {
		t.Errorf("CA kit: %s, %d units", got, len(ca.units))
	}
	if got := strings.Join(names(node.files), ","); got != "kubeadm,kubelet" || b.TotalSize() != 30 {
		t.Errorf("node kit: %s; a node is sent %d bytes", got, b.TotalSize())
	}
	linux, err := cfssl.PlatformFor("Linux")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"cfssl": linux.Cfssl, "cfssljson": linux.Cfssljson} {
		if dest, _ := binaries.Dest(name); dest != want {
			t.Errorf("%s goes to %s, the CA host's service runs %s", name, dest, want)
		}
	}
}
