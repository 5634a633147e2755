package playbooks

import (
	"net"
	osexec "os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fleetops/fleet/internal/facts"
	"github.com/fleetops/fleet/inventory"
)

const ssSample = `LISTEN 0      511          0.0.0.0:6443      0.0.0.0:*    users:(("nginx",pid=812,fd=6),("nginx",pid=811,fd=6))
LISTEN 0      4096       127.0.0.1:2379      0.0.0.0:*    users:(("etcd",pid=900,fd=7))
LISTEN 0      128             [::]:22           [::]:*    users:(("sshd",pid=20,fd=4))
LISTEN 0      4096               *:10250            *:*`

func TestParseListeners(t *testing.T) {
	ls := parseListeners(ssSample)
	want := []listener{{"6443", "nginx"}, {"2379", "etcd"}, {"22", "sshd"}, {"10250", ""}}
	if len(ls) != len(want) {
		t.Fatalf("%+v", ls)
	}
	for i := range want {
		if ls[i] != want[i] {
			t.Errorf("%d: %+v, want %+v", i, ls[i], want[i])
		}
	}
}

func TestParseHostState(t *testing.T) {
	st, err := parseHostState("1700000000\n0\nnew\n" + ssSample + "\n")
	if err != nil || st.clock.Unix() != 1700000000 || st.swaps != 0 || st.node != newNode || len(st.listeners) != 4 {
		t.Errorf("%+v %v", st, err)
	}
	for _, tc := range []struct {
		line       string
		node       nodeState
		joinConfig bool
	}{{"partial", partialJoin, false}, {"new join-config", newNode, true}, {"joined join-config", joinedNode, true}} {
		st, err := parseHostState("1700000000\n0\n" + tc.line + "\n")
		if err != nil || st.node != tc.node || st.joinConfig != tc.joinConfig {
			t.Errorf("%q: %+v %v", tc.line, st, err)
		}
	}
	for _, bad := range []string{"", "x\n0\nnew\n", "1\n\n", "1\n0\nhalf\n", "1\n0\nnew config\n", "1\n0\nnew join-config x\n"} {
		if _, err := parseHostState(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestProblemsOf(t *testing.T) {
	inv := &inventory.Inventory{Cluster: inventory.Cluster{ControlPlaneEndpoint: "198.18.0.10:6443"}}
	now := time.Unix(1700000000, 0)
	linux := func(tools ...string) facts.Facts {
		f := facts.Facts{OS: "Linux", Paths: map[string]string{}}
		for _, t := range tools {
			f.Paths[t] = "/usr/bin/" + t
		}
		return f
	}
	nginxOn6443 := []listener{{"6443", "nginx"}}
	etcdOn2379 := []listener{{"2379", "etcd"}}
	for _, tc := range []struct {
		name string
		role inventory.Role
		mode string // the host's join mode
		f    facts.Facts
		st   hostState
		want string // substring of the error; "" for none
	}{
		{"ready master", inventory.RoleMaster, "", linux("kubeadm", "kubelet", "kubectl"), hostState{clock: now}, ""},
		{"master lacks kubectl", inventory.RoleMaster, "", linux("kubeadm", "kubelet"), hostState{clock: now}, "kubectl is not installed"},
		{"illumos worker", inventory.RoleWorker, "", facts.Facts{OS: "SunOS", Paths: map[string]string{"kubeadm": "x", "kubelet": "y"}}, hostState{clock: now}, "OS is SunOS"},
		{"clock off", inventory.RoleWorker, "", linux("kubeadm", "kubelet"), hostState{clock: now.Add(-time.Minute)}, "clock is 1m0s off"},
		{"swap", inventory.RoleWorker, "", linux("kubeadm", "kubelet"), hostState{clock: now, swaps: 1}, "swap is on"},
		{"port taken on a new master", inventory.RoleMaster, "", linux("kubeadm", "kubelet", "kubectl"), hostState{clock: now, listeners: etcdOn2379}, "ports in use by something else: 2379"},
		{"a joined master holds its own ports", inventory.RoleMaster, "", linux("kubeadm", "kubelet", "kubectl"), hostState{clock: now, node: joinedNode, listeners: etcdOn2379}, ""},
		{"a half-joined master's own ports are cleared later", inventory.RoleMaster, "", linux("kubeadm", "kubelet", "kubectl"), hostState{clock: now, node: partialJoin, listeners: []listener{{"2379", "etcd"}, {"6443", "kube-apiserver"}, {"10257", "kube-controller"}}}, ""},
		{"a half-joined master's port held by another", inventory.RoleMaster, "", linux("kubeadm", "kubelet", "kubectl"), hostState{clock: now, node: partialJoin, listeners: []listener{{"6443", "haproxy"}, {"2379", "etcd"}}}, "ports in use by something else: 6443"},
		{"nginx holds the LB port", inventory.RoleLoadBalancer, "", linux("nginx"), hostState{clock: now, listeners: nginxOn6443}, ""},
		{"something else holds the LB port", inventory.RoleLoadBalancer, "", linux("nginx"), hostState{clock: now, listeners: []listener{{"6443", "haproxy"}}}, "ports in use by something else: 6443"},
		{"swap on the LB is fine", inventory.RoleLoadBalancer, "", linux("nginx"), hostState{clock: now, swaps: 2}, ""},
		{"tls-bootstrap worker needs no kubeadm", inventory.RoleWorker, "tls-bootstrap", linux("kubelet"), hostState{clock: now}, ""},
		{"tls-bootstrap worker needs the kubelet", inventory.RoleWorker, "tls-bootstrap", linux("kubeadm"), hostState{clock: now}, "kubelet is not installed"},
		{"kubeadm worker needs kubeadm", inventory.RoleWorker, "", linux("kubelet"), hostState{clock: now}, "kubeadm is not installed"},
	} {
		err := problemsOf(&inventory.Host{Name: "h", Role: tc.role, JoinMode: tc.mode}, tc.f, tc.st, inv, 30*time.Second, now)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// With cluster.allowSwap the kubelet runs with it: no problem.
	swapping := *inv
	swapping.Cluster.AllowSwap = true
	if err := problemsOf(&inventory.Host{Name: "h", Role: inventory.RoleWorker}, linux("kubeadm", "kubelet"), hostState{clock: now, swaps: 1}, &swapping, 30*time.Second, now); err != nil {
		t.Errorf("swap on with allowSwap: %v", err)
	}
}

// TestProblemsOfContainerLB: a load balancer with runAs: container needs
// docker, not nginx, and its port may be held by the container's proxy.
func TestProblemsOfContainerLB(t *testing.T) {
	lb := inventory.Host{Name: "lb", Role: inventory.RoleLoadBalancer, Nginx: &inventory.Nginx{RunAs: inventory.NginxContainer}}
	inv := &inventory.Inventory{Cluster: inventory.Cluster{ControlPlaneEndpoint: "198.18.0.10:6443"}, LoadBalancer: &lb}
	now := time.Unix(1700000000, 0)
	with := func(tools ...string) facts.Facts {
		f := facts.Facts{OS: "Linux", Paths: map[string]string{}}
		for _, t := range tools {
			f.Paths[t] = "/usr/bin/" + t
		}
		return f
	}
	for _, tc := range []struct {
		name string
		f    facts.Facts
		ls   []listener
		want string
	}{
		{"docker, no nginx on the host", with("docker"), nil, ""},
		{"nginx but no docker", with("nginx"), nil, "docker is not installed"},
		{"docker-proxy publishes the port", with("docker"), []listener{{"6443", "docker-proxy"}}, ""},
		{"the container's nginx holds it", with("docker"), []listener{{"6443", "nginx"}}, ""},
		{"something else holds it", with("docker"), []listener{{"6443", "haproxy"}}, "ports in use by something else: 6443"},
	} {
		err := problemsOf(&lb, tc.f, hostState{clock: now, listeners: tc.ls}, inv, 30*time.Second, now)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestProblemsOfLBFleetInstalls: when fleet prepares hosts it installs
// the load balancer's nginx or docker itself, with apt: a Debian-family
// load balancer without them passes, another one is told what is missing.
func TestProblemsOfLBFleetInstalls(t *testing.T) {
	now := time.Unix(1700000000, 0)
	for _, tc := range []struct {
		name    string
		install string
		runAs   string
		id      string
		tools   []string
		want    string
	}{
		{"debian, nothing installed", inventory.InstallBinaries, "", "debian", nil, ""},
		{"ubuntu (ID_LIKE debian), packages", inventory.InstallPackages, "", "ubuntu", nil, ""},
		{"container, no docker yet", inventory.InstallPackages, inventory.NginxContainer, "debian", nil, ""},
		{"rocky: dnf installs it", inventory.InstallBinaries, "", "rocky", nil, ""},
		{"rocky, container: docker is not the distribution's", inventory.InstallPackages, inventory.NginxContainer, "rocky", nil, "docker is not installed"},
		{"rocky, container, docker there", inventory.InstallPackages, inventory.NginxContainer, "rocky", []string{"docker"}, ""},
		{"alpine: nothing installs it", inventory.InstallBinaries, "", "alpine", nil, "nginx is not installed"},
		{"alpine with nginx", inventory.InstallBinaries, "", "alpine", []string{"nginx"}, ""},
		{"prepared hosts: fleet installs nothing", inventory.InstallPrepared, "", "debian", nil, "nginx is not installed"},
	} {
		lb := inventory.Host{Name: "lb", Role: inventory.RoleLoadBalancer}
		if tc.runAs != "" {
			lb.Nginx = &inventory.Nginx{RunAs: tc.runAs}
		}
		inv := &inventory.Inventory{Cluster: inventory.Cluster{ControlPlaneEndpoint: "198.18.0.10:6443", Install: tc.install}, LoadBalancer: &lb}
		f := facts.Facts{OS: "Linux", ID: tc.id, Paths: map[string]string{}}
		for _, tool := range tc.tools {
			f.Paths[tool] = "/usr/sbin/" + tool
		}
		err := problemsOf(&lb, f, hostState{clock: now}, inv, 30*time.Second, now)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestProblemsOfCAHostAndCFSSLWorker: the CA host runs the OS the
// inventory says and may hold its own API port; a cfssl worker needs only
// the kubelet.
func TestProblemsOfCAHostAndCFSSLWorker(t *testing.T) {
	inv := &inventory.Inventory{Cluster: inventory.Cluster{ControlPlaneEndpoint: "198.18.0.10:6443"}}
	now := time.Unix(1700000000, 0)
	onOS := func(os string, tools ...string) facts.Facts {
		f := facts.Facts{OS: os, Paths: map[string]string{}}
		for _, t := range tools {
			f.Paths[t] = "/usr/bin/" + t
		}
		return f
	}
	for _, tc := range []struct {
		name string
		host inventory.Host
		f    facts.Facts
		ls   []listener
		want string
	}{
		{"illumos CA host on illumos", inventory.Host{Role: inventory.RoleCA, OS: "illumos"}, onOS("SunOS"), nil, ""},
		{"illumos CA host on Linux", inventory.Host{Role: inventory.RoleCA, OS: "illumos"}, onOS("Linux"), nil, "OS is Linux, want SunOS"},
		{"linux CA host on illumos", inventory.Host{Role: inventory.RoleCA, OS: "linux"}, onOS("SunOS"), nil, "OS is SunOS, want Linux"},
		{"cfssl holds its port", inventory.Host{Role: inventory.RoleCA, OS: "linux"}, onOS("Linux"), []listener{{"8888", "cfssl"}}, ""},
		{"something else holds it", inventory.Host{Role: inventory.RoleCA, OS: "linux"}, onOS("Linux"), []listener{{"8888", "python3"}}, "ports in use by something else: 8888"},
		{"cfssl worker without kubeadm", inventory.Host{Role: inventory.RoleWorker, JoinMode: inventory.JoinCFSSL}, onOS("Linux", "kubelet"), nil, ""},
		{"cfssl worker without the kubelet", inventory.Host{Role: inventory.RoleWorker, JoinMode: inventory.JoinCFSSL}, onOS("Linux", "kubeadm"), nil, "kubelet is not installed"},
	} {
		h := tc.host
		h.Name = "h"
		err := problemsOf(&h, tc.f, hostState{clock: now, listeners: tc.ls}, inv, 30*time.Second, now)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestClusterDNS(t *testing.T) {
	for _, tc := range []struct{ subnet, want string }{
		{"10.96.0.0/12", "10.96.0.10"},
		{"10.96.5.7/16", "10.96.0.10"},
		{"fd00:10:96::/112", "fd00:10:96::a"},
		{"10.0.0.0/29", ""},
		{"nonsense", ""},
	} {
		got, err := clusterDNS(tc.subnet)
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("clusterDNS(%q) = %q, %v; want %q", tc.subnet, got, err, tc.want)
		}
	}
}

// TestStateCommandListsSocketsOnlyWhenAWatchedPortIsHeld runs the state
// command in this machine's /bin/sh with a port of its own held: the
// listeners (with their process where ss may tell) come only when one of
// the watched ports is among them.
func TestStateCommandListsSocketsOnlyWhenAWatchedPortIsHeld(t *testing.T) {
	if _, err := osexec.LookPath("ss"); err != nil {
		t.Skip("no ss on this machine")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, held, _ := net.SplitHostPort(l.Addr().String())
	free := "1" // tcpmux: nobody listens there
	cases := []struct {
		ports []string
		want  bool
	}{{[]string{free}, false}, {[]string{free, held}, true}}
	// A port held on IPv6 only is found too (Linux's tcp6 table).
	if l6, err := net.Listen("tcp6", "[::1]:0"); err == nil {
		defer l6.Close()
		_, held6, _ := net.SplitHostPort(l6.Addr().String())
		cases = append(cases, struct {
			ports []string
			want  bool
		}{[]string{held6, free}, true})
	}
	for _, tt := range cases {
		out, err := osexec.Command("/bin/sh", "-c", stateCommand(tt.ports)).Output()
		if err != nil {
			t.Fatal(err)
		}
		st, err := parseHostState(string(out))
		if err != nil {
			t.Fatal(err)
		}
		if got := len(taken(st.listeners, tt.ports)) == 1; got != tt.want {
			t.Errorf("watching %v: port %s listed %v, want %v\n%s", tt.ports, held, got, tt.want, out)
		}
	}
}

// TestProblemsOfVIPAndNodeProxy: balancers sharing a VIP need keepalived;
// with a node-local proxy a worker needs nginx unless fleet installs it
// (apt), and a master on the API server's own port needs none.
func TestProblemsOfVIPAndNodeProxy(t *testing.T) {
	now := time.Unix(1700000000, 0)
	all := []string{"kubeadm", "kubelet", "kubectl", "nginx"}
	for _, tc := range []struct {
		name    string
		role    inventory.Role
		install string
		local   bool
		vip     bool
		port    int
		tools   []string
		want    string
	}{
		{"balancer with a VIP, no keepalived", inventory.RoleLoadBalancer, inventory.InstallPrepared, false, true, 0, []string{"nginx"}, "keepalived is not installed"},
		{"balancer with a VIP and keepalived", inventory.RoleLoadBalancer, inventory.InstallPrepared, false, true, 0, []string{"nginx", "keepalived"}, ""},
		{"balancer with a VIP, fleet installs", inventory.RoleLoadBalancer, inventory.InstallPackages, false, true, 0, nil, ""},
		{"worker with a local proxy, no nginx", inventory.RoleWorker, inventory.InstallPrepared, true, false, 0, all[:3], "nginx is not installed"},
		{"worker with a local proxy, fleet installs", inventory.RoleWorker, inventory.InstallPackages, true, false, 0, nil, ""},
		{"master on the API server's port: no proxy", inventory.RoleMaster, inventory.InstallPrepared, true, false, 0, all[:3], ""},
		{"master with the proxy on another port", inventory.RoleMaster, inventory.InstallPrepared, true, false, 7443, all[:3], "nginx is not installed"},
		{"worker without a local proxy", inventory.RoleWorker, inventory.InstallPrepared, false, false, 0, all[:3], ""},
	} {
		h := inventory.Host{Name: "h", Role: tc.role}
		inv := &inventory.Inventory{Cluster: inventory.Cluster{ControlPlaneEndpoint: "198.18.0.100:6443", Install: tc.install,
			NodeLocalProxy: tc.local, NodeLocalProxyPort: tc.port}, LoadBalancers: inventory.LoadBalancers{&h}}
		if tc.role == inventory.RoleLoadBalancer {
			inv.LoadBalancer = &h
		} else {
			inv.Workers = []inventory.Host{h}
			inv.LoadBalancers = nil
			if tc.role == inventory.RoleMaster {
				inv.Workers, inv.Masters = nil, []inventory.Host{h}
			}
		}
		if tc.vip {
			inv.VIP = &inventory.VIP{Address: "198.18.0.100"}
		}
		f := facts.Facts{OS: "Linux", ID: "debian", Paths: map[string]string{}}
		for _, tool := range tc.tools {
			f.Paths[tool] = "/usr/bin/" + tool
		}
		err := problemsOf(inv.Host("h"), f, hostState{clock: now}, inv, 30*time.Second, now)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
