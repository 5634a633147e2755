// Package inventory reads and validates fleet's YAML inventory: the cluster,
// how to reach its hosts, and which host plays which role. It knows nothing
// of SSH or kubeadm; every error names the file, line and column.
package inventory

import (
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Inventory is a validated cluster description.
type Inventory struct {
	Path    string  `yaml:"-"`
	Cluster Cluster `yaml:"cluster"`
	SSH     SSH     `yaml:"ssh"`
	// LoadBalancers are the hosts under loadbalancer: one (a mapping) or
	// several (a list), which then share VIP.
	LoadBalancers LoadBalancers `yaml:"loadbalancer"`
	VIP           *VIP          `yaml:"vip"`
	Masters       []Host        `yaml:"masters"`
	Workers       []Host        `yaml:"workers"`
	CA            *Host         `yaml:"ca"`
	// LoadBalancer is the first of LoadBalancers: the one balancer, or the
	// one that holds the VIP first. Its nginx settings are every
	// balancer's.
	LoadBalancer *Host `yaml:"-"`

	// Warnings are legal but doubtful choices, such as an even number of
	// masters (no better quorum than one master fewer).
	Warnings []string `yaml:"-"`
}

// LoadBalancers is loadbalancer:, written as one host (a mapping) or a
// list of hosts.
type LoadBalancers []*Host

// UnmarshalYAML takes a mapping as a list of one.
func (l *LoadBalancers) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		var h Host
		if err := n.Decode(&h); err != nil {
			return err
		}
		*l = LoadBalancers{&h}
		return nil
	}
	var hosts []*Host
	if err := n.Decode(&hosts); err != nil {
		return err
	}
	*l = hosts
	return nil
}

// VIP is the virtual address several load balancers share with VRRP
// (keepalived): the one that holds it serves the API.
type VIP struct {
	Address string `yaml:"address"`
	// RouterID is VRRP's virtual router id (1-255), the same on every
	// balancer and unique on their network: default derived from the
	// cluster's name.
	RouterID int `yaml:"routerID"`
}

// VRRPRouterID is the VIP's virtual router id, defaults applied: 1-255
// from the cluster's name (FNV-1a), so two clusters on one network
// differ unless their names collide (then set routerID).
func (inv *Inventory) VRRPRouterID() int {
	if inv.VIP != nil && inv.VIP.RouterID != 0 {
		return inv.VIP.RouterID
	}
	h := fnv.New32a()
	h.Write([]byte(inv.Cluster.Name))
	return int(h.Sum32()%255) + 1
}

// NodeLocalPort is the node-local proxy's port, defaults applied.
func (inv *Inventory) NodeLocalPort() int {
	if inv.Cluster.NodeLocalProxyPort != 0 {
		return inv.Cluster.NodeLocalProxyPort
	}
	return DefaultAPIPort
}

// LoadBalancerNames are the balancers' names, in inventory order.
func (inv *Inventory) LoadBalancerNames() []string {
	var names []string
	for _, h := range inv.LoadBalancers {
		names = append(names, h.Name)
	}
	return names
}

// Cluster holds what kubeadm needs to know about the cluster as a whole.
type Cluster struct {
	Name                 string `yaml:"name"`
	KubernetesVersion    string `yaml:"kubernetesVersion"`
	PodSubnet            string `yaml:"podSubnet"`
	ServiceSubnet        string `yaml:"serviceSubnet"`
	ControlPlaneEndpoint string `yaml:"controlPlaneEndpoint"` // host:port; default the LB's address:6443
	// Network is the pod network fleet installs after init: a manifest, a
	// Helm chart or Cilium.
	Network *Network `yaml:"network"`
	// Addons are applied after the network, in order, the same way.
	Addons []Addon `yaml:"addons"`
	// KubeProxy false leaves kube-proxy out: kubeadm init skips its addon,
	// and on a cluster that has it, apply removes it once the network is
	// rolled out. Default true, but false with network.cilium (Cilium
	// replaces kube-proxy).
	KubeProxy *bool `yaml:"kubeProxy"`
	// CNI and CNISHA256 are the old spelling of network.manifest and
	// network.sha256: still read, with a warning.
	CNI       string `yaml:"cni"`
	CNISHA256 string `yaml:"cniSHA256"`
	// JoinMode is how workers join unless a worker says otherwise:
	// JoinKubeadm (default) or JoinTLSBootstrap.
	JoinMode string `yaml:"joinMode"`
	// Install is where the masters' and workers' software comes from:
	// InstallPrepared (the default: something else installed it, fleet
	// only checks) or InstallBinaries.
	Install string `yaml:"install"`
	// Binaries is the folder (relative to the inventory) of InstallBinaries:
	// kubeadm, kubelet, kubectl, optionally containerd and its tools, and a
	// SHA256SUMS that lists each of them.
	Binaries string `yaml:"binaries"`
	// BinariesURL, with install: binaries, is where the folder's missing
	// kubeadm, kubelet and kubectl are downloaded from (on this machine,
	// before any host is changed): an https URL template with {version}
	// and {name}, e.g. https://dl.k8s.io/release/{version}/bin/linux/amd64/{name}.
	// Each file is checked against the folder's SHA256SUMS line for it,
	// else the release's {name}.sha256.
	BinariesURL string `yaml:"binariesURL"`
	// Packages says where install: packages gets the Kubernetes packages.
	Packages *Packages `yaml:"packages"`
	// RegistryMirrors are containerd's mirrors per registry host
	// ("registry.k8s.io": ["https://mirror.site:5000"]).
	RegistryMirrors map[string][]string `yaml:"registryMirrors"`
	// NodeLocalProxy puts an NGINX stream proxy on 127.0.0.1 of every
	// worker, to every master's API server, and points every kubelet
	// (and kube-proxy) at 127.0.0.1: the nodes keep the API when the
	// load balancer is gone. Masters reach their own API server there.
	NodeLocalProxy bool `yaml:"nodeLocalProxy"`
	// NodeLocalProxyPort is where it listens: DefaultAPIPort (the port
	// the masters' API servers have on their own 127.0.0.1) unless set.
	NodeLocalProxyPort int `yaml:"nodeLocalProxyPort"`
	// AllowSwap lets the kubelets run on nodes with swap (failSwapOn
	// false, swapBehavior LimitedSwap): fleet then leaves swap and
	// /etc/fstab as they are. kubeadm keeps the setting in the cluster's
	// kubelet-config from kubeadm init on.
	AllowSwap bool `yaml:"allowSwap"`
	// AllowCgroupV1 lets the kubelets run on hosts with cgroups v1, which
	// kubelets of v1.35 and later refuse (Kubernetes deprecated it): their
	// config says failCgroupV1: false and kubeadm skips its
	// SystemVerification check. Without it, preflight refuses such hosts
	// for v1.35 on. Moving the hosts to cgroups v2 is the lasting answer.
	AllowCgroupV1 bool `yaml:"allowCgroupV1"`
}

// Network is cluster.network: exactly one of its sources.
type Network struct {
	// Manifest is a file (relative to the inventory) or http(s) URL;
	// ${POD_SUBNET} in it becomes the pod subnet.
	Manifest string `yaml:"manifest"`
	// SHA256 pins the manifest's content ("sha256:<hex>"): checked before
	// anything is applied. A plain http:// manifest needs it.
	SHA256 string  `yaml:"sha256"`
	Helm   *Helm   `yaml:"helm"`
	Cilium *Cilium `yaml:"cilium"`
}

// Addon is one entry of cluster.addons: a name and a manifest or a chart.
type Addon struct {
	Name     string `yaml:"name"`
	Manifest string `yaml:"manifest"`
	SHA256   string `yaml:"sha256"`
	Helm     *Helm  `yaml:"helm"`
}

// Helm is a chart fleet renders on the operator's machine (the Helm SDK,
// as helm template does) and applies server-side.
type Helm struct {
	// Chart is a local directory or .tgz (relative to the inventory), an
	// oci:// reference, or a chart name in Repo.
	Chart   string `yaml:"chart"`
	Repo    string `yaml:"repo"`
	Version string `yaml:"version"` // required for a chart from a repository or registry
	// Release and Namespace default to the chart's name and kube-system.
	Release   string `yaml:"release"`
	Namespace string `yaml:"namespace"`
	// Values is a values file (relative to the inventory); Set lies on
	// top of it, key by dotted key ("hubble.relay.enabled": true).
	Values string         `yaml:"values"`
	Set    map[string]any `yaml:"set"`
}

// Cilium is Cilium's chart with fleet's defaults for this topology under
// the user's values, and optionally the BGP control plane v2 objects.
type Cilium struct {
	Version string `yaml:"version"`
	// Chart and Repo default to the project's repository; Chart may name
	// a local copy of the chart (air-gapped).
	Chart  string         `yaml:"chart"`
	Repo   string         `yaml:"repo"`
	Values string         `yaml:"values"`
	Set    map[string]any `yaml:"set"`
	BGP    *BGP           `yaml:"bgp"`
}

// BGP is what fleet renders Cilium's BGP control plane v2 objects from.
type BGP struct {
	LocalASN          int64             `yaml:"localASN"`
	Peers             []BGPPeer         `yaml:"peers"`
	LoadBalancerCIDRs []string          `yaml:"loadBalancerCIDRs"`
	NodeSelector      map[string]string `yaml:"nodeSelector"` // default bgp: worker; fleet labels the workers with it
	Community         string            `yaml:"community"`    // attached to the advertised pod CIDRs, e.g. "64512:100"
}

// BGPPeer is one BGP neighbour of the nodes.
type BGPPeer struct {
	Address string `yaml:"address"`
	ASN     int64  `yaml:"asn"`
}

// KubeProxyEnabled says whether the cluster runs kube-proxy.
func (c *Cluster) KubeProxyEnabled() bool {
	if c.KubeProxy != nil {
		return *c.KubeProxy
	}
	return c.Network == nil || c.Network.Cilium == nil
}

// Packages is the Kubernetes package repository of install: packages.
type Packages struct {
	// Repository is a flat apt repository ("deb [signed-by=KEY] URL /"):
	// default the Kubernetes project's for the version's minor, or a site
	// mirror of it.
	Repository string `yaml:"repository"`
	// RPMRepository is the rpm repository of dnf hosts (RHEL, Rocky,
	// Alma, Fedora): default the Kubernetes project's for the version's
	// minor, or a site mirror of it.
	RPMRepository string `yaml:"rpmRepository"`
	// Key is the repositories' signing key, a file beside the inventory
	// (armored or not); default: the repository's own (apt: Release.key;
	// rpm: repodata/repomd.xml.key), fetched by fleet.
	Key string `yaml:"key"`
	// KeyFingerprint pins the key: default the Kubernetes project's.
	KeyFingerprint string `yaml:"keyFingerprint"`
}

// KubernetesKeyFingerprint is the key pkgs.k8s.io signs its repositories
// with ("isv:kubernetes OBS Project").
const KubernetesKeyFingerprint = "DE15B14486CD377B9E876E1A234654DA9A296436"

// PackageRepository is install: packages' repository, defaults applied.
func (inv *Inventory) PackageRepository() string {
	if p := inv.Cluster.Packages; p != nil && p.Repository != "" {
		return p.Repository
	}
	return kubernetesRepository(inv.Cluster.KubernetesVersion, "deb")
}

// RPMPackageRepository is install: packages' repository for dnf hosts,
// defaults applied.
func (inv *Inventory) RPMPackageRepository() string {
	if p := inv.Cluster.Packages; p != nil && p.RPMRepository != "" {
		return p.RPMRepository
	}
	return kubernetesRepository(inv.Cluster.KubernetesVersion, "rpm")
}

// kubernetesRepository is pkgs.k8s.io's repository of version's minor in
// format (deb, rpm).
func kubernetesRepository(version, format string) string {
	minor := version
	if parts := strings.SplitN(strings.TrimPrefix(minor, "v"), ".", 3); len(parts) >= 2 {
		minor = "v" + parts[0] + "." + parts[1]
	}
	return "https://pkgs.k8s.io/core:/stable:/" + minor + "/" + format + "/"
}

// PackageKeyFingerprint is the fingerprint the repository's key must
// have, defaults applied: upper-case hex, no spaces.
func (inv *Inventory) PackageKeyFingerprint() string {
	if p := inv.Cluster.Packages; p != nil && p.KeyFingerprint != "" {
		return strings.ToUpper(strings.ReplaceAll(p.KeyFingerprint, " ", ""))
	}
	return KubernetesKeyFingerprint
}

// Where the node software comes from.
const (
	// InstallPrepared: the hosts come with containerd, kubeadm, kubelet
	// and kubectl installed and the kernel set up; fleet checks them.
	InstallPrepared = "prepared"
	// InstallBinaries: fleet sets the kernel up and uploads the binaries
	// of Cluster.Binaries (air-gapped: nothing is downloaded by a host).
	InstallBinaries = "binaries"
	// InstallPackages: fleet sets the kernel up and installs containerd
	// from the distribution's packages and kubeadm, kubelet and kubectl
	// from the Kubernetes repository (Cluster.Packages), pinned and held.
	InstallPackages = "packages"
)

// Installs reports whether fleet prepares the nodes itself.
func (inv *Inventory) Installs() bool {
	return inv.Cluster.Install == InstallBinaries || inv.Cluster.Install == InstallPackages
}

// How a worker joins the cluster.
const (
	// JoinKubeadm: kubeadm join with a bootstrap token and the CA hash.
	JoinKubeadm = "kubeadm"
	// JoinTLSBootstrap: no kubeadm on the worker; fleet writes the
	// bootstrap kubeconfig and the kubelet's config, the kubelet asks for
	// its certificate with a CSR that the cluster approves.
	JoinTLSBootstrap = "tls-bootstrap"
	// JoinCFSSL: the kubelet's client certificate is signed by the CA
	// host's CFSSL API (authenticated remote signing); no kubeadm on the
	// worker, no bootstrap token.
	JoinCFSSL = "cfssl"
)

// JoinModeOf is how worker h joins: its own mode, else the cluster's.
func (inv *Inventory) JoinModeOf(h *Host) string {
	if h.JoinMode != "" {
		return h.JoinMode
	}
	if inv.Cluster.JoinMode != "" {
		return inv.Cluster.JoinMode
	}
	return JoinKubeadm
}

// SSH says how to log in. The inventory's top-level block is the default;
// a host's own block overrides the fields it sets.
type SSH struct {
	User           string   `yaml:"user"`
	Port           int      `yaml:"port"`
	IdentityFile   string   `yaml:"identityFile"`
	Agent          *bool    `yaml:"agent"`
	KnownHosts     string   `yaml:"knownHosts"`
	JumpHost       string   `yaml:"jumpHost"` // [user@]host[:port], as ssh -J
	Sudo           *bool    `yaml:"sudo"`
	ConnectTimeout Duration `yaml:"connectTimeout"`
	// Config is the OpenSSH client config whose Host blocks fill what the
	// inventory leaves out (top-level block only): default ~/.ssh/config,
	// "none" for no config.
	Config string `yaml:"config"`
}

// Host is one machine of the inventory.
type Host struct {
	Name    string `yaml:"name"`
	Address string `yaml:"address"`
	SSH     *SSH   `yaml:"ssh"`
	// Labels and Taints go on the node's Node: at join where the kubelet
	// may set them, then through the API on every apply. Labels and taints
	// fleet set and the inventory no longer has are removed; others are
	// left alone. Masters and workers only.
	Labels map[string]string `yaml:"labels"`
	Taints []Taint           `yaml:"taints"`
	OS     string            `yaml:"os"`    // CA host only: linux (default) or illumos
	Nginx  *Nginx            `yaml:"nginx"` // load balancer only
	CFSSL  *CFSSL            `yaml:"cfssl"` // CA host only
	// JoinMode overrides the cluster's join mode for this worker.
	JoinMode string `yaml:"joinMode"`

	Role Role `yaml:"-"`
}

// Taint keeps pods off a node unless they tolerate it.
type Taint struct {
	Key    string `yaml:"key"`
	Value  string `yaml:"value"`
	Effect string `yaml:"effect"` // NoSchedule, PreferNoSchedule or NoExecute
}

// Nginx tunes the load balancer's stream proxy and says how nginx runs.
type Nginx struct {
	ConnectTimeout Duration `yaml:"connectTimeout"` // proxy_connect_timeout (default 1s)
	ProxyTimeout   Duration `yaml:"proxyTimeout"`   // proxy_timeout (default 3s)
	// RunAs is "service" (the host's nginx, the default) or "container"
	// (docker runs Image with the API port published).
	RunAs string `yaml:"runAs"`
	Image string `yaml:"image"` // container only; default DefaultNginxImage
}

// CFSSL says how the CA host's CFSSL API runs.
type CFSSL struct {
	Port int `yaml:"port"` // the API (default 8888)
	// RootCert and RootKey are PEM files on the operator's machine,
	// relative to the inventory file: the root the cluster CA is signed
	// with. Without them the CA host keeps the root it has, or fleet
	// apply --generate-ca makes one there.
	RootCert string `yaml:"rootCert"`
	RootKey  string `yaml:"rootKey"`
}

// DefaultCFSSLPort is cfssl serve's conventional port.
const DefaultCFSSLPort = 8888

// CFSSLPort is the CA host's API port, defaults applied.
func (inv *Inventory) CFSSLPort() int {
	if inv.CA != nil && inv.CA.CFSSL != nil && inv.CA.CFSSL.Port != 0 {
		return inv.CA.CFSSL.Port
	}
	return DefaultCFSSLPort
}

// How nginx runs on the load balancer.
const (
	NginxService   = "service"
	NginxContainer = "container"
	// DefaultNginxImage is the official image's stable line: its nginx has
	// the stream module built in.
	DefaultNginxImage = "nginx:stable"
)

// NginxRunAs is how nginx runs on the load balancer, defaults applied.
func (inv *Inventory) NginxRunAs() string {
	if lb := inv.LoadBalancer; lb != nil && lb.Nginx != nil && lb.Nginx.RunAs != "" {
		return lb.Nginx.RunAs
	}
	return NginxService
}

// NginxImage is the container image of the load balancer, defaults applied.
func (inv *Inventory) NginxImage() string {
	if lb := inv.LoadBalancer; lb != nil && lb.Nginx != nil && lb.Nginx.Image != "" {
		return lb.Nginx.Image
	}
	return DefaultNginxImage
}

// Role is what a host does in the cluster.
type Role string

const (
	RoleLoadBalancer Role = "loadbalancer"
	RoleMaster       Role = "master"
	RoleWorker       Role = "worker"
	RoleCA           Role = "ca"
)

// Defaults applied when the inventory leaves a field out.
const (
	DefaultPodSubnet     = "10.244.0.0/16"
	DefaultServiceSubnet = "10.96.0.0/12"
	DefaultAPIPort       = 6443
	DefaultSSHPort       = 22
	DefaultSSHUser       = "root"
	DefaultKnownHosts    = "~/.ssh/known_hosts"
	DefaultTimeout       = 10 * time.Second
)

// Hosts returns every host, load balancers first, then masters, workers and
// the CA host.
func (inv *Inventory) Hosts() []*Host {
	all := slices.Clone(inv.LoadBalancers)
	for i := range inv.Masters {
		all = append(all, &inv.Masters[i])
	}
	for i := range inv.Workers {
		all = append(all, &inv.Workers[i])
	}
	if inv.CA != nil {
		all = append(all, inv.CA)
	}
	return all
}

// Host returns the named host, or nil.
func (inv *Inventory) Host(name string) *Host {
	for _, h := range inv.Hosts() {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// SSHFor returns the effective SSH settings of h: the host's own block over
// the inventory's defaults over fleet's defaults.
func (inv *Inventory) SSHFor(h *Host) SSH {
	eff := inv.SSHGiven(h)
	if eff.User == "" {
		eff.User = DefaultSSHUser
	}
	if eff.Port == 0 {
		eff.Port = DefaultSSHPort
	}
	if eff.KnownHosts == "" {
		eff.KnownHosts = expandHome(DefaultKnownHosts)
	}
	if eff.ConnectTimeout == 0 {
		eff.ConnectTimeout = Duration(DefaultTimeout)
	}
	return eff
}

// SSHGiven is what the inventory itself says of h's login (the host's
// block over the top-level one), without fleet's defaults: where it is
// silent, the user's ssh config may speak.
func (inv *Inventory) SSHGiven(h *Host) SSH {
	eff := inv.SSH
	if o := h.SSH; o != nil {
		if o.User != "" {
			eff.User = o.User
		}
		if o.Port != 0 {
			eff.Port = o.Port
		}
		if o.IdentityFile != "" {
			eff.IdentityFile = o.IdentityFile
		}
		if o.Agent != nil {
			eff.Agent = o.Agent
		}
		if o.KnownHosts != "" {
			eff.KnownHosts = o.KnownHosts
		}
		if o.JumpHost != "" {
			eff.JumpHost = o.JumpHost
		}
		if o.Sudo != nil {
			eff.Sudo = o.Sudo
		}
		if o.ConnectTimeout != 0 {
			eff.ConnectTimeout = o.ConnectTimeout
		}
	}
	return eff
}

// On reports whether an optional flag is set to true.
func On(b *bool) bool { return b != nil && *b }

// Duration is a time.Duration written as "10s" in YAML.
type Duration time.Duration
