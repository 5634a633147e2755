// Command sim-dockerd serves the emulated Docker Engine API of a simulated
// host on /run/docker.sock (see internal/dockerd), for the real docker CLI.
// Re-executed with dockerd.InitArg, it is a container's init instead.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/fleetops/fleet/testing/tools/kubernetes/internal/dockerd"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == dockerd.InitArg {
		err := dockerd.ContainerInit(os.Args[2], os.Args[3:])
		fmt.Fprintln(os.Stderr, "sim-dockerd: container init:", err)
		os.Exit(127)
	}
	socket := flag.String("host", "/run/docker.sock", "unix socket to serve the Engine API on")
	flag.Parse()
	if err := serve(*socket); err != nil {
		fmt.Fprintln(os.Stderr, "sim-dockerd:", err)
		os.Exit(1)
	}
}

func serve(socket string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
		return err
	}
	os.Remove(socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		return err
	}
	// The socket is root's, as dockerd's is (group docker aside).
	if err := os.Chmod(socket, 0o660); err != nil {
		return err
	}
	srv := &http.Server{Handler: dockerd.NewServer(self)}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { <-ctx.Done(); srv.Close() }()
	if err := srv.Serve(l); err != http.ErrServerClosed {
		return err
	}
	return nil
}
