package sshconfig

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const sample = `# an operator's config
Host bastion
  HostName 203.0.113.9
  User jump
  Port 2200

Host m1
  HostName 10.0.0.11
  User admin
  Port 2222
  IdentityFile ~/.ssh/m1
  IdentityFile /keys/second
  UserKnownHostsFile /etc/fleet/known_hosts /other
  ProxyJump ops@bastion:2201

Host m? !m9
  HostName %h.lab.example
  ProxyJump bastion

Host w1
  StrictHostKeyChecking accept-new

Host two-hops
  ProxyJump a,b

Host badport
  Port ssh

Host *
  User fallback
`

func TestResolve(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config")
	os.WriteFile(path, []byte(sample), 0o600)
	f, err := Load(path, true)
	if err != nil {
		t.Fatal(err)
	}
	home, _ := os.UserHomeDir()
	def := Defaults{User: "root", Port: 22, KnownHosts: "/root/.ssh/known_hosts"}
	// line is where text stands in the sample, as file:line.
	line := func(text string) string {
		return path + ":" + itoa(strings.Count(sample[:strings.Index(sample, text)], "\n")+1)
	}
	tests := []struct {
		name    string
		file    *File
		host    string
		given   Given
		want    Resolved
		wantErr string
	}{
		{
			name: "the config fills what the inventory leaves out; the jump host resolves through the config",
			file: f, host: "m1", given: Given{Address: "192.0.2.11"},
			want: Resolved{
				Hop:           Hop{Address: "10.0.0.11", Port: 2222, User: "admin"},
				IdentityFiles: []string{filepath.Join(home, ".ssh/m1"), "/keys/second"},
				KnownHosts:    "/etc/fleet/known_hosts",
				Jump:          &Hop{Address: "203.0.113.9", Port: 2201, User: "ops"},
				Sources: map[string]string{"address": line("HostName 10.0.0.11"), "user": line("User admin"), "port": line("Port 2222"), "identityFile": line("IdentityFile ~"),
					"knownHosts": line("UserKnownHostsFile"), "jumpHost": line("ProxyJump ops")},
			},
		},
		{
			name: "the inventory wins where it speaks",
			file: f, host: "m1", given: Given{Address: "192.0.2.11", User: "ubuntu", Port: 22, IdentityFile: "/inv/key", KnownHosts: "/inv/kh", JumpHost: "198.51.100.1"},
			want: Resolved{
				Hop:           Hop{Address: "10.0.0.11", Port: 22, User: "ubuntu"},
				IdentityFiles: []string{"/inv/key"},
				KnownHosts:    "/inv/kh",
				Jump:          &Hop{Address: "198.51.100.1", Port: 22, User: "fallback"}, // Host * speaks for the jump host, as with ssh -J
				Sources: map[string]string{"address": line("HostName 10.0.0.11"), "user": "inventory", "port": "inventory", "identityFile": "inventory",
					"knownHosts": "inventory", "jumpHost": "inventory"},
			},
		},
		{
			name: "first match wins, as in OpenSSH: a pattern block before a Host * one; a negated pattern does not match",
			file: f, host: "m9", given: Given{Address: "192.0.2.9"},
			want: Resolved{
				Hop:        Hop{Address: "192.0.2.9", Port: 22, User: "fallback"},
				KnownHosts: "/root/.ssh/known_hosts",
				Sources:    map[string]string{"address": "inventory", "user": line("User fallback"), "port": "default", "knownHosts": "default", "jumpHost": "default"},
			},
		},
		{
			name: "a pattern block, %h in HostName, a jump host alias with its own user and port",
			file: f, host: "m2", given: Given{Address: "192.0.2.12"},
			want: Resolved{
				Hop:        Hop{Address: "m2.lab.example", Port: 22, User: "fallback"},
				KnownHosts: "/root/.ssh/known_hosts",
				Jump:       &Hop{Address: "203.0.113.9", Port: 2200, User: "jump"},
				Sources:    map[string]string{"address": line("HostName %h"), "user": line("User fallback"), "port": "default", "knownHosts": "default", "jumpHost": line("ProxyJump bastion")},
			},
		},
		{
			name: "no config: the inventory and the defaults",
			host: "w1", given: Given{Address: "192.0.2.21"},
			want: Resolved{
				Hop:        Hop{Address: "192.0.2.21", Port: 22, User: "root"},
				KnownHosts: "/root/.ssh/known_hosts",
				Sources:    map[string]string{"address": "inventory", "user": "default", "port": "default", "knownHosts": "default", "jumpHost": "default"},
			},
		},
		{
			name: "StrictHostKeyChecking accept-new is warned about, not followed",
			file: f, host: "w1", given: Given{Address: "192.0.2.21"},
			want: Resolved{
				Hop:        Hop{Address: "192.0.2.21", Port: 22, User: "fallback"},
				KnownHosts: "/root/.ssh/known_hosts",
				Sources:    map[string]string{"address": "inventory", "user": line("User fallback"), "port": "default", "knownHosts": "default", "jumpHost": "default"},
				Warnings:   []string{"StrictHostKeyChecking accept-new (" + line("StrictHostKeyChecking") + ") is not followed: fleet verifies host keys against known_hosts (--accept-new-host-keys trusts new ones)"},
			},
		},
		{name: "two jump hosts refused", file: f, host: "two-hops", given: Given{Address: "192.0.2.1"}, wantErr: `ProxyJump "a,b"`},
		{name: "a port that is not a number", file: f, host: "badport", given: Given{Address: "192.0.2.1"}, wantErr: `Port "ssh" (` + line("Port ssh") + `) is not a TCP port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.file.Resolve(tt.host, tt.given, def)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	if f, err := Load(filepath.Join(t.TempDir(), "none"), false); f != nil || err != nil {
		t.Errorf("a missing default config: %v %v, want no config and no error", f, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none"), true); err == nil {
		t.Error("a missing config the user named: no error")
	}
}
