package nodeprep

import (
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
	c := ContainerdConfig("registry.k8s.io/pause:3.10.1", map[string][]string{
		"registry.k8s.io": {"https://mirror.example:5000"},
		"docker.io":       {"https://a.example", "https://b.example"},
	})
	for _, want := range []string{
		"SystemdCgroup = true",
		`sandbox_image = "registry.k8s.io/pause:3.10.1"`,
		"[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors.\"docker.io\"]\n  endpoint = [\"https://a.example\", \"https://b.example\"]",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("config lacks %q:\n%s", want, c)
		}
	}
	if strings.Index(c, `"docker.io"`) > strings.Index(c, `"registry.k8s.io"`) {
		t.Error("mirrors not in a stable order")
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
