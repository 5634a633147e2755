package nodeprep

import (
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestFamily(t *testing.T) {
	tests := []struct{ id, like, want string }{
		{"debian", "", FamilyDebian},
		{"ubuntu", "debian", FamilyDebian},
		{"linuxmint", "ubuntu debian", FamilyDebian},
		{"rocky", `"rhel centos fedora"`, FamilyRHEL},
		{"almalinux", "rhel centos fedora", FamilyRHEL},
		{"fedora", "", FamilyRHEL},
		{"alpine", "", ""},
		{"arch", "", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		if got := Family(tt.id, tt.like); got != tt.want {
			t.Errorf("Family(%q, %q) = %q, want %q", tt.id, tt.like, got, tt.want)
		}
	}
}

func TestCommentSwap(t *testing.T) {
	tests := []struct {
		name, in, want string
		changed        bool
	}{
		{name: "swap partition and file",
			in:      "UUID=1 / ext4 defaults 0 1\nUUID=2 none swap sw 0 0\n/swapfile none\tswap defaults 0 0\n",
			want:    "UUID=1 / ext4 defaults 0 1\n#fleet: the kubelet needs swap off# UUID=2 none swap sw 0 0\n#fleet: the kubelet needs swap off# /swapfile none\tswap defaults 0 0\n",
			changed: true},
		{name: "already commented", in: "UUID=1 / ext4 defaults 0 1\n# UUID=2 none swap sw 0 0\n", want: "UUID=1 / ext4 defaults 0 1\n# UUID=2 none swap sw 0 0\n"},
		{name: "a mount point named swap is not swap", in: "/dev/sdb1 /swap ext4 defaults 0 2\n", want: "/dev/sdb1 /swap ext4 defaults 0 2\n"},
		{name: "no final newline", in: "/dev/sda2 none swap sw 0 0", want: "#fleet: the kubelet needs swap off# /dev/sda2 none swap sw 0 0", changed: true},
		{name: "empty", in: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, changed := CommentSwap(tt.in)
			if got != tt.want || changed != tt.changed {
				t.Fatalf("got %q (changed %v), want %q (changed %v)", got, changed, tt.want, tt.changed)
			}
			if again, ch := CommentSwap(got); again != got || ch {
				t.Errorf("second pass changed it: %q", again)
			}
		})
	}
}

func TestPauseImage(t *testing.T) {
	list := "registry.k8s.io/kube-apiserver:v1.34.4\nregistry.k8s.io/coredns/coredns:v1.12.1\nregistry.k8s.io/pause:3.10.1\nregistry.k8s.io/etcd:3.6.5-0\n"
	if got, err := PauseImage(list); err != nil || got != "registry.k8s.io/pause:3.10.1" {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := PauseImage("registry.k8s.io/kube-apiserver:v1.34.4\n"); err == nil || !strings.Contains(err.Error(), "no pause image") {
		t.Errorf("got %v", err)
	}
}

func TestContainerdConfig(t *testing.T) {
	c := ContainerdConfig("registry.k8s.io/pause:3.10.1")
	for _, want := range []string{
		"SystemdCgroup = true",
		`sandbox_image = "registry.k8s.io/pause:3.10.1"`,
		"[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\"\n",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %q:\n%s", want, c)
		}
	}
	// containerd 2.x refuses the inline mirrors: never written.
	if strings.Contains(c, "registry.mirrors") {
		t.Errorf("inline mirrors in the config:\n%s", c)
	}
	checkWithContainerd(t, c)
}

// checkWithContainerd parses the config with the real containerd of
// Debian's package (setup.sh fetches it for the test bed's mirror), when
// it is there: `containerd config dump` refuses a config it cannot read.
func checkWithContainerd(t *testing.T, config string) {
	t.Helper()
	debs, _ := filepath.Glob("/var/cache/fleet-sim/debs/containerd_*.deb")
	if len(debs) == 0 {
		if os.Getenv("FLEET_INTEGRATION") == "1" {
			t.Fatal("no containerd .deb in /var/cache/fleet-sim/debs: run scripts/setup.sh")
		}
		t.Skip("no containerd .deb (scripts/setup.sh fetches it)")
	}
	dir := t.TempDir()
	if out, err := osexec.Command("dpkg-deb", "-x", debs[0], dir).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v\n%s", err, out)
	}
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := osexec.Command(filepath.Join(dir, "usr/bin/containerd"), "--config", path, "config", "dump").CombinedOutput()
	if err != nil {
		t.Fatalf("containerd config dump: %v\n%s", err, out)
	}
	for _, want := range []string{`config_path = "/etc/containerd/certs.d"`, `sandbox_image = "registry.k8s.io/pause:3.10.1"`, "SystemdCgroup = true"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("containerd read the config without %s:\n%s", want, out)
		}
	}
}

func TestRegistryFiles(t *testing.T) {
	files := RegistryFiles(map[string][]string{
		"registry.k8s.io":    {"https://mirror.example:5000"},
		"docker.io":          {"https://a.example", "http://b.example"},
		"registry.site:5000": {"https://c.example"},
	})
	want := map[string]string{
		"/etc/containerd/certs.d/registry.k8s.io/hosts.toml": `# written by fleet from the inventory's cluster.registryMirrors
server = "https://registry.k8s.io"

[host."https://mirror.example:5000"]
  capabilities = ["pull", "resolve"]
`,
		"/etc/containerd/certs.d/docker.io/hosts.toml": `# written by fleet from the inventory's cluster.registryMirrors
server = "https://registry-1.docker.io"

[host."https://a.example"]
  capabilities = ["pull", "resolve"]

[host."http://b.example"]
  capabilities = ["pull", "resolve"]
`,
		"/etc/containerd/certs.d/registry.site:5000/hosts.toml": `# written by fleet from the inventory's cluster.registryMirrors
server = "https://registry.site:5000"

[host."https://c.example"]
  capabilities = ["pull", "resolve"]
`,
	}
	if len(files) != len(want) {
		t.Errorf("%d files, want %d: %v", len(files), len(want), files)
	}
	for path, content := range want {
		if files[path] != content {
			t.Errorf("%s:\n%s\nwant\n%s", path, files[path], content)
		}
	}
}

func TestSysctlConf(t *testing.T) {
	c := SysctlConf()
	for _, s := range Sysctls {
		if !strings.Contains(c, s.Key+" = "+s.Value+"\n") {
			t.Errorf("%s missing from %q", s.Key, c)
		}
	}
	if SysctlPath("net.ipv4.ip_forward") != "/proc/sys/net/ipv4/ip_forward" {
		t.Error(SysctlPath("net.ipv4.ip_forward"))
	}
}
