// Package keepalived renders the keepalived configuration that makes
// several load balancers share one virtual IP with VRRP: one instance,
// unicast to the peers (multicast is often filtered), priorities by the
// balancers' order, a track script that gives the VIP up when the local
// load balancer fails. It knows nothing of hosts or SSH.
package keepalived

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"text/template"
)

// Config is one balancer's view of the shared VIP.
type Config struct {
	Name      string   // this balancer (keepalived's router_id)
	Interface string   // where the VIP goes: the one with SourceIP
	SourceIP  string   // this balancer's address, the VRRP packets' source
	Peers     []string // the other balancers' addresses
	// Priority orders the balancers (highest holds the VIP first);
	// PriorityOf gives it by inventory order.
	Priority int
	RouterID int    // VRRP virtual router id, 1-255, the same on every balancer
	VIP      string // IPv4 address
	AuthPass string // VRRP's shared password: 1-8 characters of [A-Za-z0-9]
	// Check is the track script: exit 0 while the local load balancer
	// serves.
	Check string
}

// PriorityOf is the priority of the i-th balancer: 150, 140, ... (at
// least 1).
func PriorityOf(i int) int { return max(150-10*i, 1) }

var (
	authPass  = regexp.MustCompile(`^[A-Za-z0-9]{1,8}$`)
	ifaceName = regexp.MustCompile(`^[A-Za-z0-9_.:@-]{1,15}$`)
	hostName  = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,63}$`)
	authLine  = regexp.MustCompile(`(?m)^\s*auth_pass\s+([A-Za-z0-9]{1,8})\s*$`)
)

// NewAuthPass makes a VRRP password: 8 characters, about 47 random bits
// (VRRP v2 carries no more).
func NewAuthPass() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 8)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// AuthPassOf finds the password in a configuration Render wrote, "" when
// there is none.
func AuthPassOf(conf []byte) string {
	if m := authLine.FindSubmatch(conf); m != nil {
		return string(m[1])
	}
	return ""
}

func (c Config) validate() error {
	addrs := append([]string{c.SourceIP, c.VIP}, c.Peers...)
	for _, a := range addrs {
		if ip, err := netip.ParseAddr(a); err != nil || !ip.Is4() {
			return fmt.Errorf("keepalived: %q is not an IPv4 address", a)
		}
	}
	switch {
	case !hostName.MatchString(c.Name):
		return fmt.Errorf("keepalived: router name %q", c.Name)
	case !ifaceName.MatchString(c.Interface):
		return fmt.Errorf("keepalived: interface %q", c.Interface)
	case len(c.Peers) == 0:
		return fmt.Errorf("keepalived: no peers: a VIP needs two balancers or more")
	case c.Priority < 1 || c.Priority > 254:
		return fmt.Errorf("keepalived: priority %d, want 1-254", c.Priority)
	case c.RouterID < 1 || c.RouterID > 255:
		return fmt.Errorf("keepalived: virtual router id %d, want 1-255", c.RouterID)
	case !authPass.MatchString(c.AuthPass):
		return fmt.Errorf("keepalived: the VRRP password must be 1-8 letters or digits")
	case !strings.HasPrefix(c.Check, "/") || strings.ContainsAny(c.Check, " \"\n"):
		return fmt.Errorf("keepalived: track script %q must be an absolute path without spaces or quotes", c.Check)
	}
	return nil
}

// Render writes keepalived.conf for one balancer. Every balancer starts
// as BACKUP with nopreempt: the highest priority takes the VIP when none
// holds it, and a balancer that comes back does not take it back (one
// failover, not two). A failing track script (once: a dead NGINX is no
// transient) puts the instance in FAULT: it drops the VIP and the next
// balancer takes it at once.
func Render(c Config) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := confTemplate.Execute(&b, c); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

var confTemplate = template.Must(template.New("keepalived.conf").Parse(`# Written by fleet: the Kubernetes API's virtual IP. Changes are overwritten.
global_defs {
    router_id {{.Name}}
    enable_script_security
    script_user root
}

vrrp_script fleet_lb {
    script "{{.Check}}"
    interval 1
    timeout 1
    fall 1
    rise 2
}

vrrp_instance fleet_api {
    state BACKUP
    nopreempt
    interface {{.Interface}}
    virtual_router_id {{.RouterID}}
    priority {{.Priority}}
    advert_int 1
    unicast_src_ip {{.SourceIP}}
    unicast_peer {
{{- range .Peers}}
        {{.}}
{{- end}}
    }
    authentication {
        auth_type PASS
        auth_pass {{.AuthPass}}
    }
    virtual_ipaddress {
        {{.VIP}}/32 dev {{.Interface}}
    }
    track_script {
        fleet_lb
    }
}
`))
