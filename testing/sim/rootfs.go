package sim

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// privateDirs are the directories each host sees as its own. They are bind
// mounted from the host's folder over the machine's paths, inside the host's
// mount namespace only. The host's folder must not lie under any of them
// (see Up), or a mount would hide the sources of the next ones.
var privateDirs = []string{
	"/etc/kubernetes", "/etc/ssh", "/etc/nginx", "/etc/sudoers.d", "/etc/fleet", "/etc/cfssl", "/etc/systemd",
	"/root", "/home",
	"/var/lib/etcd", "/var/lib/kubelet", "/var/lib/nginx", "/var/lib/fleet", "/var/lib/cfssl", "/var/log",
	"/run", "/tmp",
	// Empty, so without man-db's auto-update flag: a package installed on
	// a host does not rebuild the machine's manual index.
	"/var/lib/man-db",
}

// packageState are the package managers' folders each host has its own
// copy-on-write view of (like /etc and /usr): apt-get and dpkg on a host
// install into that host only, and the machine running the tests keeps its
// own state untouched.
// dpkg's first: forgetPackages writes into its upper layer (pkg0-upper).
var packageState = []string{"/var/lib/dpkg", "/var/lib/apt", "/var/cache/apt"}

// privateFiles are single files each host has its own copy of: its name,
// its view of the other hosts, and the accounts the tests log in as.
var privateFiles = []string{"/etc/hostname", "/etc/hosts", "/etc/passwd", "/etc/group", "/etc/shadow"}

// Test accounts besides root: SudoUser may sudo without a password,
// PasswordSudoUser must type one (sudo -n then fails at once).
const (
	SudoUser         = "fleetsudo"
	PasswordSudoUser = "fleetpw"
	sudoUID          = 4701
	passwordSudoUID  = 4702
)

// SudoLogFile is where sudo logs each command it runs, on every host.
const SudoLogFile = "/var/log/sudo.log"

const sudoLog = "Defaults logfile=" + SudoLogFile + "\nDefaults loglinelen=0\n"

type rootfs struct {
	dir    string // the host's folder on the machine
	name   string
	role   string
	bare   bool   // see Topology.Bare
	distro string // see Host.Distro
}

// rpmState are the folders of rpm's database and dnf's state and cache,
// each Rocky host's own and empty at first: nothing is installed from
// rpm packages on a fresh host of the test bed.
var rpmState = []string{"/var/lib/rpm", "/var/lib/dnf", "/var/cache/dnf"}

// rockyRelease are the files that make a host claim Rocky Linux 9, in
// the upper layer of its /etc. Debian's rpm keeps its database in the
// user's home; a Rocky host keeps it in /var/lib/rpm, and so does this one.
var rockyRelease = map[string]string{
	"os-release": `NAME="Rocky Linux"
VERSION="9.5 (Blue Onyx)"
ID="rocky"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.5"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Rocky Linux 9.5 (Blue Onyx)"
`,
	"redhat-release": "Rocky Linux release 9.5 (Blue Onyx)\n",
	"rpm/macros":     "%_dbpath /var/lib/rpm\n",
	// Debian's dnf-plugins-core turns on its local plugin (a repository
	// of what dnf installed, checked with no key); Rocky has no such thing.
	"dnf/plugins/local.conf": "[main]\nenabled = false\n",
}

// claimRocky writes rockyRelease and makes the rpm state folders.
func (r rootfs) claimRocky() error {
	for name, content := range rockyRelease {
		p := filepath.Join(r.path("/etc-upper"), name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	for _, d := range rpmState {
		if err := os.MkdirAll(r.path(d), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// bareHidden are the node programs a bare host must not find even when the
// machine running the tests has them (a kubectl of the machine's cloud
// SDK): whiteouts in the host's /usr upper layer hide them, as overlayfs
// hides a deleted file.
// The load balancer's nginx goes too: fleet installs it from the
// distribution's packages.
var bareHidden = []string{"bin/kubeadm", "bin/kubelet", "bin/kubectl", "bin/containerd", "bin/crictl", "local/bin/containerd",
	"sbin/nginx", "lib/nginx", "share/nginx"}

// barePackages are the packages a bare host's dpkg must not believe
// installed, even when the machine has them (Google's kubectl package).
var barePackages = map[string]bool{"kubeadm": true, "kubelet": true, "kubectl": true, "containerd": true, "runc": true, "cri-tools": true, "kubernetes-cni": true,
	"nginx": true, "nginx-common": true}

// forgotten reports whether a bare host's dpkg must not know the package.
func forgotten(name string) bool {
	return barePackages[name] || strings.HasPrefix(name, "libnginx-mod-")
}

// forgetPackages gives the host a dpkg status without barePackages, in the
// upper layer of its /var/lib/dpkg.
func (r rootfs) forgetPackages() error {
	data, err := os.ReadFile("/var/lib/dpkg/status")
	if err != nil {
		return nil // not a dpkg machine: nothing to forget
	}
	var kept []string
	for _, stanza := range strings.Split(string(data), "\n\n") {
		name, _, _ := strings.Cut(strings.TrimPrefix(stanza, "Package: "), "\n")
		if strings.HasPrefix(stanza, "Package: ") && forgotten(name) {
			continue
		}
		kept = append(kept, stanza)
	}
	return os.WriteFile(r.path("/pkg0-upper/status"), []byte(strings.Join(kept, "\n\n")), 0o644)
}

// hideFromBare writes the whiteouts of bareHidden (character devices 0:0).
func (r rootfs) hideFromBare() error {
	for _, p := range bareHidden {
		if _, err := os.Lstat(filepath.Join("/usr", p)); err != nil {
			continue
		}
		w := filepath.Join(r.path("/usr-upper"), p)
		if err := os.MkdirAll(filepath.Dir(w), 0o755); err != nil {
			return err
		}
		if err := syscall.Mknod(w, syscall.S_IFCHR, 0); err != nil && !os.IsExist(err) {
			return fmt.Errorf("whiteout %s: %w", p, err)
		}
	}
	return nil
}

func (r rootfs) path(p string) string { return filepath.Join(r.dir, p) }

// build lays out the host's folder: private directories, account files,
// sshd configuration, host key and authorized keys.
func (r rootfs) build(hostsFile string, clientPub []byte) error {
	for _, d := range privateDirs {
		if err := os.MkdirAll(r.path(d), 0o755); err != nil {
			return err
		}
	}
	for _, d := range []string{"/run/sshd", "/var/log/nginx", "/var/lib/nginx", "/root/.ssh", "/usr-upper", "/usr-work", "/etc-upper", "/etc-work"} {
		if err := os.MkdirAll(r.path(d), 0o755); err != nil {
			return err
		}
	}
	for i := range packageState {
		for _, d := range []string{fmt.Sprintf("/pkg%d-upper", i), fmt.Sprintf("/pkg%d-work", i)} {
			if err := os.MkdirAll(r.path(d), 0o755); err != nil {
				return err
			}
		}
	}
	for _, d := range []string{"/root", "/root/.ssh"} {
		if err := os.Chmod(r.path(d), 0o700); err != nil {
			return err
		}
	}
	if err := os.Chmod(r.path("/tmp"), 0o1777); err != nil {
		return err
	}
	if !r.bare { // a bare host's nginx package brings its own
		if err := copyTree("/etc/nginx", r.path("/etc/nginx")); err != nil {
			return err
		}
	}
	if err := os.WriteFile(r.path("/etc/hostname"), []byte(r.name+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(r.path("/etc/hosts"), []byte(hostsFile), 0o644); err != nil {
		return err
	}
	if err := r.writeAccounts(clientPub); err != nil {
		return err
	}
	if err := os.WriteFile(r.path("/root/.ssh/authorized_keys"), clientPub, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(r.path("/etc/ssh/sshd_config"), []byte(sshdConfig), 0o644); err != nil {
		return err
	}
	if r.distro == DistroRocky {
		if err := r.claimRocky(); err != nil {
			return err
		}
	}
	if r.bare {
		if err := r.hideFromBare(); err != nil {
			return err
		}
		if err := r.forgetPackages(); err != nil {
			return err
		}
	}
	_, err := writeKeyPair(r.path("/etc/ssh/ssh_host_ed25519_key"), "root@"+r.name)
	return err
}

// writeAccounts copies the machine's account files and adds the two test
// users, so the machine's own /etc/passwd is never touched.
func (r rootfs) writeAccounts(clientPub []byte) error {
	users := []struct {
		name    string
		uid     int
		sudoers string
	}{
		{SudoUser, sudoUID, SudoUser + " ALL=(ALL:ALL) NOPASSWD: ALL\n"},
		{PasswordSudoUser, passwordSudoUID, PasswordSudoUser + " ALL=(ALL:ALL) ALL\n"},
	}
	var passwd, group, shadow strings.Builder
	for _, u := range users {
		fmt.Fprintf(&passwd, "%s:x:%d:%d::/home/%s:/bin/sh\n", u.name, u.uid, u.uid, u.name)
		fmt.Fprintf(&group, "%s:x:%d:\n", u.name, u.uid)
		// "*": no password login, but not locked, so sshd accepts keys.
		fmt.Fprintf(&shadow, "%s:*:19000:0:99999:7:::\n", u.name)
		home := r.path("/home/" + u.name)
		if err := os.MkdirAll(filepath.Join(home, ".ssh"), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(home, ".ssh/authorized_keys"), clientPub, 0o600); err != nil {
			return err
		}
		for _, p := range []string{home, filepath.Join(home, ".ssh"), filepath.Join(home, ".ssh/authorized_keys")} {
			if err := os.Chown(p, u.uid, u.uid); err != nil {
				return err
			}
		}
		if err := os.WriteFile(r.path("/etc/sudoers.d/"+u.name), []byte(u.sudoers), 0o440); err != nil {
			return err
		}
	}
	// sudo keeps its own log of every command line it runs, unwrapped, as a
	// security-minded host would: the tests read it for secrets.
	if err := os.WriteFile(r.path("/etc/sudoers.d/00-log"), []byte(sudoLog), 0o440); err != nil {
		return err
	}
	for file, extra := range map[string]string{"/etc/passwd": passwd.String(), "/etc/group": group.String(), "/etc/shadow": shadow.String()} {
		base, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if file == "/etc/shadow" {
			mode = 0o640
		}
		if err := os.WriteFile(r.path(file), append(base, extra...), mode); err != nil {
			return err
		}
	}
	return nil
}

// sshdConfig is a plain OpenSSH server: keys only, root by key, SFTP inside
// sshd. MaxStartups is raised because a test or benchmark connects to up to
// 240 hosts at once through one bridge, and fleet itself opens one
// connection per host.
const sshdConfig = `# written by fleet's test harness (testing/sim)
ListenAddress 0.0.0.0:22
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
AllowTcpForwarding yes
PrintMotd no
MaxStartups 100:30:200
Subsystem sftp internal-sftp
`

// bootScript runs inside the host's fresh mount and UTS namespaces: it makes
// every private path the host's own, gives it its own /usr (an overlay with
// the node's binaries when tools is set), sets the hostname, starts the
// host's services and stays as the anchor that keeps the namespaces alive.
// sshd is started separately, into this anchor's namespaces.
func (r rootfs) bootScript(tools string) string {
	var b strings.Builder
	b.WriteString("set -e\nmount --make-rprivate /\n")
	// The host's own /etc first (copy-on-write over the machine's), so
	// what fleet writes there (modules-load.d, sysctl.d, fstab,
	// containerd) stays on this host; the binds below go on top of it.
	fmt.Fprintf(&b, "mount -t overlay overlay -o lowerdir=/etc,upperdir=%s,workdir=%s /etc\n", r.path("/etc-upper"), r.path("/etc-work"))
	for i, d := range packageState {
		fmt.Fprintf(&b, "mount -t overlay overlay -o lowerdir=%s,upperdir=%s,workdir=%s %s\n", d, r.path(fmt.Sprintf("/pkg%d-upper", i)), r.path(fmt.Sprintf("/pkg%d-work", i)), d)
	}
	for _, f := range privateFiles {
		fmt.Fprintf(&b, "mount --bind %s %s\n", r.path(f), f)
	}
	private := privateDirs
	if r.distro == DistroRocky {
		private = append(slices.Clone(privateDirs), rpmState...)
	}
	for _, d := range private {
		fmt.Fprintf(&b, "mkdir -p %s\nmount --bind %s %s\n", d, r.path(d), d)
	}
	lower := "/usr"
	if tools != "" {
		lower = tools + ":/usr"
	}
	fmt.Fprintf(&b, "mount -t overlay overlay -o lowerdir=%s,upperdir=%s,workdir=%s /usr\n",
		lower, r.path("/usr-upper"), r.path("/usr-work"))
	fmt.Fprintf(&b, "hostname %s\n", r.name)
	// ip netns exec gave the host a fresh /sys; a node has its cgroups
	// there, so mount the machine's hierarchies again, as they are.
	b.WriteString(cgroupMounts())
	b.WriteString("touch /run/fleet-sim-booted\nset +e\n")
	b.WriteString(pause)
	if tools != "" {
		b.WriteString(services)
		if r.role == "loadbalancer" {
			// The load balancer may run nginx as a container (runAs:
			// container): it gets an engine for the docker CLI.
			b.WriteString(dockerService)
		}
	}
	// Reap whatever ends; never exit while the host is up.
	b.WriteString("while :; do wait; pause; done\n")
	return b.String()
}

// pause waits a second without starting a process (bash's read timing
// out on a FIFO nobody writes to): every host's service loops wait this way
// while there is nothing to run, and a hundred hosts starting sleep(1)
// every second took a tenth of the machine from the hosts' real work.
const pause = `mkfifo -m 600 /run/fleet-sim-pause 2>/dev/null; exec 9<>/run/fleet-sim-pause
pause() { read -r -t 1 -u 9 _; }
`

// services are the host's daemons, run the way their systemd units would:
// restarted when they exit. The kubelet gets its flags from
// kubeadm-flags.env at every start, as the kubeadm drop-in arranges. It
// waits for its config file rather than crash-loop without one as a real
// kubelet would: twenty kubelets started every second would eat the CPU of
// a machine that runs all the hosts.
// containerd is the emulated runtime, under its own name where the layer
// put it, as containerd where fleet uploaded it to a bare host, and in
// place of the distribution's containerd once its package is installed.
const services = `(while :; do
	if [ -x /usr/local/bin/sim-containerd ]; then /usr/local/bin/sim-containerd >>/var/log/containerd.log 2>&1 9>&-
	elif [ -x /usr/local/bin/containerd ]; then /usr/local/bin/containerd >>/var/log/containerd.log 2>&1 9>&-
	elif [ -x /usr/bin/containerd ]; then /usr/libexec/fleet-sim/containerd >>/var/log/containerd.log 2>&1 9>&-
	fi
	pause
done) &
(while :; do
	KUBELET_KUBEADM_ARGS=""; KUBELET_EXTRA_ARGS=""
	[ -f /var/lib/kubelet/kubeadm-flags.env ] && . /var/lib/kubelet/kubeadm-flags.env
	[ -f /etc/default/kubelet ] && . /etc/default/kubelet
	[ -x /usr/bin/kubelet ] && [ -f /var/lib/kubelet/config.yaml ] && /usr/bin/kubelet --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \
		--kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml \
		$KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS >>/var/log/kubelet.log 2>&1 9>&-
	pause
done) &
`

// dockerService is the emulated Docker engine, restarted as its unit would be.
const dockerService = `(while :; do /usr/local/bin/sim-dockerd >>/var/log/docker.log 2>&1 9>&-; pause; done) &
`

// cgroupMounts returns commands that mount, under the host's /sys/fs/cgroup,
// the cgroup hierarchies the machine has mounted there (v1, v2 or hybrid).
func cgroupMounts() string {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return ""
	}
	var b strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[1], "/sys/fs/cgroup") {
			continue
		}
		fmt.Fprintf(&b, "mkdir -p %s && mount -t %s -o %s %s %s 2>/dev/null || true\n", f[1], f[2], f[3], f[0], f[1])
	}
	return b.String()
}

func copyTree(src, dst string) error {
	out, err := exec.Command("cp", "-a", src+"/.", dst).CombinedOutput()
	if err != nil {
		return fmt.Errorf("copy %s: %v: %s", src, err, out)
	}
	return nil
}
