package playbooks

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetops/fleet/internal/kubeadm"
	"github.com/fleetops/fleet/inventory"
)

// etcdManifest is kubeadm's etcd static pod, trimmed to what matters.
func etcdManifest(flags ...string) []byte {
	return []byte(`apiVersion: v1
kind: Pod
metadata:
  name: etcd
  namespace: kube-system
spec:
  containers:
  - name: etcd
    image: registry.k8s.io/etcd:3.6.4-0
    command:
    - etcd
` + "    - " + strings.Join(flags, "\n    - ") + "\n")
}

func TestEtcdMemberOf(t *testing.T) {
	for _, tc := range []struct {
		name     string
		manifest []byte
		want     EtcdMember
		wantErr  string
	}{
		{"kubeadm's flags", etcdManifest("--advertise-client-urls=https://10.0.0.11:2379", "--data-dir=/var/lib/etcd",
			"--initial-advertise-peer-urls=https://10.0.0.11:2380", "--initial-cluster=master1=https://10.0.0.11:2380", "--name=master1"),
			EtcdMember{Name: "master1", PeerURL: "https://10.0.0.11:2380", DataDir: "/var/lib/etcd"}, ""},
		{"another data folder", etcdManifest("--name=m2", "--initial-advertise-peer-urls=https://10.0.0.12:2380", "--data-dir=/srv/etcd"),
			EtcdMember{Name: "m2", PeerURL: "https://10.0.0.12:2380", DataDir: "/srv/etcd"}, ""},
		{"no name", etcdManifest("--initial-advertise-peer-urls=https://10.0.0.11:2380"), EtcdMember{}, "no --name"},
		{"two peer URLs", etcdManifest("--name=m", "--initial-advertise-peer-urls=https://a:2380,https://b:2380"), EtcdMember{}, "want one peer URL"},
		{"the root as data folder", etcdManifest("--name=m", "--initial-advertise-peer-urls=https://a:2380", "--data-dir=/"), EtcdMember{}, "--data-dir"},
		{"no etcd in it", []byte("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: x\n    command: [kube-apiserver]\n"), EtcdMember{}, "no container runs etcd"},
		{"not YAML", []byte("{{"), EtcdMember{}, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := etcdMemberOf(tc.manifest)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestRestoreJudge: what a master must hold for a restore, and the reason
// each lack refuses it.
func TestRestoreJudge(t *testing.T) {
	ca, otherCA := certPEM(t, time.Now().AddDate(10, 0, 0)), certPEM(t, time.Now().AddDate(10, 0, 0))
	caHash, err := kubeadm.CAHash(ca)
	if err != nil {
		t.Fatal(err)
	}
	host := &inventory.Host{Name: "master2", Address: "10.0.0.12"}
	good := etcdManifest("--name=master2", "--initial-advertise-peer-urls=https://10.0.0.12:2380", "--data-dir=/var/lib/etcd")
	for _, tc := range []struct {
		name        string
		view        restoreView
		wantMissing []string
		wantErr     string
	}{
		{"everything in place", restoreView{ca: ca, etcdManifest: good, etcdutl: true}, nil, ""},
		{"lost its CA and keys: put back", restoreView{etcdManifest: good, etcdutl: true, missing: []string{"ca.crt", "sa.key"}}, []string{"ca.crt", "sa.key"}, ""},
		{"another cluster's CA", restoreView{ca: otherCA, etcdManifest: good, etcdutl: true}, nil, "the backup is of another cluster"},
		{"no etcd member", restoreView{ca: ca, etcdutl: true}, nil, "no etcd manifest"},
		{"the inventory's address differs", restoreView{ca: ca, etcdutl: true,
			etcdManifest: etcdManifest("--name=master2", "--initial-advertise-peer-urls=https://10.0.0.99:2380")}, nil, "the inventory's address gives https://10.0.0.12:2380"},
		{"no etcdutl", restoreView{ca: ca, etcdManifest: good}, nil, "no etcdutl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, missing, err := tc.view.judge(host, caHash)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			want := EtcdMember{Host: "master2", Name: "master2", PeerURL: "https://10.0.0.12:2380", DataDir: "/var/lib/etcd"}
			if err != nil || m != want || strings.Join(missing, ",") != strings.Join(tc.wantMissing, ",") {
				t.Fatalf("got %+v %v, %v; want %+v %v", m, missing, err, want, tc.wantMissing)
			}
		})
	}
}

func TestReadSharedPKI(t *testing.T) {
	archive := func(t *testing.T, names ...string) string {
		t.Helper()
		var buf bytes.Buffer
		z := gzip.NewWriter(&buf)
		tw := tar.NewWriter(z)
		for _, n := range names {
			body := []byte("content of " + n)
			if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o600, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
				t.Fatal(err)
			}
			tw.Write(body)
		}
		tw.Close()
		z.Close()
		path := filepath.Join(t.TempDir(), "pki.tar.gz")
		if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	var whole []string
	for _, n := range sharedPKI {
		whole = append(whole, "pki/"+n)
	}
	files, err := readSharedPKI(archive(t, append(whole, "pki/apiserver.key", "pki/etcd/peer.key")...))
	if err != nil || len(files) != len(sharedPKI) || string(files["etcd/ca.key"]) != "content of pki/etcd/ca.key" {
		t.Fatalf("the shared files of a whole archive: %v, %d files", err, len(files))
	}
	if _, ok := files["apiserver.key"]; ok {
		t.Error("a master's own key was taken as shared")
	}
	if _, err := readSharedPKI(archive(t, whole[1:]...)); err == nil || !strings.Contains(err.Error(), "has no pki/ca.crt") {
		t.Errorf("an archive without ca.crt: %v", err)
	}
}

func TestInitialCluster(t *testing.T) {
	p := &RestorePlan{Members: []EtcdMember{{Name: "m1", PeerURL: "https://10.0.0.11:2380"}, {Name: "m2", PeerURL: "https://10.0.0.12:2380"}}}
	if got, want := p.InitialCluster(), "m1=https://10.0.0.11:2380,m2=https://10.0.0.12:2380"; got != want {
		t.Errorf("InitialCluster() = %q, want %q", got, want)
	}
}

// TestProcessGoneScript runs the script with this machine's sh and procps
// against a process of a name of its own: it waits while the process runs
// and says so when it outlives the bound.
func TestProcessGoneScript(t *testing.T) {
	sleep, err := osexec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	name := fmt.Sprintf("fg%d", os.Getpid()%1000000) // a command name nobody else has
	bin := filepath.Join(t.TempDir(), name)
	data, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	proc := osexec.Command(bin, "30")
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	defer proc.Process.Kill()
	out, err := osexec.Command("sh", "-c", processGoneScript, "t", name, "3").CombinedOutput()
	if err == nil || !strings.Contains(string(out), name+" still runs") {
		t.Fatalf("with %s running: %v %q, want it to say it still runs", name, err, out)
	}
	// Ended a moment after the wait began: the wait sees it go.
	waited := make(chan error, 1)
	go func() {
		out, err := osexec.Command("sh", "-c", processGoneScript, "t", name, "50").CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
		waited <- err
	}()
	time.Sleep(300 * time.Millisecond)
	proc.Process.Kill()
	proc.Wait()
	if err := <-waited; err != nil {
		t.Errorf("after %s ended: %v", name, err)
	}
}
