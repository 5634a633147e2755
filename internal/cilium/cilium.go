// Package cilium holds what fleet knows about running Cilium on its
// clusters: the chart values this topology needs, and the BGP control
// plane v2 objects (cilium.io/v2, Cilium 1.18 and later) rendered from a
// few inventory fields. Pure functions: nothing here talks to a host.
package cilium

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/fleetops/fleet/internal/chart"
)

// Chart coordinates: the project's Helm repository.
const (
	Repo      = "https://helm.cilium.io"
	ChartName = "cilium"
	Release   = "cilium"
	Namespace = "kube-system"
)

// Cluster is what the defaults depend on.
type Cluster struct {
	APIHost   string // the control-plane endpoint's host: no kube-proxy to reach the Service IP
	APIPort   int
	PodSubnet string
	// KubeProxy: the cluster keeps kube-proxy; Cilium does not replace it.
	KubeProxy bool
}

// Defaults are fleet's values for this topology. The user's values file
// and set: lie on top of them.
func Defaults(c Cluster) map[string]any {
	return map[string]any{
		"k8sServiceHost":       c.APIHost,
		"k8sServicePort":       c.APIPort,
		"kubeProxyReplacement": !c.KubeProxy,
		"ipam": map[string]any{
			"mode": "cluster-pool",
			"operator": map[string]any{
				"clusterPoolIPv4PodCIDRList": []any{c.PodSubnet},
			},
		},
		// The chart's default (method helm) makes Hubble's certificates
		// while rendering: a new CA on every render, so no apply would
		// ever find nothing to do. The cronJob method makes them in the
		// cluster, once, and renews them there.
		"hubble": map[string]any{"tls": map[string]any{"auto": map[string]any{"method": "cronJob"}}},
	}
}

// BGP is the inventory's cluster.network.cilium.bgp.
type BGP struct {
	LocalASN          int64
	Peers             []Peer
	LoadBalancerCIDRs []string
	// NodeSelector picks the nodes that speak BGP; fleet labels the
	// workers with it.
	NodeSelector map[string]string
	// Community, if set, is attached to the advertised pod CIDRs
	// ("65000:99").
	Community string
}

// Peer is one BGP neighbour.
type Peer struct {
	Address string
	ASN     int64
}

// Names of the objects BGPObjects renders, and the label that ties the
// advertisement to the peer config.
const (
	bgpName         = "fleet-bgp"
	advertiseLabel  = "advertise"
	advertiseValue  = "bgp"
	servicesAllExpr = "fleet.io/no-such-label"
)

// BGPObjects renders the four BGP control plane v2 objects: the
// LoadBalancer IP pool, the cluster config (one BGP instance, one peer
// per inventory peer), the peer config (IPv4 unicast, advertisements
// selected by label) and the advertisement (pod CIDRs, and every
// Service's ClusterIP, ExternalIP and LoadBalancerIP).
func BGPObjects(b BGP) ([]chart.Object, error) {
	if err := b.validate(); err != nil {
		return nil, err
	}
	var blocks []any
	for _, c := range b.LoadBalancerCIDRs {
		blocks = append(blocks, map[string]any{"cidr": c})
	}
	var peers []any
	for _, p := range b.Peers {
		peers = append(peers, map[string]any{
			"name":          "peer-" + strconv.FormatInt(p.ASN, 10) + "-" + p.Address,
			"peerASN":       p.ASN,
			"peerAddress":   p.Address,
			"peerConfigRef": map[string]any{"name": bgpName},
		})
	}
	podCIDR := map[string]any{"advertisementType": "PodCIDR"}
	if b.Community != "" {
		podCIDR["attributes"] = map[string]any{"communities": map[string]any{"standard": []any{b.Community}}}
	}
	var objs []map[string]any
	if len(blocks) > 0 {
		objs = append(objs, object("CiliumLoadBalancerIPPool", bgpName, nil, map[string]any{"blocks": blocks}))
	}
	objs = append(objs,
		object("CiliumBGPClusterConfig", bgpName, nil, map[string]any{
			"nodeSelector": map[string]any{"matchLabels": stringMap(b.NodeSelector)},
			"bgpInstances": []any{map[string]any{
				"name":     "instance-" + strconv.FormatInt(b.LocalASN, 10),
				"localASN": b.LocalASN,
				"peers":    peers,
			}},
		}),
		object("CiliumBGPPeerConfig", bgpName, nil, map[string]any{
			"transport": map[string]any{"peerPort": 179},
			"families": []any{map[string]any{
				"afi": "ipv4", "safi": "unicast",
				"advertisements": map[string]any{"matchLabels": map[string]any{advertiseLabel: advertiseValue}},
			}},
		}),
		object("CiliumBGPAdvertisement", bgpName, map[string]any{advertiseLabel: advertiseValue}, map[string]any{
			"advertisements": []any{
				podCIDR,
				map[string]any{
					"advertisementType": "Service",
					"service":           map[string]any{"addresses": []any{"ClusterIP", "ExternalIP", "LoadBalancerIP"}},
					// A selector is required; one no Service fails selects them all.
					"selector": map[string]any{"matchExpressions": []any{map[string]any{
						"key": servicesAllExpr, "operator": "NotIn", "values": []any{"never"},
					}}},
				},
			},
		}),
	)
	out := make([]chart.Object, 0, len(objs))
	for _, o := range objs {
		data, err := yaml.Marshal(o)
		if err != nil {
			return nil, err
		}
		meta := o["metadata"].(map[string]any)
		out = append(out, chart.Object{APIVersion: o["apiVersion"].(string), Kind: o["kind"].(string), Name: meta["name"].(string), YAML: data})
	}
	return out, nil
}

// CRD names the CustomResourceDefinition of a cilium.io kind BGPObjects
// renders (the Cilium operator creates them when it starts: fleet waits
// for them before it applies the objects).
func CRD(kind string) string {
	return strings.ToLower(kind) + "s.cilium.io"
}

func (b BGP) validate() error {
	switch {
	case b.LocalASN < 1 || b.LocalASN > 4294967295:
		return fmt.Errorf("bgp.localASN %d is not an AS number (1-4294967295)", b.LocalASN)
	case len(b.Peers) == 0:
		return fmt.Errorf("bgp.peers: at least one peer is needed")
	case len(b.NodeSelector) == 0:
		return fmt.Errorf("bgp.nodeSelector: name the label of the nodes that speak BGP (e.g. bgp: worker)")
	}
	for i, p := range b.Peers {
		if _, err := netip.ParseAddr(p.Address); err != nil {
			return fmt.Errorf("bgp.peers[%d].address %q is not an IP address", i, p.Address)
		}
		if p.ASN < 1 || p.ASN > 4294967295 {
			return fmt.Errorf("bgp.peers[%d].asn %d is not an AS number", i, p.ASN)
		}
	}
	for i, c := range b.LoadBalancerCIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			return fmt.Errorf("bgp.loadBalancerCIDRs[%d] %q is not a CIDR", i, c)
		}
	}
	return nil
}

func object(kind, name string, labels map[string]any, spec map[string]any) map[string]any {
	meta := map[string]any{"name": name}
	if labels != nil {
		meta["labels"] = labels
	}
	return map[string]any{"apiVersion": "cilium.io/v2", "kind": kind, "metadata": meta, "spec": spec}
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out[k] = m[k]
	}
	return out
}
