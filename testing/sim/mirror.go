package sim

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/fleetops/fleet/testing/aptrepo"
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
	server := c.Hosts[0].Name
	for _, h := range c.Hosts {
		if h.Role == "loadbalancer" {
			server = h.Name
			break
		}
	}
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
	return c.forEachHost(func(_ int, h Host) error {
		_, err := c.Exec(h.Name, "sh", "-c", point, "sim-mirror", url, MirrorKey, string(key))
		return err
	})
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
