package facts

import (
	osexec "os/exec"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    Facts
		wantErr string
	}{
		{
			name: "debian master",
			out:  "os=Linux\narch=x86_64\ndistro=Debian GNU/Linux 12 (bookworm)\ntool.kubeadm=/usr/bin/kubeadm\ntool.kubelet=/usr/bin/kubelet\ntool.kubectl=\ntool.nginx=\ntool.docker=\ntool.containerd=/usr/bin/containerd\ntool.keepalived=\nid=debian\nidlike=\ninit=systemd\n",
			want: Facts{OS: "Linux", Arch: "x86_64", Distro: "Debian GNU/Linux 12 (bookworm)", ID: "debian", Systemd: true,
				Paths: map[string]string{"kubeadm": "/usr/bin/kubeadm", "kubelet": "/usr/bin/kubelet", "kubectl": "", "nginx": "", "docker": "", "containerd": "/usr/bin/containerd", "keepalived": ""}},
		},
		{
			name: "illumos without os-release",
			out:  "os=SunOS\narch=i86pc\ndistro=unknown\ntool.kubeadm=\ntool.kubelet=\ntool.kubectl=\ntool.nginx=/opt/ooce/bin/nginx\ntool.docker=\ntool.containerd=\ntool.keepalived=/usr/sbin/keepalived\ninit=other\n",
			want: Facts{OS: "SunOS", Arch: "i86pc", Distro: "unknown",
				Paths: map[string]string{"kubeadm": "", "kubelet": "", "kubectl": "", "nginx": "/opt/ooce/bin/nginx", "docker": "", "containerd": "", "keepalived": "/usr/sbin/keepalived"}},
		},
		{name: "garbage", out: "Welcome to the machine!\n", wantErr: "unexpected line"},
		{name: "truncated", out: "os=Linux\narch=x86_64\n", wantErr: "lacks tool"},
		{name: "empty", out: "", wantErr: "lacks os or arch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want error %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.OS != tt.want.OS || got.Arch != tt.want.Arch || got.Distro != tt.want.Distro || got.ID != tt.want.ID || got.IDLike != tt.want.IDLike ||
				got.Systemd != tt.want.Systemd || len(got.Paths) != len(tt.want.Paths) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			for k, v := range tt.want.Paths {
				if got.Paths[k] != v {
					t.Errorf("%s = %q, want %q", k, got.Paths[k], v)
				}
			}
		})
	}
}

// TestCommandRunsUnderDash runs the probe in the machine's /bin/sh (dash on
// Debian, as on the hosts) and parses what it prints.
func TestCommandRunsUnderDash(t *testing.T) {
	out, err := osexec.Command("/bin/sh", "-c", Command()).Output()
	if err != nil {
		t.Fatal(err)
	}
	f, err := Parse(string(out))
	if err != nil {
		t.Fatal(err)
	}
	if f.OS != "Linux" {
		t.Errorf("os %q", f.OS)
	}
	// The same answer as uname's, however the probe read it.
	if m, err := osexec.Command("uname", "-m").Output(); err != nil || f.Arch != strings.TrimSpace(string(m)) {
		t.Errorf("arch %q, uname -m says %q (%v)", f.Arch, m, err)
	}
	if f.ID == "" {
		t.Errorf("no os-release ID read from this machine")
	}
}
