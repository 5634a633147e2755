package keepalived

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func good() Config {
	return Config{Name: "lb0", Interface: "eth0", SourceIP: "10.0.0.5", Peers: []string{"10.0.0.6", "10.0.0.7"},
		Priority: PriorityOf(0), RouterID: 51, VIP: "10.0.0.100", AuthPass: "s3cretPw", Check: "/etc/keepalived/fleet-check-lb.sh"}
}

// TestRender compares with the golden file: what keepalived reads.
func TestRender(t *testing.T) {
	got, err := Render(good())
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "lb0.conf")
	if os.Getenv("UPDATE_GOLDEN") != "" {
		os.WriteFile(golden, got, 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("render differs from %s:\n%s", golden, got)
	}
	if AuthPassOf(got) != "s3cretPw" {
		t.Errorf("AuthPassOf the rendered config: %q", AuthPassOf(got))
	}
}

func TestRenderRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no peers", func(c *Config) { c.Peers = nil }, "no peers"},
		{"a peer that is no IPv4", func(c *Config) { c.Peers = []string{"fd00::1"} }, `"fd00::1" is not an IPv4`},
		{"a password too long for VRRP", func(c *Config) { c.AuthPass = "123456789" }, "1-8 letters or digits"},
		{"a password that would break the file", func(c *Config) { c.AuthPass = "a}b" }, "1-8 letters or digits"},
		{"router id 0", func(c *Config) { c.RouterID = 0 }, "virtual router id 0"},
		{"priority 255 (the address owner's)", func(c *Config) { c.Priority = 255 }, "priority 255"},
		{"an interface with a space", func(c *Config) { c.Interface = "eth0 x" }, "interface"},
		{"a relative track script", func(c *Config) { c.Check = "check.sh" }, "track script"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good()
			tc.edit(&c)
			if _, err := Render(c); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

func TestPriorityOf(t *testing.T) {
	if PriorityOf(0) <= PriorityOf(1) || PriorityOf(1) <= PriorityOf(2) || PriorityOf(100) != 1 {
		t.Errorf("priorities %d %d %d %d", PriorityOf(0), PriorityOf(1), PriorityOf(2), PriorityOf(100))
	}
}

func TestNewAuthPass(t *testing.T) {
	a, b := NewAuthPass(), NewAuthPass()
	if !authPass.MatchString(a) || len(a) != 8 || a == b {
		t.Errorf("passwords %q %q", a, b)
	}
	if AuthPassOf([]byte("vrrp_instance x {\n  authentication {\n    auth_pass\n  }\n}\n")) != "" {
		t.Error("found a password where the line has none")
	}
}
