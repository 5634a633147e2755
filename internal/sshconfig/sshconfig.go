// Package sshconfig reads the user's OpenSSH client config (~/.ssh/config)
// for the hosts of an inventory: where SSH dials, as which user, on which
// port, with which keys, known_hosts and jump host. The inventory wins
// where it says something; the config fills what it leaves out, as
// `ssh NAME` would. It knows nothing of the inventory's format: the caller
// hands it the values the inventory set.
package sshconfig

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kevinburke/ssh_config"
)

// File is a parsed ssh config, with the path it came from.
type File struct {
	Path string
	cfg  *ssh_config.Config
}

// DefaultPath is the user's own config: ~/.ssh/config.
func DefaultPath() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".ssh", "config")
}

// Load parses the config at path. A missing default config is no config
// (nil, nil); a file the user named must exist.
func Load(path string, named bool) (*File, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) && !named {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ssh config: %w", err)
	}
	defer f.Close()
	cfg, err := ssh_config.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("ssh config %s: %w", path, err)
	}
	return &File{Path: path, cfg: cfg}, nil
}

// Given is what the inventory says of a host's login; zero values are
// unset. Address is the host's inventory address (the cluster's).
type Given struct {
	Address      string
	User         string
	Port         int
	IdentityFile string
	KnownHosts   string
	JumpHost     string // [user@]host[:port]
}

// defaultPort is where a jump host listens unless told otherwise.
const defaultPort = 22

// Hop is where one SSH connection dials and logs in.
type Hop struct {
	Address string // what to dial
	Port    int
	User    string
}

// Resolved is a host's login after the config: the values, where each
// came from, and what the user should hear.
type Resolved struct {
	Hop
	IdentityFiles []string
	KnownHosts    string
	Jump          *Hop // nil: dial directly
	// Sources says per setting where its value came from: "inventory",
	// "default" or the config's file:line.
	Sources  map[string]string
	Warnings []string // settings not followed (the same text for every host a config line covers)
}

// Defaults fill what neither the inventory nor the config sets.
type Defaults struct {
	User       string
	Port       int
	KnownHosts string
}

// Resolve works out host name's login: the inventory's values where set,
// else the config's for Host patterns matching name, else the defaults.
// f may be nil (no config).
func (f *File) Resolve(name string, in Given, def Defaults) (Resolved, error) {
	r := Resolved{Sources: map[string]string{}}
	pick := func(setting, inventory, key, fallback string) string {
		if inventory != "" {
			r.Sources[setting] = "inventory"
			return inventory
		}
		if v, where := f.get(name, key); v != "" {
			r.Sources[setting] = where
			return v
		}
		r.Sources[setting] = "default"
		return fallback
	}
	// HostName is where SSH dials; the inventory's address stays the
	// cluster's (what kubeadm and the load balancer use).
	r.Address = strings.NewReplacer("%h", name, "%%", "%").Replace(pick("address", "", "HostName", in.Address))
	if r.Sources["address"] == "default" {
		r.Sources["address"] = "inventory"
	}
	r.User = pick("user", in.User, "User", def.User)
	port := pick("port", itoa(in.Port), "Port", strconv.Itoa(def.Port))
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return r, fmt.Errorf("%s: Port %q (%s) is not a TCP port", name, port, r.Sources["port"])
	}
	r.Port = p
	if in.IdentityFile != "" {
		r.IdentityFiles, r.Sources["identityFile"] = []string{in.IdentityFile}, "inventory"
	} else if files, where := f.getAll(name, "IdentityFile"); len(files) > 0 {
		for _, id := range files {
			r.IdentityFiles = append(r.IdentityFiles, expandHome(id))
		}
		r.Sources["identityFile"] = where
	}
	known := pick("knownHosts", in.KnownHosts, "UserKnownHostsFile", def.KnownHosts)
	if r.Sources["knownHosts"] != "inventory" && r.Sources["knownHosts"] != "default" {
		known = expandHome(strings.Fields(known)[0]) // fleet reads one file
	}
	r.KnownHosts = known
	if v, where := f.get(name, "StrictHostKeyChecking"); v == "no" || v == "off" || v == "accept-new" {
		r.Warnings = append(r.Warnings, fmt.Sprintf("StrictHostKeyChecking %s (%s) is not followed: fleet verifies host keys against known_hosts (--accept-new-host-keys trusts new ones)", v, where))
	}
	jump := pick("jumpHost", in.JumpHost, "ProxyJump", "")
	if jump != "" && jump != "none" {
		if strings.Contains(jump, ",") {
			return r, fmt.Errorf("%s: ProxyJump %q (%s): fleet takes one jump host", name, jump, r.Sources["jumpHost"])
		}
		hop, err := f.hop(jump, Defaults{User: r.User, Port: defaultPort})
		if err != nil {
			return r, fmt.Errorf("%s: jump host %q (%s): %w", name, jump, r.Sources["jumpHost"], err)
		}
		r.Jump = &hop
	}
	return r, nil
}

// hop resolves a jump host [user@]host[:port]: host may be an alias of the
// config, whose HostName, User and Port fill what the spec leaves out.
func (f *File) hop(spec string, def Defaults) (Hop, error) {
	var h Hop
	rest := spec
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		h.User, rest = rest[:i], rest[i+1:]
	}
	if host, port, err := net.SplitHostPort(rest); err == nil {
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return h, fmt.Errorf("bad port %q", port)
		}
		rest, h.Port = host, p
	}
	if rest == "" {
		return h, fmt.Errorf("no host")
	}
	alias := rest
	h.Address = rest
	if v, _ := f.get(alias, "HostName"); v != "" {
		h.Address = v
	}
	if h.User == "" {
		h.User, _ = f.get(alias, "User")
	}
	if h.User == "" {
		h.User = def.User
	}
	if h.Port == 0 {
		if v, _ := f.get(alias, "Port"); v != "" {
			p, err := strconv.Atoi(v)
			if err != nil || p < 1 || p > 65535 {
				return h, fmt.Errorf("Port %q is not a TCP port", v)
			}
			h.Port = p
		}
	}
	if h.Port == 0 {
		h.Port = def.Port
	}
	return h, nil
}

// get is the config's first value of key for alias, and where it stands.
func (f *File) get(alias, key string) (value, where string) {
	if f == nil {
		return "", ""
	}
	for _, host := range f.cfg.Hosts {
		if !host.Matches(alias) {
			continue
		}
		for _, node := range host.Nodes {
			switch n := node.(type) {
			case *ssh_config.KV:
				if strings.EqualFold(n.Key, key) {
					return n.Value, fmt.Sprintf("%s:%d", f.Path, n.Pos().Line)
				}
			case *ssh_config.Include:
				if v := n.Get(alias, key); v != "" {
					return v, f.Path + " (an Include)"
				}
			}
		}
	}
	return "", ""
}

// getAll is every value of key for alias (IdentityFile may repeat), with
// where the first stands.
func (f *File) getAll(alias, key string) ([]string, string) {
	if f == nil {
		return nil, ""
	}
	values, err := f.cfg.GetAll(alias, key)
	if err != nil || len(values) == 0 {
		return nil, ""
	}
	_, where := f.get(alias, key)
	return values, where
}

func itoa(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// expandHome turns ~/x into the user's home folder.
func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, strings.TrimPrefix(p, "~"))
		}
	}
	return p
}
