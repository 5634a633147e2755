package cilium

import (
	"strings"
	"testing"
)

func TestBGPObjects(t *testing.T) {
	good := BGP{LocalASN: 64512, Peers: []Peer{{Address: "192.0.2.1", ASN: 64513}}, NodeSelector: map[string]string{"bgp": "worker"}}
	tests := []struct {
		name    string
		edit    func(b *BGP)
		kinds   string // the objects' kinds, in order
		has     string
		wantErr string
	}{
		{name: "no LB CIDRs: no pool", edit: func(*BGP) {},
			kinds: "CiliumBGPClusterConfig CiliumBGPPeerConfig CiliumBGPAdvertisement", has: "peerAddress: 192.0.2.1"},
		{name: "a pool per CIDR list, and a community on the pod CIDRs",
			edit: func(b *BGP) {
				b.LoadBalancerCIDRs, b.Community = []string{"203.0.113.0/24", "2001:db8::/112"}, "64512:100"
			},
			kinds: "CiliumLoadBalancerIPPool CiliumBGPClusterConfig CiliumBGPPeerConfig CiliumBGPAdvertisement", has: "64512:100"},
		{name: "AS 0", edit: func(b *BGP) { b.LocalASN = 0 }, wantErr: "localASN 0 is not an AS number"},
		{name: "a peer by name", edit: func(b *BGP) { b.Peers[0].Address = "router" }, wantErr: `peers[0].address "router"`},
		{name: "no selector", edit: func(b *BGP) { b.NodeSelector = nil }, wantErr: "nodeSelector"},
		{name: "a bad CIDR", edit: func(b *BGP) { b.LoadBalancerCIDRs = []string{"203.0.113.0/33"} }, wantErr: "loadBalancerCIDRs[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := good
			b.Peers = append([]Peer(nil), good.Peers...)
			tc.edit(&b)
			objs, err := BGPObjects(b)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			var all strings.Builder
			for _, o := range objs {
				kinds = append(kinds, o.Kind)
				all.Write(o.YAML)
				if o.APIVersion != "cilium.io/v2" || o.Name != "fleet-bgp" || CRD(o.Kind) != strings.ToLower(o.Kind)+"s.cilium.io" {
					t.Errorf("%s: %s %s", o.Kind, o.APIVersion, o.Name)
				}
			}
			if got := strings.Join(kinds, " "); got != tc.kinds || !strings.Contains(all.String(), tc.has) {
				t.Errorf("kinds %q (want %q), YAML lacks %q:\n%s", got, tc.kinds, tc.has, all.String())
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	d := Defaults(Cluster{APIHost: "192.0.2.10", APIPort: 6443, PodSubnet: "10.244.0.0/16"})
	if d["kubeProxyReplacement"] != true || d["k8sServiceHost"] != "192.0.2.10" {
		t.Errorf("defaults %v", d)
	}
	if kept := Defaults(Cluster{KubeProxy: true}); kept["kubeProxyReplacement"] != false {
		t.Error("kube-proxy kept, yet Cilium replaces it")
	}
}
