package sim

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/fleetops/fleet/testing/aptrepo"
	"github.com/fleetops/fleet/testing/rpmrepo"
)

// Bare hosts are a fresh Debian install, and like one they come with
// their distribution's mirror configured: a signed repository of Debian's
// own .deb files (aptrepo.DebsDir: containerd, runc, nginx, fetched by
// scripts/setup.sh), served from the load balancer host, in place of the
// machine's sources. So fleet installs the distribution's packages with
// the real apt-get, and nothing leaves the test network.

// MirrorPort is where the distribution mirror of a bare cluster listens.
const MirrorPort = 8081

// MirrorKey is where bare hosts keep the mirror's signing key, as a
// distribution keeps its archive key.
const MirrorKey = "/etc/apt/keyrings/sim-mirror.asc"

// setUpMirror builds and serves the mirror and points every host's apt at
// it. Without setup.sh's .deb files there is none: apt finds nothing.
func (c *Cluster) setUpMirror() error {
	debs, _ := filepath.Glob(filepath.Join(aptrepo.DebsDir, "*.deb"))
	if len(debs) == 0 {
		return nil
	}
	repo, err := aptrepo.Build(filepath.Join(c.Dir, "mirror"), nil, debs...)
	if err != nil {
		return err
	}
	server := c.mirrorHost()
	url, err := c.ServeDir(server, repo.Dir, MirrorPort, "InRelease")
	if err != nil {
		return err
	}
	key, err := os.ReadFile(repo.KeyFile)
	if err != nil {
		return err
	}
	const point = `set -e
mkdir -p /etc/apt/keyrings
printf '%s' "$3" > "$2"
rm -f /etc/apt/sources.list.d/*
echo "deb [signed-by=$2] $1 /" > /etc/apt/sources.list`
	err = c.forEachHost(func(_ int, h Host) error {
		_, err := c.Exec(h.Name, "sh", "-c", point, "sim-mirror", url, MirrorKey, string(key))
		return err
	})
	if err != nil {
		return err
	}
	return c.setUpRPMMirror(server)
}

// mirrorHost is the host that serves the mirrors: the load balancer, or
// the first host.
func (c *Cluster) mirrorHost() string {
	for _, h := range c.Hosts {
		if h.Role == "loadbalancer" {
			return h.Name
		}
	}
	return c.Hosts[0].Name
}

// RPMMirrorPort is where the rpm mirror of a bare cluster with Rocky
// hosts listens.
const RPMMirrorPort = 8083

// RPMMirrorKey is where Rocky hosts keep the rpm mirror's signing key, as
// Rocky keeps its own (/etc/pki/rpm-gpg).
const RPMMirrorKey = "/etc/pki/rpm-gpg/RPM-GPG-KEY-sim-mirror"

// rockyNginxConf is nginx.conf as RHEL's nginx package lays it out: the
// dynamic modules' snippets from /usr/share/nginx/modules, sites from
// conf.d. (No user line: Debian's nginx runs its workers as nobody, and
// the package's scripts, which would add the nginx user, are not kept.)
const rockyNginxConf = `# nginx.conf of the test bed's Rocky nginx package, laid out as RHEL's
worker_processes auto;
error_log /var/log/nginx/error.log;
pid /run/nginx.pid;
include /usr/share/nginx/modules/*.conf;

events {
    worker_connections 1024;
}

http {
    access_log /var/log/nginx/access.log;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    include /etc/nginx/conf.d/*.conf;
}
`

// rockyPackages are the Rocky hosts' distribution packages, repackaged
// from Debian's .deb files: containerd and runc, and nginx with its
// stream module as RHEL splits and lays them out (nginx, nginx-mod-stream;
// the module loaded by a snippet in /usr/share/nginx/modules).
func rockyPackages(dir string) ([]rpmrepo.Package, error) {
	var pkgs []rpmrepo.Package
	for _, name := range []string{"containerd", "runc", "nginx", "libnginx-mod-stream"} {
		p, err := rpmrepo.FromDeb(dir, name, aptrepo.DebsDir)
		if err != nil {
			return nil, err
		}
		pkgs = append(pkgs, p)
	}
	nginx, stream := &pkgs[2], &pkgs[3]
	stream.Name = "nginx-mod-stream"
	delete(stream.Files, "/usr/share/nginx/modules-available/mod-stream.conf")
	extra := map[string]struct {
		pkg     *rpmrepo.Package
		content string
	}{
		"/etc/nginx/nginx.conf":                    {nginx, rockyNginxConf},
		"/usr/share/nginx/modules/mod-stream.conf": {stream, "load_module \"/usr/lib/nginx/modules/ngx_stream_module.so\";\n"},
		"/etc/nginx/conf.d/README":                 {nginx, "sites go here\n"},
	}
	for path, e := range extra {
		src := filepath.Join(dir, "extra", filepath.Base(path))
		if err := os.MkdirAll(filepath.Dir(src), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(src, []byte(e.content), 0o644); err != nil {
			return nil, err
		}
		e.pkg.Files[path] = src
	}
	nginx.Files["/etc/nginx/mime.types"] = "/etc/nginx/mime.types" // the machine's nginx-common
	return pkgs, nil
}

// setUpRPMMirror gives the Rocky hosts of a bare cluster their
// distribution's repository: rockyPackages (Rocky's users get containerd
// from such a repository: Docker's, or a site's), signed, served from server, configured in
// /etc/yum.repos.d with gpgcheck and repo_gpgcheck.
func (c *Cluster) setUpRPMMirror(server string) error {
	var rocky []string
	for _, h := range c.Hosts {
		if h.Distro == DistroRocky {
			rocky = append(rocky, h.Name)
		}
	}
	if len(rocky) == 0 {
		return nil
	}
	pkgs, err := rockyPackages(filepath.Join(c.Dir, "rpm-mirror-src"))
	if err != nil {
		return err
	}
	repo, err := rpmrepo.Build(filepath.Join(c.Dir, "rpm-mirror"), pkgs, "")
	if err != nil {
		return err
	}
	url, err := c.ServeDir(server, repo.Dir, RPMMirrorPort, "repodata/repomd.xml")
	if err != nil {
		return err
	}
	key, err := os.ReadFile(repo.KeyFile)
	if err != nil {
		return err
	}
	const point = `set -e
mkdir -p /etc/pki/rpm-gpg /etc/yum.repos.d
printf '%s' "$3" > "$2"
printf '[sim-baseos]\nname=Rocky Linux (fleet-sim mirror)\nbaseurl=%s\nenabled=1\ngpgcheck=1\nrepo_gpgcheck=1\ngpgkey=file://%s\n' "$1" "$2" > /etc/yum.repos.d/sim-baseos.repo`
	for _, name := range rocky {
		if out, err := c.Exec(name, "sh", "-c", point, "sim-rpm-mirror", url, RPMMirrorKey, string(key)); err != nil {
			return fmt.Errorf("%s: %w: %s", name, err, out)
		}
	}
	return nil
}

// ServeDir serves dir over HTTP from host on port (a web server in that
// host's namespaces, ended with it) and returns its URL once probe, a
// file of dir, is served.
func (c *Cluster) ServeDir(host, dir string, port int, probe string) (string, error) {
	addr := c.Host(host).Address
	if err := c.Start(host, "http-"+strconv.Itoa(port)+".log", "python3", "-m", "http.server", "--bind", addr, "--directory", dir, strconv.Itoa(port)); err != nil {
		return "", err
	}
	url := "http://" + addr + ":" + strconv.Itoa(port) + "/"
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := client.Get(url + probe)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, nil
			}
			err = fmt.Errorf("%s", resp.Status)
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("sim: %s does not answer: %w", url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
