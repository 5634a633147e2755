package inventory

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const base = `cluster:
  name: test
  kubernetesVersion: v1.34.4
ssh:
  identityFile: id_ed25519
loadbalancer:
  name: lb
  address: 198.18.0.10
masters:
  - name: master0
    address: 198.18.0.11
workers:
  - name: worker0
    address: 198.18.0.14
`

func TestExampleLoads(t *testing.T) {
	inv, err := Load("examples/ha.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Masters) != 3 || len(inv.Workers) != 2 || inv.CA == nil || inv.CA.OS != "illumos" {
		t.Fatalf("unexpected topology: %+v", inv)
	}
	if inv.Cluster.ControlPlaneEndpoint != "192.0.2.10:6443" {
		t.Errorf("endpoint %q", inv.Cluster.ControlPlaneEndpoint)
	}
	w1 := inv.SSHFor(inv.Host("worker1"))
	if w1.User != "admin" || !On(w1.Sudo) || w1.Port != 22 || !On(w1.Agent) {
		t.Errorf("worker1 ssh %+v: override not merged over defaults", w1)
	}
	home, _ := os.UserHomeDir()
	if w1.IdentityFile != filepath.Join(home, ".ssh/id_ed25519") {
		t.Errorf("identity file %q, want ~ expanded", w1.IdentityFile)
	}
	if len(inv.Warnings) != 0 {
		t.Errorf("warnings %v", inv.Warnings)
	}
}

func TestVIPExampleLoads(t *testing.T) {
	inv, err := Load("examples/ha-vip.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(inv.LoadBalancerNames(), ","); got != "lb0,lb1" || inv.Cluster.ControlPlaneEndpoint != "192.0.2.100:6443" || inv.LoadBalancer.Nginx == nil {
		t.Errorf("balancers %s, endpoint %s, nginx %+v", got, inv.Cluster.ControlPlaneEndpoint, inv.LoadBalancer.Nginx)
	}
}

// TestNoBalancerWithNodeLocalProxies: without a load balancer the nodes
// reach the masters through their own proxies; joins and the operator's
// kubeconfig go to the first master. Without proxies a balancer is needed.
func TestNoBalancerWithNodeLocalProxies(t *testing.T) {
	src := strings.Replace(base, lbSingle, "", 1)
	if _, err := Parse("inv.yaml", []byte(src)); err == nil || !strings.Contains(err.Error(), "a load balancer host is required (or cluster.nodeLocalProxy: true") {
		t.Errorf("no balancer, no proxies: %v", err)
	}
	inv, err := Parse("inv.yaml", []byte(strings.Replace(src, "  name: test\n", "  name: test\n  nodeLocalProxy: true\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if inv.LoadBalancer != nil || len(inv.LoadBalancers) != 0 || inv.Cluster.ControlPlaneEndpoint != "198.18.0.11:6443" {
		t.Errorf("balancer %+v, endpoint %s, want none and the first master's", inv.LoadBalancer, inv.Cluster.ControlPlaneEndpoint)
	}
}

func TestDefaults(t *testing.T) {
	inv, err := Parse("/etc/fleet/inv.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	s := inv.SSHFor(inv.Host("master0"))
	if s.User != "root" || s.Port != 22 || time.Duration(s.ConnectTimeout) != 10*time.Second {
		t.Errorf("ssh defaults %+v", s)
	}
	if s.IdentityFile != "/etc/fleet/id_ed25519" {
		t.Errorf("relative identity file resolved to %q", s.IdentityFile)
	}
	if inv.Cluster.PodSubnet != DefaultPodSubnet || inv.Cluster.ServiceSubnet != DefaultServiceSubnet {
		t.Errorf("subnets %+v", inv.Cluster)
	}
	if inv.Host("worker0").Role != RoleWorker || inv.Host("lb").Role != RoleLoadBalancer {
		t.Error("roles not set")
	}
}

// TestPackageRepositories: pkgs.k8s.io's repositories of the version's
// minor unless the inventory names a mirror (which gets its slash).
func TestPackageRepositories(t *testing.T) {
	for _, tc := range []struct {
		name, packages string
		deb, rpm       string
	}{
		{"defaults", "", "https://pkgs.k8s.io/core:/stable:/v1.34/deb/", "https://pkgs.k8s.io/core:/stable:/v1.34/rpm/"},
		{"a site mirror of both", "  packages: {repository: http://mirror.site/k8s/deb, rpmRepository: http://mirror.site/k8s/rpm}\n",
			"http://mirror.site/k8s/deb/", "http://mirror.site/k8s/rpm/"},
		{"a mirror for apt only", "  packages: {repository: http://mirror.site/deb/}\n", "http://mirror.site/deb/", "https://pkgs.k8s.io/core:/stable:/v1.34/rpm/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(base, "  name: test\n", "  name: test\n  install: packages\n"+tc.packages, 1)
			inv, err := Parse("inv.yaml", []byte(text))
			if err != nil {
				t.Fatal(err)
			}
			if got := inv.PackageRepository(); got != tc.deb {
				t.Errorf("apt repository %q, want %q", got, tc.deb)
			}
			if got := inv.RPMPackageRepository(); got != tc.rpm {
				t.Errorf("rpm repository %q, want %q", got, tc.rpm)
			}
		})
	}
}

func TestEvenMastersWarn(t *testing.T) {
	src := strings.Replace(base, "workers:", "  - name: master1\n    address: 198.18.0.12\nworkers:", 1)
	inv, err := Parse("inv.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Warnings) != 1 || !strings.Contains(inv.Warnings[0], "2 masters") {
		t.Errorf("warnings %v", inv.Warnings)
	}
}

// edit replaces old with new in the base inventory, failing if old is absent.
func edit(t *testing.T, pairs ...string) string {
	t.Helper()
	s := base
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("base lacks %q", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

// The load balancer of base, and two that share a VIP in its place.
const (
	lbSingle = "loadbalancer:\n  name: lb\n  address: 198.18.0.10\n"
	lbPair   = "loadbalancer:\n  - name: lb0\n    address: 198.18.0.10\n  - name: lb1\n    address: 198.18.0.9\n"
)

// TestVIP: balancers as a list share the VIP, which becomes the endpoint;
// the first is the primary; the router id is derived from the name.
func TestVIP(t *testing.T) {
	src := strings.Replace(base, lbSingle, lbPair, 1) + "vip:\n  address: 198.18.0.100\n"
	inv, err := Parse("inv.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(inv.LoadBalancerNames(), ","); got != "lb0,lb1" || inv.LoadBalancer.Name != "lb0" {
		t.Errorf("balancers %s, primary %s", got, inv.LoadBalancer.Name)
	}
	if inv.Cluster.ControlPlaneEndpoint != "198.18.0.100:6443" {
		t.Errorf("endpoint %s, want the VIP's", inv.Cluster.ControlPlaneEndpoint)
	}
	if h := inv.Host("lb1"); h == nil || h.Role != RoleLoadBalancer {
		t.Errorf("lb1: %+v", h)
	}
	id := inv.VRRPRouterID()
	if id < 1 || id > 255 {
		t.Errorf("router id %d", id)
	}
	other, _ := Parse("inv.yaml", []byte(strings.Replace(src, "name: test", "name: test2", 1)))
	if other.VRRPRouterID() == id {
		t.Errorf("clusters test and test2 derive the same router id %d", id)
	}
	inv.VIP.RouterID = 7
	if inv.VRRPRouterID() != 7 {
		t.Error("routerID set is not taken")
	}
	one, err := Parse("inv.yaml", []byte(base))
	if err != nil || len(one.LoadBalancers) != 1 || one.LoadBalancer != one.LoadBalancers[0] || one.Cluster.ControlPlaneEndpoint != "198.18.0.10:6443" {
		t.Errorf("one balancer as a mapping: %v %+v", err, one)
	}
}

func TestBadInventories(t *testing.T) {
	tests := []struct {
		name string
		src  func(t *testing.T) string
		want string // file:line:col: field: message (prefix)
	}{
		{"unknown top-level key", func(t *testing.T) string { return base + "extra: 1\n" },
			`inv.yaml:15:1: extra: unknown field "extra"`},
		{"unknown host key", func(t *testing.T) string {
			return edit(t, "    address: 198.18.0.11\n", "    address: 198.18.0.11\n    adress: x\n")
		},
			`inv.yaml:12:5: masters[0].adress: unknown field "adress"`},
		{"bad IP", func(t *testing.T) string { return edit(t, "198.18.0.11", "198.18.0.300") },
			`inv.yaml:11:14: masters[0].address: "198.18.0.300" is not a valid IP address`},
		{"address neither IP nor name", func(t *testing.T) string { return edit(t, "198.18.0.14", "bad_host!") },
			`inv.yaml:14:14: workers[0].address: "bad_host!" is neither an IP address nor a DNS name`},
		{"duplicate name", func(t *testing.T) string { return edit(t, "name: worker0", "name: master0") },
			`inv.yaml:13:11: workers[0].name: host name "master0" is already used by masters[0]`},
		{"duplicate address", func(t *testing.T) string { return edit(t, "198.18.0.14", "198.18.0.10") },
			`inv.yaml:14:14: workers[0].address: address 198.18.0.10 is already used by loadbalancer`},
		{"bad pod CIDR", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  podSubnet: 10.244.0.0/33\n")
		},
			`inv.yaml:3:14: cluster.podSubnet: "10.244.0.0/33" is not a CIDR`},
		{"overlapping subnets", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  podSubnet: 10.0.0.0/8\n  serviceSubnet: 10.96.0.0/12\n")
		}, `inv.yaml:4:18: cluster.serviceSubnet: 10.96.0.0/12 overlaps the pod subnet 10.0.0.0/8`},
		{"CNI over plain http without a pin", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  cni: http://example.com/cni.yaml\n")
		}, `inv.yaml:3:8: cluster.cni: "http://example.com/cni.yaml" is plain http: use https, or pin the manifest with cluster.cniSHA256`},
		{"CNI pin that is no sha256", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  cni: https://example.com/cni.yaml\n  cniSHA256: md5:abc\n")
		}, `inv.yaml:4:14: cluster.cniSHA256: "md5:abc" is not sha256: and 64 hex digits`},
		{"network with two sources", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  network:\n    manifest: https://example.com/cni.yaml\n    cilium: {version: 1.18.4}\n")
		}, `inv.yaml:4:5: cluster.network: name exactly one of manifest, helm or cilium`},
		{"cni beside network", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  cni: https://example.com/cni.yaml\n  network:\n    manifest: https://example.com/cni.yaml\n")
		}, `inv.yaml:3:8: cluster.cni: cluster.cni and cluster.network both name the network`},
		{"helm chart from a repository without a version", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  network:\n    helm:\n      chart: flannel\n      repo: https://flannel-io.github.io/flannel\n")
		}, `inv.yaml:5:7: cluster.network.helm.version: is required for a chart from a repository or registry`},
		{"helm repository over http", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  network:\n    helm: {chart: flannel, repo: \"http://charts.example\", version: 0.26.0}\n")
		}, `inv.yaml:4:34: cluster.network.helm.repo: "http://charts.example" is plain http`},
		{"cilium without a version", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  network:\n    cilium: {}\n")
		}, `inv.yaml:4:13: cluster.network.cilium.version: "" is not a Cilium version`},
		{"BGP peer that is no address", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  network:\n    cilium:\n      version: 1.18.4\n      bgp:\n        localASN: 64512\n        peers: [{address: router, asn: 64513}]\n")
		}, `inv.yaml:8:27: cluster.network.cilium.bgp.peers[0].address: "router" is not an IP address`},
		{"BGP without peers", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  network:\n    cilium:\n      version: 1.18.4\n      bgp: {localASN: 64512}\n")
		}, `inv.yaml:6:12: cluster.network.cilium.bgp.peers: at least one peer`},
		{"BGP AS number out of range", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  network:\n    cilium:\n      version: 1.18.4\n      bgp: {localASN: 0, peers: [{address: 192.0.2.1, asn: 64513}]}\n")
		}, `inv.yaml:6:23: cluster.network.cilium.bgp.localASN: 0 is not an AS number`},
		{"addon named twice", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  addons:\n    - {name: mon, manifest: a.yaml}\n    - {name: mon, manifest: b.yaml}\n")
		}, `inv.yaml:5:14: cluster.addons[1].name: "mon" is named twice`},
		{"addon with both sources", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  addons:\n    - {name: mon, manifest: a.yaml, helm: {chart: ./c}}\n")
		}, `inv.yaml:4:7: cluster.addons[0]: name exactly one of manifest or helm`},
		{"CNI pin without a manifest", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  cniSHA256: sha256:"+strings.Repeat("0", 64)+"\n")
		}, `inv.yaml:3:14: cluster.cniSHA256: pins a manifest, but none is named`},
		{"taint without an effect", func(t *testing.T) string {
			return edit(t, "    address: 198.18.0.14\n", "    address: 198.18.0.14\n    taints:\n      - key: dedicated\n        value: db\n")
		}, `inv.yaml:16:9: workers[0].taints[0].effect: is required: NoSchedule, PreferNoSchedule or NoExecute`},
		{"taint with a bad effect", func(t *testing.T) string {
			return edit(t, "    address: 198.18.0.14\n", "    address: 198.18.0.14\n    taints:\n      - key: dedicated\n        effect: NoEntry\n")
		}, `inv.yaml:17:17: workers[0].taints[0].effect: "NoEntry": want NoSchedule, PreferNoSchedule or NoExecute`},
		{"the same taint twice", func(t *testing.T) string {
			return edit(t, "    address: 198.18.0.14\n", "    address: 198.18.0.14\n    taints:\n      - {key: a, effect: NoSchedule}\n      - {key: a, value: b, effect: NoSchedule}\n")
		}, `inv.yaml:17:9: workers[0].taints[1]: a second taint a:NoSchedule`},
		{"labels on the load balancer", func(t *testing.T) string {
			return edit(t, "  address: 198.18.0.10\n", "  address: 198.18.0.10\n  labels: {pool: lb}\n")
		}, `inv.yaml:9:11: loadbalancer.labels: only masters and workers are nodes`},
		{"host inside pod subnet", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  podSubnet: 198.18.0.0/16\n")
		},
			`inv.yaml:9:12: loadbalancer.address: 198.18.0.10 lies inside the pod subnet 198.18.0.0/16`},
		{"missing name", func(t *testing.T) string { return edit(t, "  - name: worker0\n    address", "  - address") },
			`inv.yaml:13:5: workers[0].name: is required`},
		{"missing cluster name", func(t *testing.T) string { return edit(t, "  name: test\n", "") },
			`inv.yaml:2:3: cluster.name: is required`},
		{"missing version", func(t *testing.T) string { return edit(t, "  kubernetesVersion: v1.34.4\n", "") },
			`inv.yaml:2:3: cluster.kubernetesVersion: is required`},
		{"bad version", func(t *testing.T) string { return edit(t, "v1.34.4", "latest") },
			`inv.yaml:3:22: cluster.kubernetesVersion: "latest" is not a version`},
		{"no masters", func(t *testing.T) string {
			return edit(t, "masters:\n  - name: master0\n    address: 198.18.0.11\n", "")
		},
			`inv.yaml: masters: at least one master is required`},
		{"no load balancer", func(t *testing.T) string { return edit(t, "loadbalancer:\n  name: lb\n  address: 198.18.0.10\n", "") },
			`inv.yaml: loadbalancer: a load balancer host is required`},
		{"name with shell metacharacters", func(t *testing.T) string { return edit(t, "name: worker0", `name: "w0;rm -rf /"`) },
			`inv.yaml:13:11: workers[0].name: "w0;rm -rf /" must be a DNS label`},
		{"upper-case name", func(t *testing.T) string { return edit(t, "name: worker0", "name: Worker0") },
			`inv.yaml:13:11: workers[0].name: "Worker0" must be a DNS label`},
		{"bad label", func(t *testing.T) string {
			return edit(t, "    address: 198.18.0.14\n", "    address: 198.18.0.14\n    labels:\n      \"bad key$\": x\n")
		}, `inv.yaml:16:7: workers[0].labels.bad key$: label key "bad key$" is invalid`},
		{"bad ssh port", func(t *testing.T) string { return edit(t, "ssh:\n", "ssh:\n  port: 70000\n") },
			`inv.yaml:5:9: ssh.port: 70000 is not a TCP port`},
		{"port not a number", func(t *testing.T) string { return edit(t, "ssh:\n", "ssh:\n  port: twenty\n") },
			"inv.yaml:5:1: cannot unmarshal !!str `twenty` into int"},
		{"bad duration", func(t *testing.T) string { return edit(t, "ssh:\n", "ssh:\n  connectTimeout: soon\n") },
			`inv.yaml:5:1: "soon" is not a duration`},
		{"bad jump host", func(t *testing.T) string { return edit(t, "ssh:\n", "ssh:\n  jumpHost: \"root@bastion:99999\"\n") },
			`inv.yaml:5:13: ssh.jumpHost: jump host "root@bastion:99999": bad port "99999"`},
		{"os on a worker", func(t *testing.T) string {
			return edit(t, "    address: 198.18.0.14\n", "    address: 198.18.0.14\n    os: linux\n")
		},
			`inv.yaml:15:9: workers[0].os: only the ca host takes an os`},
		{"bad ca os", func(t *testing.T) string { return base + "ca:\n  name: ca\n  address: 198.18.0.16\n  os: windows\n" },
			`inv.yaml:18:7: ca.os: "windows" is not a supported OS`},
		{"masters not a list", func(t *testing.T) string {
			return edit(t, "masters:\n  - name: master0\n    address: 198.18.0.11\n", "masters: master0\n")
		},
			`inv.yaml:9:10: masters: want a list, got "master0"`},
		{"duplicate key", func(t *testing.T) string { return edit(t, "  name: lb\n", "  name: lb\n  name: lb2\n") },
			`inv.yaml:8:1: mapping key "name" already defined at line 7`},
		{"yaml syntax", func(t *testing.T) string { return "cluster:\n  name: [\n" },
			`inv.yaml:2:1: did not find expected node content`},
		{"empty", func(t *testing.T) string { return "" },
			`inv.yaml: the inventory is empty`},
		{"nginx options on a master", func(t *testing.T) string {
			return edit(t, "    address: 198.18.0.11\n", "    address: 198.18.0.11\n    nginx: {proxyTimeout: 5s}\n")
		}, `inv.yaml:12:12: masters[0].nginx: only the loadbalancer host takes nginx options`},
		{"sub-millisecond nginx timeout", func(t *testing.T) string {
			return edit(t, "  address: 198.18.0.10\n", "  address: 198.18.0.10\n  nginx: {connectTimeout: 1us}\n")
		}, `inv.yaml:9:27: loadbalancer.nginx.connectTimeout: must be at least 1ms`},
		{"unknown nginx runAs", func(t *testing.T) string {
			return edit(t, "  address: 198.18.0.10\n", "  address: 198.18.0.10\n  nginx: {runAs: podman}\n")
		}, `inv.yaml:9:18: loadbalancer.nginx.runAs: "podman": want service or container`},
		{"nginx image without a container", func(t *testing.T) string {
			return edit(t, "  address: 198.18.0.10\n", "  address: 198.18.0.10\n  nginx: {image: nginx:1.27}\n")
		}, `inv.yaml:9:18: loadbalancer.nginx.image: an image needs runAs: container`},
		{"nginx image with shell in it", func(t *testing.T) string {
			return edit(t, "  address: 198.18.0.10\n", "  address: 198.18.0.10\n  nginx: {runAs: container, image: 'nginx; rm -rf /'}\n")
		}, `inv.yaml:9:36: loadbalancer.nginx.image: "nginx; rm -rf /" is not an image reference`},
		{"unknown join mode", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  joinMode: magic\n")
		}, `inv.yaml:3:13: cluster.joinMode: "magic": want kubeadm, tls-bootstrap or cfssl`},
		{"join mode on a master", func(t *testing.T) string {
			return edit(t, "    address: 198.18.0.11\n", "    address: 198.18.0.11\n    joinMode: tls-bootstrap\n")
		}, `inv.yaml:12:15: masters[0].joinMode: only workers take a join mode`},
		{"cfssl join mode before the CA host role exists", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  joinMode: cfssl\n")
		}, `inv.yaml:3:13: cluster.joinMode: "cfssl" needs the CA host's CFSSL API`},
		{"cfssl options on a worker", func(t *testing.T) string {
			return edit(t, "    address: 198.18.0.11\n", "    address: 198.18.0.11\n    cfssl: {port: 8888}\n")
		}, `inv.yaml:12:12: masters[0].cfssl: only the ca host takes cfssl options`},
		{"a root certificate without its key", func(t *testing.T) string {
			return base + "ca:\n  name: ca\n  address: 198.18.0.16\n  cfssl:\n    rootCert: root.pem\n"
		}, `inv.yaml:19:5: ca.cfssl: rootCert and rootKey go together`},
		{"binaries without a folder", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  install: binaries\n")
		}, `inv.yaml:3:12: cluster.install: binaries needs cluster.binaries`},
		{"a package repository that is not a URL", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  install: packages\n  packages: {repository: pkgs.example/deb}\n")
		}, `inv.yaml:4:26: cluster.packages.repository: "pkgs.example/deb" is not an http(s) URL`},
		{"an rpm repository that is not a URL", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  install: packages\n  packages: {rpmRepository: ftp://pkgs.example/rpm/}\n")
		}, `inv.yaml:4:29: cluster.packages.rpmRepository: "ftp://pkgs.example/rpm/" is not an http(s) URL`},
		{"a short key fingerprint", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  install: packages\n  packages: {keyFingerprint: DE15B144}\n")
		}, `inv.yaml:4:30: cluster.packages.keyFingerprint: "DE15B144" is not 40 hex digits`},
		{"packages with hosts that come prepared", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  packages: {repository: https://mirror.site/k8s/}\n")
		}, `inv.yaml:3:13: cluster.packages: is used by install: packages only`},
		{"a binaries folder with hosts that come prepared", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  binaries: ./airgap\n")
		}, `inv.yaml:3:13: cluster.binaries: is used by install: binaries only`},
		{"release URLs without install: binaries", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  binariesURL: https://dl.k8s.io/release/{version}/bin/linux/amd64/{name}\n")
		}, `inv.yaml:3:16: cluster.binariesURL: is used by install: binaries only`},
		{"release URLs over plain http", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  install: binaries\n  binaries: ./airgap\n  binariesURL: http://dl.site/{version}/{name}\n")
		}, `inv.yaml:5:16: cluster.binariesURL: "http://dl.site/{version}/{name}" is not an https URL (the sums come from the same server)`},
		{"a release URL that names no file", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  install: binaries\n  binaries: ./airgap\n  binariesURL: https://dl.site/{version}/kubeadm\n")
		}, `inv.yaml:5:16: cluster.binariesURL: "https://dl.site/{version}/kubeadm" has no {name}: each binary needs its own URL`},
		{"a mirror that is not a URL", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  registryMirrors: {registry.k8s.io: [mirror.site]}\n")
		}, `inv.yaml:3:20: cluster.registryMirrors: registry.k8s.io: "mirror.site" is not an http(s) URL`},
		{"a mirrored registry that would name another folder", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  registryMirrors: {\"../../etc\": [\"https://mirror.site\"]}\n")
		}, `inv.yaml:3:20: cluster.registryMirrors: "../../etc" is not a registry host (host or host:port, as in an image name)`},
		{"two balancers without a VIP", func(t *testing.T) string { return edit(t, lbSingle, lbPair) },
			`inv.yaml:7:3: loadbalancer: 2 load balancers need a vip:`},
		{"a VIP with one balancer", func(t *testing.T) string { return base + "vip: {address: 198.18.0.100}\n" },
			`inv.yaml:15:6: vip: a VIP needs two load balancers or more`},
		{"a VIP that is a balancer's address", func(t *testing.T) string { return edit(t, lbSingle, lbPair) + "vip: {address: 198.18.0.9}\n" },
			`inv.yaml:10:14: loadbalancer[1].address: the VIP 198.18.0.9 is a balancer's own address`},
		{"a VIP that is no IPv4 address", func(t *testing.T) string { return edit(t, lbSingle, lbPair) + "vip: {address: fd00::1}\n" },
			`inv.yaml:17:16: vip.address: "fd00::1" is not an IPv4 address`},
		{"a VRRP router id out of range", func(t *testing.T) string {
			return edit(t, lbSingle, lbPair) + "vip: {address: 198.18.0.100, routerID: 300}\n"
		}, `inv.yaml:17:40: vip.routerID: 300 is not a VRRP router id (1-255)`},
		{"nginx settings on the second balancer", func(t *testing.T) string {
			return edit(t, lbSingle, lbPair+"    nginx: {proxyTimeout: 5s}\n") + "vip: {address: 198.18.0.100}\n"
		}, `inv.yaml:11:12: loadbalancer[1].nginx: nginx settings go on the first balancer only`},
		{"a duplicate among the balancers", func(t *testing.T) string {
			return edit(t, lbSingle, strings.Replace(lbPair, "name: lb1", "name: lb0", 1)) + "vip: {address: 198.18.0.100}\n"
		}, `inv.yaml:9:11: loadbalancer[1].name: host name "lb0" is already used by loadbalancer[0]`},
		{"a node-local proxy port without the proxy", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  nodeLocalProxyPort: 7443\n")
		}, `inv.yaml:3:23: cluster.nodeLocalProxyPort: is used by nodeLocalProxy: true only`},
		{"a node-local proxy on the kubelet's port", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  nodeLocalProxy: true\n  nodeLocalProxyPort: 10250\n")
		}, `inv.yaml:4:23: cluster.nodeLocalProxyPort: 10250 is the kubelet's or kube-proxy's own port`},
		{"bad endpoint", func(t *testing.T) string {
			return edit(t, "  name: test\n", "  name: test\n  controlPlaneEndpoint: lb.example\n")
		},
			`inv.yaml:3:25: cluster.controlPlaneEndpoint: "lb.example" must be host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, err := Parse("inv.yaml", []byte(tt.src(t)))
			if err == nil {
				t.Fatalf("accepted: %+v", inv)
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %T %v is not inventory.Errors", err, err)
			}
			if !strings.HasPrefix(es[0].Error(), tt.want) {
				t.Errorf("got  %s\nwant %s...", es[0].Error(), tt.want)
			}
		})
	}
}

func TestAllErrorsAreReportedInFileOrder(t *testing.T) {
	src := edit(t, "198.18.0.14", "198.18.0.999", "198.18.0.11", "1.2.3.999")
	_, err := Parse("inv.yaml", []byte(src))
	var es Errors
	if !errors.As(err, &es) || len(es) != 2 || es[0].Line != 11 || es[1].Line != 14 {
		t.Fatalf("got %v", err)
	}
}

func TestParseJumpHost(t *testing.T) {
	tests := []struct {
		in   string
		want JumpHost
		err  bool
	}{
		{"bastion", JumpHost{Address: "bastion", Port: 22}, false},
		{"admin@bastion.example.com:2222", JumpHost{User: "admin", Address: "bastion.example.com", Port: 2222}, false},
		{"[2001:db8::1]:22", JumpHost{Address: "2001:db8::1", Port: 22}, false},
		{"root@1.2.3.4", JumpHost{User: "root", Address: "1.2.3.4", Port: 22}, false},
		{"$(id)@host", JumpHost{}, true},
		{"host:0", JumpHost{}, true},
	}
	for _, tt := range tests {
		got, err := ParseJumpHost(tt.in)
		if (err != nil) != tt.err || (!tt.err && got != tt.want) {
			t.Errorf("ParseJumpHost(%q) = %+v, %v", tt.in, got, err)
		}
	}
}

// TestVagrantInventoryMatchesVagrantfile keeps testing/vagrant exact: every
// host of its inventory is a VM of its Vagrantfile, at the same address,
// and the VMs are bare Debian that fleet prepares.
func TestVagrantInventoryMatchesVagrantfile(t *testing.T) {
	inv, err := Load("../testing/vagrant/inventory.yaml")
	if err != nil {
		t.Fatal(err)
	}
	vf, err := os.ReadFile("../testing/vagrant/Vagrantfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range inv.Hosts() {
		if want := regexp.MustCompile(`"` + h.Name + `"\s*=>\s*"` + regexp.QuoteMeta(h.Address) + `"`); !want.Match(vf) {
			t.Errorf("Vagrantfile lacks %s at %s", h.Name, h.Address)
		}
		if s := inv.SSHFor(h); !strings.HasSuffix(s.IdentityFile, ".vagrant/machines/"+h.Name+"/virtualbox/private_key") || !On(s.Sudo) {
			t.Errorf("%s: ssh %+v", h.Name, s)
		}
	}
	// The VMs are bare: fleet prepares them, nothing else does.
	if regexp.MustCompile(`\.provision\b`).Match(vf) || !inv.Installs() {
		t.Errorf("the Vagrantfile provisions, or the inventory (install: %s) does not have fleet prepare the VMs", inv.Cluster.Install)
	}
}

func TestJoinModeOf(t *testing.T) {
	tests := []struct {
		name, cluster, worker, want string
	}{
		{"default", "", "", JoinKubeadm},
		{"cluster-wide", "tls-bootstrap", "", JoinTLSBootstrap},
		{"worker overrides", "tls-bootstrap", "kubeadm", JoinKubeadm},
		{"one worker differs", "", "tls-bootstrap", JoinTLSBootstrap},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := base
			if tt.cluster != "" {
				src = strings.Replace(src, "  name: test\n", "  name: test\n  joinMode: "+tt.cluster+"\n", 1)
			}
			if tt.worker != "" {
				src = strings.Replace(src, "198.18.0.14\n", "198.18.0.14\n    joinMode: "+tt.worker+"\n", 1)
			}
			inv, err := Parse("inv.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			if got := inv.JoinModeOf(&inv.Workers[0]); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestImageReferences(t *testing.T) {
	for ref, ok := range map[string]bool{
		"nginx": true, "nginx:1.27": true, "nginx:1.27-alpine": true, "library/nginx:stable": true,
		"registry.example.com/infra/nginx:1.27": true, "localhost:5000/nginx": true,
		"nginx@sha256:" + strings.Repeat("a", 64): true, "nginx:1.27@sha256:" + strings.Repeat("0", 64): true,
		"Nginx": false, "nginx:": false, "nginx:1.27 --privileged": false, "$(id)": false,
		"nginx\n": false, "nginx@sha256:abc": false, "-v/:/host": false,
	} {
		if got := imageRef.MatchString(ref); got != ok {
			t.Errorf("imageRef(%q) = %v, want %v", ref, got, ok)
		}
	}
}

// cni: is network.manifest's old spelling: read into it, with a warning
// that points at the line; the path resolved beside the inventory.
func TestCNIIsReadAsNetworkManifest(t *testing.T) {
	inv, err := Parse("/site/inv.yaml", []byte(strings.Replace(base, "  name: test\n", "  name: test\n  cni: cni/flannel.yaml\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if n := inv.Cluster.Network; n == nil || n.Manifest != "/site/cni/flannel.yaml" {
		t.Fatalf("network %+v", n)
	}
	if len(inv.Warnings) != 1 || !strings.HasPrefix(inv.Warnings[0], "/site/inv.yaml:3: cluster.cni is deprecated") {
		t.Errorf("warnings %q", inv.Warnings)
	}
	if !inv.Cluster.KubeProxyEnabled() {
		t.Error("a manifest network turned kube-proxy off")
	}
}
