// Package kubeadm renders kubeadm's configuration files and makes the
// credentials fleet hands to kubeadm: bootstrap tokens, certificate keys and
// the CA public-key hash. Pure functions; the playbooks move the results.
package kubeadm

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
)

// TokenDescription marks the bootstrap tokens fleet apply makes, so that a
// later run can find and delete what an interrupted one left.
const TokenDescription = "fleet apply: joins of this run"

// CRISocket is where the node's container runtime listens.
const CRISocket = "unix:///run/containerd/containerd.sock"

// Cluster is what every configuration shares.
type Cluster struct {
	Name                 string
	KubernetesVersion    string // v1.34.4
	ControlPlaneEndpoint string // host:port of the load balancer
	PodSubnet            string
	ServiceSubnet        string
	CertSANs             []string
	// AllowSwap: the kubelets run with swap on (failSwapOn false,
	// LimitedSwap: only burstable pods may swap, within their limits).
	AllowSwap bool
	// AllowCgroupV1: the kubelets run on hosts with cgroups v1, which
	// kubelets of v1.35 and later refuse unless failCgroupV1 is false and
	// kubeadm's SystemVerification check (which fails on it) is skipped.
	AllowCgroupV1 bool
	// NoKubeProxy: kubeadm init leaves out its kube-proxy addon (the
	// network replaces it).
	NoKubeProxy bool
}

// Node is the host kubeadm runs on.
type Node struct {
	Name             string
	AdvertiseAddress string
	// Labels the kubelet sets on its Node when it registers (only those
	// the NodeRestriction admission lets a kubelet set).
	Labels map[string]string
	// Taints the Node registers with. Empty keeps kubeadm's default (a
	// control-plane taint on masters); set, it replaces it.
	Taints []corev1.Taint
}

// APIVersion picks the kubeadm config API for a Kubernetes version:
// v1beta4 from 1.31 on, v1beta3 before.
func APIVersion(kubernetesVersion string) (string, error) {
	parts := strings.SplitN(strings.TrimPrefix(kubernetesVersion, "v"), ".", 3)
	if len(parts) < 2 {
		return "", fmt.Errorf("kubeadm: bad version %q", kubernetesVersion)
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || major != 1 {
		return "", fmt.Errorf("kubeadm: bad version %q", kubernetesVersion)
	}
	if minor < 26 {
		return "", fmt.Errorf("kubeadm: Kubernetes %s is older than fleet supports (1.26)", kubernetesVersion)
	}
	if minor >= 31 {
		return "kubeadm.k8s.io/v1beta4", nil
	}
	return "kubeadm.k8s.io/v1beta3", nil
}

// InitConfig renders InitConfiguration + ClusterConfiguration for kubeadm
// init on the first master. token and certKey are fleet's own, so that the
// run knows them without parsing kubeadm's output. Without a token (zero
// Token) it is the file for kubeadm init phase upload-certs, which reads the
// key from it rather than from a command line.
func InitConfig(c Cluster, n Node, token Token, tokenTTL string, certKey string) ([]byte, error) {
	api, err := APIVersion(c.KubernetesVersion)
	if err != nil {
		return nil, err
	}
	init := doc{
		"apiVersion":       api,
		"kind":             "InitConfiguration",
		"certificateKey":   certKey,
		"localAPIEndpoint": doc{"advertiseAddress": n.AdvertiseAddress, "bindPort": 6443},
		"nodeRegistration": nodeRegistration(api, n, c.PreflightIgnores()),
	}
	if c.NoKubeProxy {
		init["skipPhases"] = []string{"addon/kube-proxy"}
	}
	if token.ID != "" {
		init["bootstrapTokens"] = []doc{{
			"token":       token.String(),
			"ttl":         tokenTTL,
			"description": TokenDescription,
			"usages":      []string{"signing", "authentication"},
			"groups":      []string{"system:bootstrappers:kubeadm:default-node-token"},
		}}
	}
	sans := append([]string{}, c.CertSANs...)
	if host := endpointHost(c.ControlPlaneEndpoint); host != "" && !contains(sans, host) {
		sans = append(sans, host)
	}
	cluster := doc{
		"apiVersion":           api,
		"kind":                 "ClusterConfiguration",
		"clusterName":          c.Name,
		"kubernetesVersion":    c.KubernetesVersion,
		"controlPlaneEndpoint": c.ControlPlaneEndpoint,
		"networking":           doc{"podSubnet": c.PodSubnet, "serviceSubnet": c.ServiceSubnet},
		"apiServer":            doc{"certSANs": sans},
	}
	if kubelet := c.KubeletPolicy(); len(kubelet) > 0 {
		// kubeadm keeps it in the kubelet-config ConfigMap: every node
		// joined with kubeadm gets it too.
		kubelet["apiVersion"], kubelet["kind"] = KubeletConfigAPI, "KubeletConfiguration"
		return documents(init, cluster, kubelet)
	}
	return documents(init, cluster)
}

// KubeletPolicy is what the cluster's KubeletConfiguration changes of the
// kubelet's defaults; empty for none.
func (c Cluster) KubeletPolicy() map[string]any {
	d := doc{}
	if c.AllowSwap {
		d["failSwapOn"] = false
		d["memorySwap"] = doc{"swapBehavior": SwapBehavior}
	}
	if c.AllowCgroupV1 {
		d["failCgroupV1"] = false
	}
	return d
}

// PreflightIgnores are the kubeadm preflight checks the cluster's
// settings make fail on purpose: every kubeadm init, join and upgrade
// skips them.
func (c Cluster) PreflightIgnores() []string {
	if c.AllowCgroupV1 {
		return []string{"SystemVerification"}
	}
	return nil
}

// JoinConfig renders a JoinConfiguration. certKey is empty for a worker;
// for a control-plane node it is the key of the uploaded certificates.
// Secrets go in this file (0600 on the host), never on a command line that
// ps would show.
func JoinConfig(c Cluster, n Node, token Token, caHash, certKey string) ([]byte, error) {
	api, err := APIVersion(c.KubernetesVersion)
	if err != nil {
		return nil, err
	}
	join := doc{
		"apiVersion": api,
		"kind":       "JoinConfiguration",
		"discovery": doc{"bootstrapToken": doc{
			"apiServerEndpoint": c.ControlPlaneEndpoint,
			"token":             token.String(),
			"caCertHashes":      []string{caHash},
		}},
		"nodeRegistration": nodeRegistration(api, n, c.PreflightIgnores()),
	}
	if certKey != "" {
		join["controlPlane"] = doc{
			"localAPIEndpoint": doc{"advertiseAddress": n.AdvertiseAddress, "bindPort": 6443},
			"certificateKey":   certKey,
		}
	}
	return documents(join)
}

// nodeRegistration renders the node's part of an init or join config.
// kubeletExtraArgs is a list of name/value pairs from v1beta4 on, a map
// before.
func nodeRegistration(api string, n Node, ignore []string) doc {
	args := [][2]string{{"node-ip", n.AdvertiseAddress}}
	if len(n.Labels) > 0 {
		var labels []string
		for _, k := range slices.Sorted(maps.Keys(n.Labels)) {
			labels = append(labels, k+"="+n.Labels[k])
		}
		args = append(args, [2]string{"node-labels", strings.Join(labels, ",")})
	}
	var extra any
	if api == "kubeadm.k8s.io/v1beta3" {
		m := doc{}
		for _, a := range args {
			m[a[0]] = a[1]
		}
		extra = m
	} else {
		var list []doc
		for _, a := range args {
			list = append(list, doc{"name": a[0], "value": a[1]})
		}
		extra = list
	}
	reg := doc{
		"name":             n.Name,
		"criSocket":        CRISocket,
		"kubeletExtraArgs": extra,
	}
	if len(ignore) > 0 {
		reg["ignorePreflightErrors"] = ignore
	}
	if len(n.Taints) > 0 {
		var taints []doc
		for _, t := range n.Taints {
			d := doc{"key": t.Key, "effect": string(t.Effect)}
			if t.Value != "" {
				d["value"] = t.Value
			}
			taints = append(taints, d)
		}
		reg["taints"] = taints
	}
	return reg
}

type doc = map[string]any

// documents writes YAML documents separated by ---; yaml.v3 quotes every
// value that needs it.
func documents(docs ...doc) ([]byte, error) {
	var b bytes.Buffer
	for i, d := range docs {
		if i > 0 {
			b.WriteString("---\n")
		}
		enc := yaml.NewEncoder(&b)
		enc.SetIndent(2)
		if err := enc.Encode(d); err != nil {
			return nil, err
		}
		enc.Close()
	}
	return b.Bytes(), nil
}

func endpointHost(ep string) string {
	if i := strings.LastIndexByte(ep, ':'); i > 0 {
		return strings.Trim(ep[:i], "[]")
	}
	return ep
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
