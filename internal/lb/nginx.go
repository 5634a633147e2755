// Package lb renders the NGINX stream configuration that balances the
// Kubernetes API across the control-plane hosts. Pure functions: the
// playbook uploads the result, checks it with nginx -t and reloads.
package lb

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"time"
)

// Backend is one kube-apiserver behind the load balancer.
type Backend struct {
	Name    string // inventory name, written as a comment
	Address string // IP or DNS name
	Port    int
}

// Config is what the stream proxy needs.
type Config struct {
	ListenAddress  string // an IP to listen on; "" for every address
	ListenPort     int
	Backends       []Backend
	ConnectTimeout time.Duration // proxy_connect_timeout; 0 means DefaultConnectTimeout
	ProxyTimeout   time.Duration // proxy_timeout; 0 means DefaultProxyTimeout
}

// The seeds' values: fail over to another master after one second, drop a
// connection idle for three.
const (
	DefaultConnectTimeout = time.Second
	DefaultProxyTimeout   = 3 * time.Second
)

// Header marks the file as fleet's, so nobody edits what apply overwrites.
const Header = "# Managed by fleet: changes here are overwritten by fleet apply.\n"

var (
	hostName = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$`)
	nodeName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// Render returns the stream block. It refuses values that could smuggle a
// directive into the file (a ';', '{' or newline in an address or name).
func Render(c Config) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	connect, proxy := c.ConnectTimeout, c.ProxyTimeout
	if connect == 0 {
		connect = DefaultConnectTimeout
	}
	if proxy == 0 {
		proxy = DefaultProxyTimeout
	}
	var b bytes.Buffer
	b.WriteString(Header)
	b.WriteString("stream {\n")
	b.WriteString("    upstream kube_apiserver {\n")
	b.WriteString("        least_conn;\n")
	for _, be := range c.Backends {
		fmt.Fprintf(&b, "        server %s; # %s\n", net.JoinHostPort(be.Address, strconv.Itoa(be.Port)), be.Name)
	}
	b.WriteString("    }\n\n")
	b.WriteString("    server {\n")
	listen := strconv.Itoa(c.ListenPort)
	if c.ListenAddress != "" {
		listen = net.JoinHostPort(c.ListenAddress, listen)
	}
	fmt.Fprintf(&b, "        listen %s;\n", listen)
	b.WriteString("        proxy_pass kube_apiserver;\n")
	fmt.Fprintf(&b, "        proxy_connect_timeout %s;\n", nginxDuration(connect))
	fmt.Fprintf(&b, "        proxy_timeout %s;\n", nginxDuration(proxy))
	b.WriteString("    }\n")
	b.WriteString("}\n")
	return b.Bytes(), nil
}

func (c Config) validate() error {
	if c.ListenPort < 1 || c.ListenPort > 65535 {
		return fmt.Errorf("lb: listen port %d out of range", c.ListenPort)
	}
	if c.ListenAddress != "" {
		if _, err := netip.ParseAddr(c.ListenAddress); err != nil {
			return fmt.Errorf("lb: listen address %q is not an IP", c.ListenAddress)
		}
	}
	if len(c.Backends) == 0 {
		return fmt.Errorf("lb: no backends: the upstream needs at least one master")
	}
	seen := map[string]bool{}
	for _, be := range c.Backends {
		if !nodeName.MatchString(be.Name) {
			return fmt.Errorf("lb: backend name %q is not a node name", be.Name)
		}
		if _, err := netip.ParseAddr(be.Address); err != nil && !hostName.MatchString(be.Address) {
			return fmt.Errorf("lb: backend %s: address %q is neither an IP nor a host name", be.Name, be.Address)
		}
		if be.Port < 1 || be.Port > 65535 {
			return fmt.Errorf("lb: backend %s: port %d out of range", be.Name, be.Port)
		}
		key := net.JoinHostPort(be.Address, strconv.Itoa(be.Port))
		if seen[key] {
			return fmt.Errorf("lb: backend %s listed twice", key)
		}
		seen[key] = true
	}
	for name, d := range map[string]time.Duration{"proxy_connect_timeout": c.ConnectTimeout, "proxy_timeout": c.ProxyTimeout} {
		if d < 0 || (d > 0 && d < time.Millisecond) {
			return fmt.Errorf("lb: %s %s must be at least 1ms", name, d)
		}
	}
	return nil
}

// nginxDuration writes d in a unit nginx accepts: whole seconds when exact,
// otherwise milliseconds (nginx takes no fractions).
func nginxDuration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return fmt.Sprintf("%dms", d/time.Millisecond)
}

// ContainerMain is the whole nginx.conf of a load balancer run as a
// container: fleet owns it, the image's own is not used. streamFile is the
// stream block's file name, relative: nginx resolves it against this file's
// folder, so a staged copy beside a staged stream block checks exactly what
// goes live.
func ContainerMain(streamFile string) ([]byte, error) {
	if !relativeConf.MatchString(streamFile) {
		return nil, fmt.Errorf("lb: stream file %q: want a plain file name ending in .conf", streamFile)
	}
	var b bytes.Buffer
	mainHead(&b, "auto", "", "stderr notice; # docker logs", 4096)
	fmt.Fprintf(&b, "include %s;\n", streamFile)
	return b.Bytes(), nil
}

// mainHead writes what a whole nginx.conf of fleet's starts with: the
// header, the stream module where Debian and where RHEL load it (Debian-
// or RHEL-built images and hosts; the official image has it built in and
// no such folder: an unmatched glob is fine), the workers, the pid file line (or none), the
// error log and the events block.
func mainHead(b *bytes.Buffer, workers, pidLine, errorLog string, connections int) {
	b.WriteString(Header)
	b.WriteString("include /etc/nginx/modules-enabled/*.conf;\n")
	b.WriteString("include /usr/share/nginx/modules/*.conf;\n")
	fmt.Fprintf(b, "worker_processes %s;\n", workers)
	b.WriteString(pidLine)
	fmt.Fprintf(b, "error_log %s\n\n", errorLog)
	fmt.Fprintf(b, "events {\n    worker_connections %d;\n}\n\n", connections)
}

var relativeConf = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*\.conf$`)

// NodeProxyMain is the whole nginx.conf of a node-local API proxy: a
// second nginx beside any the host runs, with its own pid file and log,
// one worker (it carries a kubelet's and kube-proxy's connections), and
// the stream block inline.
func NodeProxyMain(stream []byte, pidFile, errorLog string) ([]byte, error) {
	for _, p := range []string{pidFile, errorLog} {
		if !absPath.MatchString(p) {
			return nil, fmt.Errorf("lb: %q: want an absolute path of plain characters", p)
		}
	}
	var b bytes.Buffer
	mainHead(&b, "1", "pid "+pidFile+";\n", errorLog+" notice;", 1024)
	b.Write(bytes.TrimPrefix(stream, []byte(Header)))
	return b.Bytes(), nil
}

var absPath = regexp.MustCompile(`^(/[A-Za-z0-9._-]+)+$`)
