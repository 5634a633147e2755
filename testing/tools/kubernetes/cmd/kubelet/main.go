// Command kubelet is the simulated hosts' kubelet. It takes the real
// kubelet's flags and files (--config, --kubeconfig, --bootstrap-kubeconfig,
// --hostname-override, --node-ip from kubeadm-flags.env) and does on the API
// what the real one does: TLS bootstrap, Node registration, Ready status and
// Lease heartbeats, mirror pods. Static pods run as host processes; there is
// no container runtime on a simulated host.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"k8s.io/component-base/version"
	"sigs.k8s.io/yaml"
)

func main() {
	f := parseFlags(os.Args[1:])
	if f.has("version") {
		fmt.Printf("Kubernetes %s\n", version.Get().GitVersion)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, f); err != nil {
		fmt.Fprintln(os.Stderr, "kubelet:", err)
		os.Exit(1)
	}
}

// flags holds --name=value flags. Unknown flags are accepted and ignored:
// kubeadm passes whatever a real kubelet takes.
type flags map[string]string

func parseFlags(args []string) flags {
	f := flags{}
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		if k, v, ok := strings.Cut(a, "="); ok {
			f[k] = v
		} else if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			f[a] = args[i+1]
			i++
		} else {
			f[a] = "true"
		}
	}
	return f
}

func (f flags) has(k string) bool { _, ok := f[k]; return ok }

func (f flags) get(k, def string) string {
	if v, ok := f[k]; ok && v != "" {
		return v
	}
	return def
}

// kubeletConfig is the part of KubeletConfiguration the simulation uses.
type kubeletConfig struct {
	StaticPodPath      string `json:"staticPodPath"`
	HealthzBindAddress string `json:"healthzBindAddress"`
	HealthzPort        *int   `json:"healthzPort"`
}

func loadConfig(path string) (kubeletConfig, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return kubeletConfig{}, nil, fmt.Errorf("failed to load kubelet config file %s: %w", path, err)
	}
	var c kubeletConfig
	if err := yaml.Unmarshal(data, &c); err != nil {
		return kubeletConfig{}, nil, fmt.Errorf("kubelet config %s: %w", path, err)
	}
	if c.HealthzBindAddress == "" {
		c.HealthzBindAddress = "127.0.0.1"
	}
	if c.HealthzPort == nil {
		p := 10248
		c.HealthzPort = &p
	}
	return c, data, nil
}

// serveHealthz answers ok on the kubelet's health port, as kubeadm expects.
func serveHealthz(ctx context.Context, c kubeletConfig) error {
	l, err := net.Listen("tcp", net.JoinHostPort(c.HealthzBindAddress, strconv.Itoa(*c.HealthzPort)))
	if err != nil {
		return fmt.Errorf("healthz: %w", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })}
	go func() { <-ctx.Done(); srv.Close() }()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "kubelet: healthz:", err)
		}
	}()
	return nil
}

// nodeName is --hostname-override or the host name, lower-cased, as the
// kubelet computes it.
func nodeName(f flags) (string, error) {
	if n := f.get("hostname-override", ""); n != "" {
		return strings.ToLower(n), nil
	}
	h, err := os.Hostname()
	return strings.ToLower(h), err
}

// nodeIP is --node-ip or the first global IPv4 address of the host.
func nodeIP(f flags) (string, error) {
	if ip := f.get("node-ip", ""); ip != "" {
		return strings.Split(ip, ",")[0], nil
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() {
			return n.IP.String(), nil
		}
	}
	return "", errors.New("no IPv4 address for the node")
}
