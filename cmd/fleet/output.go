package main

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/fleetops/fleet/playbooks"
)

// The documents of -o json|yaml. Their Go types are the schema (README,
// "Output for programs"): field names are stable within fleet/v1; a
// change that renames or removes one is a fleet/v2.
const apiVersion = "fleet/v1"

// Header opens every document.
type Header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

func header(kind string) Header { return Header{APIVersion: apiVersion, Kind: kind} }

// VersionDoc is `fleet version -o json`.
type VersionDoc struct {
	Header
	Version string `json:"version"`
}

// CheckDoc is `fleet check -o json`: one entry per host, inventory order.
type CheckDoc struct {
	Header
	Hosts     []CheckedHost `json:"hosts"`
	Reachable int           `json:"reachable"`
	Total     int           `json:"total"`
}

// CheckedHost is what check learned of one host.
type CheckedHost struct {
	Name      string          `json:"name"`
	Role      string          `json:"role"`
	Address   string          `json:"address"`
	Reachable bool            `json:"reachable"`
	Error     string          `json:"error,omitempty"`
	OS        string          `json:"os,omitempty"`
	Arch      string          `json:"arch,omitempty"`
	Distro    string          `json:"distro,omitempty"`
	Tools     map[string]bool `json:"tools,omitempty"` // tool → installed
	Seconds   float64         `json:"seconds"`
}

// StatusDoc is `fleet status -o json`. Answers are "yes", "no", "?" (could
// not be read) or "-" (does not apply to the role), as in the table.
type StatusDoc struct {
	Header
	Nodes     []NodeStatus     `json:"nodes"`
	Balancers []BalancerStatus `json:"balancers"`
}

// BalancerStatus is one load balancer's row.
type BalancerStatus struct {
	Name              string `json:"name"`
	Reachable         bool   `json:"reachable"`
	Nginx             string `json:"nginx"`                // yes, no or ?
	Keepalived        string `json:"keepalived,omitempty"` // with a VIP
	HoldsVIP          string `json:"holdsVIP,omitempty"`   // with a VIP
	UnreadableBecause string `json:"unreadableBecause,omitempty"`
}

// NodeStatus is one node's row.
type NodeStatus struct {
	Name              string  `json:"name"`
	Role              string  `json:"role"`
	Reachable         bool    `json:"reachable"`
	Joined            string  `json:"joined"`
	Ready             string  `json:"ready"`
	Stale             bool    `json:"stale"` // the API's view is older than the node grace period
	LastHeardSeconds  float64 `json:"lastHeardSeconds,omitempty"`
	KubeletVersion    string  `json:"kubeletVersion,omitempty"`
	Cordoned          bool    `json:"cordoned,omitempty"`
	UpgradingTo       string  `json:"upgradingTo,omitempty"` // fleet upgrade cordoned it on its way to this version
	KubeadmVersion    string  `json:"kubeadmVersion,omitempty"`
	EtcdMember        string  `json:"etcdMember"`
	InUpstream        string  `json:"inUpstream"`
	LocalProxy        string  `json:"localProxy,omitempty"` // with a node-local proxy: yes, no or ?
	ControlPlane      string  `json:"controlPlane,omitempty"`
	UnreadableBecause string  `json:"unreadableBecause,omitempty"`
}

// PlanDoc is `fleet plan -o json`: per step and host what apply would do.
type PlanDoc struct {
	Header
	Cluster string     `json:"cluster"`
	Steps   []PlanStep `json:"steps"`
	Changes int        `json:"changes"` // tasks that would run
	Error   string     `json:"error,omitempty"`
}

// PlanStep is one task of the plan; Would is run, done, ok (a read-only
// step that ran), fails or not-reached.
type PlanStep struct {
	Step   string `json:"step"`
	Host   string `json:"host,omitempty"`
	Would  string `json:"would"`
	Reason string `json:"reason,omitempty"`
}

// TokensDoc is `fleet rotate-tokens -o json`: IDs and expiry, never the
// secrets.
type TokensDoc struct {
	Header
	Tokens []TokenRow `json:"tokens"`
	// CertificateKeyRotated says the control-plane certificates were
	// uploaded under a new key (the key itself is not shown).
	CertificateKeyRotated bool `json:"certificateKeyRotated"`
}

// TokenRow is one bootstrap token and what rotate-tokens did with it.
type TokenRow struct {
	ID          string     `json:"id"`
	Expires     *time.Time `json:"expires"` // null: never
	Usages      []string   `json:"usages"`
	Description string     `json:"description,omitempty"`
	Action      string     `json:"action"`
	Why         string     `json:"why"`
}

// CertsDoc is `fleet certs check -o json`.
type CertsDoc struct {
	Header
	Certificates []playbooks.Cert `json:"certificates"`
}

// ApplyResult ends `fleet apply -o json`, after its events (JSON lines).
type ApplyResult struct {
	Header
	Changed     bool    `json:"changed"`
	Changes     int     `json:"changes"`
	AlreadyDone int     `json:"alreadyDone"`
	Seconds     float64 `json:"seconds"`
	// UploadedBytes is what install: binaries sent to hosts this run.
	UploadedBytes int64  `json:"uploadedBytes"`
	Kubeconfig    string `json:"kubeconfig,omitempty"`
	Error         string `json:"error,omitempty"`
}

// writeDoc prints doc as format (json: indented; yaml: the same fields).
func writeDoc(w io.Writer, format string, doc any) error {
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	if format == "yaml" {
		if data, err = yaml.JSONToYAML(data); err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}

// writeDocThen prints doc (a partial one too), then returns runErr: the
// run's own error decides the exit code.
func writeDocThen(w io.Writer, format string, doc any, runErr error) error {
	if err := writeDoc(w, format, doc); err != nil {
		return err
	}
	return runErr
}

// checkDoc turns check's results into its document.
func checkDoc(results []playbooks.HostCheck) CheckDoc {
	doc := CheckDoc{Header: header("Check"), Total: len(results)}
	for _, r := range results {
		h := CheckedHost{Name: r.Host, Role: string(r.Role), Address: r.Address, Reachable: r.Reachable(), Seconds: r.Took.Seconds()}
		if r.Err != nil {
			h.Error = r.Err.Error()
		} else {
			doc.Reachable++
			h.OS, h.Arch, h.Distro = r.Facts.OS, r.Facts.Arch, r.Facts.Distro
			h.Tools = map[string]bool{}
			for _, t := range playbooks.CheckedTools() {
				h.Tools[t] = r.Facts.Has(t)
			}
		}
		doc.Hosts = append(doc.Hosts, h)
	}
	return doc
}

func statusDoc(rows []playbooks.NodeStatus, balancers []playbooks.BalancerStatus) StatusDoc {
	doc := StatusDoc{Header: header("Status"), Nodes: []NodeStatus{}, Balancers: []BalancerStatus{}}
	for _, b := range balancers {
		row := BalancerStatus{Name: b.Host, Reachable: b.Reachable, Nginx: b.Nginx.String()}
		if b.Keepalived != playbooks.Unknown || b.HoldsVIP != playbooks.Unknown {
			row.Keepalived, row.HoldsVIP = b.Keepalived.String(), b.HoldsVIP.String()
		}
		if b.Err != nil {
			row.UnreadableBecause = b.Err.Error()
		}
		doc.Balancers = append(doc.Balancers, row)
	}
	for _, r := range rows {
		n := NodeStatus{Name: r.Host, Role: string(r.Role), Reachable: r.Reachable, Joined: r.Joined.String(), Ready: r.Ready.String(),
			Stale: r.Stale, KubeletVersion: r.KubeletVersion, KubeadmVersion: r.KubeadmVersion, Cordoned: r.Cordoned, UpgradingTo: r.UpgradingTo,
			EtcdMember: roleOnly(r.Role == "master", r.EtcdMember), InUpstream: roleOnly(r.Role == "master", r.InUpstream), ControlPlane: r.ControlPlane}
		if r.Stale {
			n.LastHeardSeconds = r.LastHeard.Seconds()
		}
		if r.LocalProxy != playbooks.Unknown {
			n.LocalProxy = r.LocalProxy.String()
		}
		if r.Err != nil {
			n.UnreadableBecause = r.Err.Error()
		}
		doc.Nodes = append(doc.Nodes, n)
	}
	return doc
}

func tokensDoc(rot *playbooks.Rotation) TokensDoc {
	doc := TokensDoc{Header: header("TokenRotation"), Tokens: []TokenRow{}, CertificateKeyRotated: rot.CertificateKey != ""}
	for _, r := range rot.Rows {
		row := TokenRow{ID: r.ID, Usages: r.Usages, Description: r.Description, Action: string(r.Action), Why: r.Why}
		if !r.Expires.IsZero() {
			e := r.Expires.UTC()
			row.Expires = &e
		}
		doc.Tokens = append(doc.Tokens, row)
	}
	return doc
}
