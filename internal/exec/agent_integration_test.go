package exec_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/testing/sim"
)

// serveAgent runs an in-process ssh-agent holding keys and points
// SSH_AUTH_SOCK at it for the test.
func serveAgent(t *testing.T, keys ...string) {
	t.Helper()
	keyring := agent.NewKeyring()
	for _, path := range keys {
		pem, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := ssh.ParseRawPrivateKey(pem)
		if err != nil {
			t.Fatal(err)
		}
		if err := keyring.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); agent.ServeAgent(keyring, c) }()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
}

func TestAgentAuthentication(t *testing.T) {
	sim.Need(t, cluster)
	t.Run("agent holds the key", func(t *testing.T) {
		serveAgent(t, cluster.KeyFile)
		cfg := config(t, "worker3")
		cfg.IdentityFiles, cfg.UseAgent = nil, true
		c := dial(t, cfg)
		if _, err := c.Run(context.Background(), "true"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("agent without the key", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "other")
		if out, err := osCommand("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		serveAgent(t, other)
		cfg := config(t, "worker3")
		cfg.IdentityFiles, cfg.UseAgent = nil, true
		_, err := exec.Dial(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "ssh-agent (1 keys)") || !strings.Contains(err.Error(), "worker3") {
			t.Fatalf("got %v, want an auth error naming worker3 and the agent", err)
		}
	})
	t.Run("no agent running", func(t *testing.T) {
		t.Setenv("SSH_AUTH_SOCK", "")
		cfg := config(t, "worker3")
		cfg.IdentityFiles, cfg.UseAgent = nil, true
		_, err := exec.Dial(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "SSH_AUTH_SOCK is not set") {
			t.Fatalf("got %v", err)
		}
	})
}
