package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
)

// Host is one running simulated host.
type Host struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	Address string `json:"address"`
	NetNS   string `json:"netns"`
	Veth    string `json:"veth"` // the machine's end of the host's link
	Dir     string `json:"dir"`  // the host's private folders, seen from the machine
	// Distro is "rocky" for a host that claims Rocky Linux (see
	// Topology.Rocky), "" for the machine's own Debian.
	Distro string `json:"distro,omitempty"`
}

// Cluster is a running topology and the files a client needs to reach it.
type Cluster struct {
	Dir        string   `json:"dir"`
	ID         string   `json:"id"`
	Subnet     int      `json:"subnet"`
	Bridge     string   `json:"bridge"`
	Hosts      []Host   `json:"hosts"`
	Tools      string   `json:"tools"`       // /usr layer of node binaries each host sees, or ""
	Bare       bool     `json:"bare"`        // hosts see only ImagesLayer(Tools): see Topology.Bare
	KeyFile    string   `json:"key_file"`    // client private key, authorized for root and the test users
	KnownHosts string   `json:"known_hosts"` // every host's key, as ssh-keyscan would give it
	Inventory  string   `json:"inventory"`   // fleet inventory for the topology
	started    sync.Map // host name -> *exec.Cmd of its sshd, for reaping
}

const stateFile = "cluster.json"

// Up creates the topology's hosts under dir (which it empties first) and
// returns once every sshd accepts connections. Leftovers of a crashed run
// with the same ID are removed first.
func Up(ctx context.Context, dir string, topo Topology) (*Cluster, error) {
	if err := topo.validate(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("sim: needs root (network and mount namespaces)")
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	if err := Down(dir, topo.ID); err != nil {
		return nil, fmt.Errorf("sim: clearing leftovers: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	c := &Cluster{
		Dir: dir, ID: topo.ID, Subnet: topo.Subnet, Bridge: bridgeName(topo.ID), Tools: topo.Tools, Bare: topo.Bare,
		KeyFile:    filepath.Join(dir, "id_ed25519"),
		KnownHosts: filepath.Join(dir, "known_hosts"),
		Inventory:  filepath.Join(dir, "inventory.yaml"),
	}
	for i, h := range topo.Hosts {
		c.Hosts = append(c.Hosts, Host{
			Name: h.Name, Role: h.Role, Address: hostIP(topo.Subnet, i),
			NetNS: netnsName(topo.ID, h.Name), Veth: vethName(topo.ID, i),
			Dir: filepath.Join(dir, "hosts", h.Name), Distro: topo.distroOf(h.Name),
		})
	}
	// Record the state before creating anything, so Down can clean up a
	// half-made cluster.
	if err := c.save(); err != nil {
		return nil, err
	}
	if err := c.up(ctx); err != nil {
		_ = Down(dir, topo.ID)
		return nil, err
	}
	return c, nil
}

func (c *Cluster) up(ctx context.Context) error {
	clientPub, err := writeKeyPair(c.KeyFile, "fleet-sim-client")
	if err != nil {
		return err
	}
	if err := createBridge(c.ID, c.Subnet); err != nil {
		return err
	}
	hostsFile := c.etcHosts()
	authorized := ssh.MarshalAuthorizedKey(clientPub)
	err = c.forEachHost(func(i int, h Host) error {
		if err := (rootfs{dir: h.Dir, name: h.Name, role: h.Role, bare: c.Bare, distro: h.Distro}).build(hostsFile, authorized); err != nil {
			return fmt.Errorf("sim: %s: rootfs: %w", h.Name, err)
		}
		if err := createHostNet(c.ID, c.Subnet, i, h.Name, !c.Bare); err != nil {
			return fmt.Errorf("sim: %s: network: %w", h.Name, err)
		}
		if err := c.boot(h); err != nil {
			return err
		}
		return c.StartSSHD(ctx, h.Name)
	})
	if err != nil {
		return err
	}
	if err := c.writeKnownHosts(); err != nil {
		return err
	}
	if c.Bare {
		if err := c.setUpMirror(); err != nil {
			return fmt.Errorf("sim: distribution mirror: %w", err)
		}
	}
	return os.WriteFile(c.Inventory, []byte(c.inventoryYAML()), 0o600)
}

// forEachHost runs fn for every host, a bounded number at a time.
func (c *Cluster) forEachHost(fn func(i int, h Host) error) error {
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	errs := make([]error, len(c.Hosts))
	for i, h := range c.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = fn(i, h)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Host returns the named host or panics: tests name hosts they created.
func (c *Cluster) Host(name string) Host {
	for _, h := range c.Hosts {
		if h.Name == name {
			return h
		}
	}
	panic("sim: no host " + name)
}

// boot starts the host's anchor: its mount and UTS namespaces inside its
// network namespace, with its services. Its pid names the host for nsenter.
func (c *Cluster) boot(h Host) error {
	logf, err := os.OpenFile(filepath.Join(h.Dir, "boot.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	tools := c.Tools
	if c.Bare && tools != "" {
		tools = ImagesLayer(tools)
	}
	script := rootfs{dir: h.Dir, name: h.Name, role: h.Role, distro: h.Distro}.bootScript(tools)
	cmd := exec.Command("ip", "netns", "exec", h.NetNS,
		"unshare", "--mount", "--uts", "--propagation", "private", "--", "/bin/bash", "-c", script)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: the host must outlive `make sim-up` and not get our signals.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("sim: %s: boot: %w", h.Name, err)
	}
	go cmd.Wait() // reap it whenever it dies
	return os.WriteFile(filepath.Join(h.Dir, "anchor.pid"), fmt.Appendf(nil, "%d\n", cmd.Process.Pid), 0o644)
}

// enter returns nsenter's arguments to run argv inside the host.
func (c *Cluster) enter(name string, argv ...string) ([]string, error) {
	pid, err := os.ReadFile(filepath.Join(c.Host(name).Dir, "anchor.pid"))
	if err != nil {
		return nil, err
	}
	return append([]string{"--target", strings.TrimSpace(string(pid)), "--net", "--mount", "--uts", "--"}, argv...), nil
}

// StartSSHD starts sshd inside the host and waits until it answers.
func (c *Cluster) StartSSHD(ctx context.Context, name string) error {
	h := c.Host(name)
	logf, err := os.OpenFile(filepath.Join(h.Dir, "sshd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	if err := c.waitBooted(ctx, h); err != nil {
		return err
	}
	args, err := c.enter(name, "/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_config")
	if err != nil {
		return fmt.Errorf("sim: %s: %w", name, err)
	}
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("sim: %s: start sshd: %w", name, err)
	}
	go cmd.Wait()
	if err := waitSSH(ctx, h.Address+":22", 30*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(h.Dir, "sshd.log"))
		return fmt.Errorf("%w; sshd.log: %s", err, strings.TrimSpace(string(log)))
	}
	return nil
}

// bootTimeout bounds the wait for a host's boot script. It mounts a few
// dozen things; with hundreds of hosts booting on two CPUs the kernel's
// mount lock makes that take seconds, so the bound is generous and an anchor
// that died is reported at once instead.
const bootTimeout = 90 * time.Second

// waitBooted waits until the host's boot script has made its mounts, and
// says why not: the anchor exited (with its boot.log) or the time ran out.
func (c *Cluster) waitBooted(ctx context.Context, h Host) error {
	ctx, cancel := context.WithTimeout(ctx, bootTimeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !c.booted(h.Name) {
		bootLog := func() string {
			b, _ := os.ReadFile(filepath.Join(h.Dir, "boot.log"))
			return strings.TrimSpace(string(b))
		}
		if pid, alive := c.anchorAlive(h); !alive {
			return fmt.Errorf("sim: %s did not boot: its anchor (pid %d) exited; boot.log: %q", h.Name, pid, bootLog())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sim: %s did not boot: boot script unfinished after %s (%w); boot.log: %q", h.Name, bootTimeout, ctx.Err(), bootLog())
		case <-tick.C:
		}
	}
	return nil
}

// anchorAlive reports the host's anchor pid and whether it still runs.
func (c *Cluster) anchorAlive(h Host) (int, bool) {
	data, err := os.ReadFile(filepath.Join(h.Dir, "anchor.pid"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return 0, false
	}
	// A zombie still answers kill 0: look at its state instead.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return pid, false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return pid, false
	}
	return pid, true
}

// booted reports whether the host's boot script has made all its mounts:
// it touches /run/fleet-sim-booted (in the host's own /run) last.
func (c *Cluster) booted(name string) bool {
	_, err := os.Stat(filepath.Join(c.Host(name).Dir, "run/fleet-sim-booted"))
	return err == nil
}

// StopSSHD kills every sshd process of the host: the listener and the
// per-connection children, so open connections die too.
func (c *Cluster) StopSSHD(name string) error {
	_, err := c.Kill(name, "sshd")
	return err
}

// Kill SIGKILLs every process of the host whose command is comm (as
// /proc/PID/comm has it) and returns how many there were. Hosts share the
// machine's PID namespace: only the host's network namespace tells its
// processes from another host's nginx.
func (c *Cluster) Kill(name, comm string) (int, error) {
	pids, err := netnsPids(c.Host(name).NetNS)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, pid := range pids {
		if got, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(got)) == comm {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				n++
			}
		}
	}
	return n, nil
}

// LinkDown cuts the host off the network, as a pulled cable would.
func (c *Cluster) LinkDown(name string) error { return ip("link", "set", c.Host(name).Veth, "down") }

// LinkUp restores the host's link.
func (c *Cluster) LinkUp(name string) error { return ip("link", "set", c.Host(name).Veth, "up") }

// RotateHostKey gives the host a new key and restarts its sshd, as a
// reinstalled machine would look. known_hosts is left as it was.
func (c *Cluster) RotateHostKey(ctx context.Context, name string) error {
	h := c.Host(name)
	if err := c.StopSSHD(name); err != nil {
		return err
	}
	key := filepath.Join(h.Dir, "etc/ssh/ssh_host_ed25519_key")
	os.Remove(key)
	os.Remove(key + ".pub")
	if _, err := writeKeyPair(key, "root@"+name); err != nil {
		return err
	}
	return c.StartSSHD(ctx, name)
}

// Exec runs argv inside the host's namespaces (network, mount, UTS), as root
// on that host, without SSH. Tests use it to look at or break a host.
func (c *Cluster) Exec(name string, argv ...string) ([]byte, error) {
	args, err := c.enter(name, argv...)
	if err != nil {
		return nil, err
	}
	out, err := exec.Command("nsenter", args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("sim: %s: %s: %w: %s", name, strings.Join(argv, " "), err, out)
	}
	return out, nil
}

// Start runs argv inside the host in the background (a service the test
// needs there, such as a package repository's web server), its output
// appended to logName in the host's folder. It ends with the host.
func (c *Cluster) Start(name, logName string, argv ...string) error {
	args, err := c.enter(name, argv...)
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(c.Host(name).Dir, logName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("sim: %s: start %s: %w", name, strings.Join(argv, " "), err)
	}
	go cmd.Wait()
	return nil
}

// EtcdMembers asks the etcd on a control-plane host for its member list,
// through etcd's HTTP gateway with the healthcheck client certificate
// kubeadm makes, and returns the members' names.
func (c *Cluster) EtcdMembers(name string) ([]string, error) {
	out, err := c.Exec(name, "curl", "-sS", "--max-time", "10",
		"--cacert", "/etc/kubernetes/pki/etcd/ca.crt",
		"--cert", "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
		"--key", "/etc/kubernetes/pki/etcd/healthcheck-client.key",
		"-X", "POST", "https://127.0.0.1:2379/v3/cluster/member/list", "-d", "{}")
	if err != nil {
		return nil, err
	}
	var resp struct {
		Members []struct {
			Name     string   `json:"name"`
			PeerURLs []string `json:"peerURLs"`
		} `json:"members"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		return nil, fmt.Errorf("sim: %s: etcd member list: %w: %s", name, err, out)
	}
	var names []string
	for _, m := range resp.Members {
		names = append(names, m.Name)
	}
	sort.Strings(names)
	return names, nil
}

// HostKey returns the public host key the host currently serves.
func (c *Cluster) HostKey(name string) (ssh.PublicKey, error) {
	return readPublicKey(filepath.Join(c.Host(name).Dir, "etc/ssh/ssh_host_ed25519_key.pub"))
}

func (c *Cluster) etcHosts() string {
	var b strings.Builder
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, h := range c.Hosts {
		fmt.Fprintf(&b, "%s\t%s\n", h.Address, h.Name)
	}
	return b.String()
}

func (c *Cluster) writeKnownHosts() error {
	var b strings.Builder
	for _, h := range c.Hosts {
		k, err := c.HostKey(h.Name)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %s", h.Address, ssh.MarshalAuthorizedKey(k))
	}
	return os.WriteFile(c.KnownHosts, []byte(b.String()), 0o600)
}

func (c *Cluster) save() error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.Dir, stateFile), b, 0o600)
}

// Load reads the state of a cluster brought up by Up (possibly by another
// process, such as `make sim-up`).
func Load(dir string) (*Cluster, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	if err := json.Unmarshal(b, c); err != nil {
		return nil, fmt.Errorf("sim: %s: %w", dir, err)
	}
	return c, nil
}

// Close tears the cluster down.
func (c *Cluster) Close() error { return Down(c.Dir, c.ID) }

// Down removes everything a topology with this ID made: every process in its
// namespaces (found by namespace, never by name), the namespaces and their
// links, the bridge, and dir. It works from the kernel's state alone, so it
// also cleans up after a crashed run, and does nothing when nothing is left.
func Down(dir, id string) error {
	nss, err := listNetns(netnsPrefix(id))
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range nss {
		if err := killNetns(ns); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := ip("netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	// A namespace can outlive its deletion while the kernel still holds a
	// reference (seen after etcd and the API server ran in it); its veth
	// then keeps the name a new host needs. Delete our end: the pair goes.
	veths, err := listLinks(vethPrefix(id))
	if err != nil {
		errs = append(errs, err)
	}
	for _, v := range veths {
		if err := ip("link", "del", v); err != nil && linkExists(v) {
			errs = append(errs, err)
		}
	}
	if br := bridgeName(id); linkExists(br) {
		if err := ip("link", "del", br); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 && dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// killNetns SIGKILLs every process in ns and waits until none is left.
func killNetns(ns string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids, err := netnsPids(ns)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sim: processes %v in %s survive SIGKILL", pids, ns)
		}
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSSH waits until addr sends an SSH banner.
func waitSSH(ctx context.Context, addr string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err == nil {
			buf := make([]byte, 4)
			conn.SetReadDeadline(time.Now().Add(time.Second))
			_, err = conn.Read(buf)
			conn.Close()
			if err == nil && string(buf) == "SSH-" {
				return nil
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("sim: sshd at %s not answering: %v", addr, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// checkDir refuses a state folder that a host's own mounts would hide.
func checkDir(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for _, d := range privateDirs {
		if abs == d || strings.HasPrefix(abs, d+"/") {
			return fmt.Errorf("sim: state folder %s lies under %s, which each host mounts privately; use e.g. /var/tmp/fleet-sim", abs, d)
		}
	}
	return nil
}
