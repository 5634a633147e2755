package inventory

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

var (
	dnsLabel    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	dnsName     = regexp.MustCompile(`^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$`)
	dottedNums  = regexp.MustCompile(`^[0-9.]+$`)
	k8sVersion  = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$`)
	unixUser    = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)
	labelName   = regexp.MustCompile(`^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)$`)
	labelPrefix = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)
	// imageRef is the container image reference grammar, simplified:
	// [registry[:port]/]path[:tag][@sha256:digest].
	imageRef = regexp.MustCompile(`^([a-zA-Z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$`)
)

func (d *decoder) validate(inv *Inventory) {
	d.hasCA = inv.CA != nil
	d.validateCluster(inv)
	d.validateSSH(&inv.SSH, "ssh")
	d.validateLoadBalancers(inv)
	if len(inv.Masters) == 0 {
		d.errorf("masters", "at least one master is required")
	} else if len(inv.Masters)%2 == 0 {
		inv.Warnings = append(inv.Warnings, fmt.Sprintf("%s: %d masters: an even number tolerates no more failures than %d (etcd quorum)",
			inv.Path, len(inv.Masters), len(inv.Masters)-1))
	}
	for i := range inv.Masters {
		inv.Masters[i].Role = RoleMaster
		d.validateHost(&inv.Masters[i], fmt.Sprintf("masters[%d]", i))
	}
	for i := range inv.Workers {
		inv.Workers[i].Role = RoleWorker
		d.validateHost(&inv.Workers[i], fmt.Sprintf("workers[%d]", i))
	}
	if inv.CA != nil {
		inv.CA.Role = RoleCA
		d.validateHost(inv.CA, "ca")
		switch inv.CA.OS {
		case "":
			inv.CA.OS = "linux"
		case "linux", "illumos":
		default:
			d.errorf("ca.os", "%q is not a supported OS (linux or illumos)", inv.CA.OS)
		}
		if c := inv.CA.CFSSL; c != nil {
			if c.Port != 0 && (c.Port < 1 || c.Port > 65535) {
				d.errorf("ca.cfssl.port", "%d is not a port", c.Port)
			}
			if (c.RootCert == "") != (c.RootKey == "") {
				d.errorf("ca.cfssl", "rootCert and rootKey go together: name both, or neither (fleet apply --generate-ca makes a root on the CA host)")
			}
		}
	}
	d.checkUnique(inv)
	d.checkEndpoint(inv)
	d.checkAddressesOutsideSubnets(inv)
}

// validateLoadBalancers checks loadbalancer: (one host, or a list that
// shares vip:) and vip:.
func (d *decoder) validateLoadBalancers(inv *Inventory) {
	lbs := inv.LoadBalancers
	if len(lbs) == 0 {
		if !inv.Cluster.NodeLocalProxy {
			d.errorf("loadbalancer", "a load balancer host is required (or cluster.nodeLocalProxy: true, where every node reaches the masters itself)")
		}
		if inv.VIP != nil {
			d.errorf("vip", "a VIP needs two load balancers or more (a list under loadbalancer:)")
		}
		return
	}
	inv.LoadBalancer = lbs[0]
	for i, h := range lbs {
		h.Role = RoleLoadBalancer
		d.validateHost(h, d.lbPath(i))
		if i > 0 && h.Nginx != nil {
			d.errorf(d.lbPath(i)+".nginx", "nginx settings go on the first balancer only: every balancer serves the same config")
		}
	}
	v := inv.VIP
	switch {
	case v == nil && len(lbs) > 1:
		d.errorf("loadbalancer", "%d load balancers need a vip: (the address they share)", len(lbs))
	case v == nil:
	case len(lbs) < 2:
		d.errorf("vip", "a VIP needs two load balancers or more (a list under loadbalancer:)")
	case v.Address == "":
		d.errorf("vip.address", "the VIP's address is required")
	default:
		if a, err := netip.ParseAddr(v.Address); err != nil || !a.Is4() {
			d.errorf("vip.address", "%q is not an IPv4 address (keepalived's VRRP v2)", v.Address)
		}
		if v.RouterID < 0 || v.RouterID > 255 {
			d.errorf("vip.routerID", "%d is not a VRRP router id (1-255)", v.RouterID)
		}
		for i, h := range lbs {
			if h.Address == v.Address {
				d.errorf(d.lbPath(i)+".address", "the VIP %s is a balancer's own address: it must be a free one they share", v.Address)
			}
		}
	}
}

// lbPath is the i-th balancer's path in messages: loadbalancer when it
// was written as one host.
func (d *decoder) lbPath(i int) string {
	if n := d.pos["loadbalancer"]; n != nil && n.Kind == yaml.MappingNode {
		return "loadbalancer"
	}
	return fmt.Sprintf("loadbalancer[%d]", i)
}

// checkJoinMode accepts the join modes fleet carries out.
func (d *decoder) checkJoinMode(mode, path string) {
	switch mode {
	case "", JoinKubeadm, JoinTLSBootstrap:
	case JoinCFSSL:
		if !d.hasCA {
			d.errorf(path, "%q needs the CA host's CFSSL API: add a ca: host to the inventory", mode)
		}
	default:
		d.errorf(path, "%q: want kubeadm, tls-bootstrap or cfssl", mode)
	}
}

func (d *decoder) validateCluster(inv *Inventory) {
	c := &inv.Cluster
	d.checkJoinMode(c.JoinMode, "cluster.joinMode")
	d.checkInstall(c)
	switch p := c.NodeLocalProxyPort; {
	case p != 0 && !c.NodeLocalProxy:
		d.errorf("cluster.nodeLocalProxyPort", "is used by nodeLocalProxy: true only")
	case p < 0 || p > 65535:
		d.errorf("cluster.nodeLocalProxyPort", "%d is not a TCP port", p)
	case p == 10250 || p == 10256:
		d.errorf("cluster.nodeLocalProxyPort", "%d is the kubelet's or kube-proxy's own port", p)
	}
	switch {
	case c.Name == "":
		d.errorf("cluster.name", "is required")
	case !dnsLabel.MatchString(c.Name):
		d.errorf("cluster.name", "%q must be a DNS label (lower-case letters, digits, '-')", c.Name)
	}
	switch {
	case c.KubernetesVersion == "":
		d.errorf("cluster.kubernetesVersion", "is required (e.g. v1.34.4)")
	case !k8sVersion.MatchString(c.KubernetesVersion):
		d.errorf("cluster.kubernetesVersion", "%q is not a version like v1.34.4", c.KubernetesVersion)
	case !strings.HasPrefix(c.KubernetesVersion, "v"):
		c.KubernetesVersion = "v" + c.KubernetesVersion
	}
	if c.PodSubnet == "" {
		c.PodSubnet = DefaultPodSubnet
	}
	if c.ServiceSubnet == "" {
		c.ServiceSubnet = DefaultServiceSubnet
	}
	pod, podErr := netip.ParsePrefix(c.PodSubnet)
	if podErr != nil {
		d.errorf("cluster.podSubnet", "%q is not a CIDR (e.g. 10.244.0.0/16)", c.PodSubnet)
	}
	svc, svcErr := netip.ParsePrefix(c.ServiceSubnet)
	if svcErr != nil {
		d.errorf("cluster.serviceSubnet", "%q is not a CIDR (e.g. 10.96.0.0/12)", c.ServiceSubnet)
	}
	if podErr == nil && svcErr == nil && pod.Overlaps(svc) {
		d.errorf("cluster.serviceSubnet", "%s overlaps the pod subnet %s", c.ServiceSubnet, c.PodSubnet)
	}
	d.validateNetwork(inv)
}

// validateNetwork checks cluster.network and cluster.addons, and reads
// the old cni:/cniSHA256: into network.manifest.
func (d *decoder) validateNetwork(inv *Inventory) {
	c := &inv.Cluster
	if c.CNI != "" || c.CNISHA256 != "" {
		if c.Network != nil {
			d.errorf("cluster.cni", "cluster.cni and cluster.network both name the network: keep network (cni is its old spelling)")
			return
		}
		inv.Warnings = append(inv.Warnings, fmt.Sprintf("%s: cluster.cni is deprecated: write it as cluster.network.manifest (and cniSHA256 as network.sha256)", d.at("cluster.cni", "cluster.cniSHA256")))
		c.Network = &Network{Manifest: c.CNI, SHA256: c.CNISHA256}
		d.checkManifest("cluster.cni", "cluster.cniSHA256", c.CNI, c.CNISHA256)
	} else if n := c.Network; n != nil {
		set := 0
		for _, b := range []bool{n.Manifest != "", n.Helm != nil, n.Cilium != nil} {
			if b {
				set++
			}
		}
		if set != 1 {
			d.errorf("cluster.network", "name exactly one of manifest, helm or cilium")
		}
		d.checkManifest("cluster.network.manifest", "cluster.network.sha256", n.Manifest, n.SHA256)
		if n.Helm != nil {
			d.checkHelm("cluster.network.helm", n.Helm)
		}
		if ci := n.Cilium; ci != nil {
			d.checkCilium(ci)
		}
	}
	seen := map[string]bool{}
	for i := range c.Addons {
		a := &c.Addons[i]
		field := fmt.Sprintf("cluster.addons[%d]", i)
		switch {
		case !dnsLabel.MatchString(a.Name):
			d.errorf(field+".name", "%q is not a name (lower-case letters, digits and -)", a.Name)
		case seen[a.Name]:
			d.errorf(field+".name", "%q is named twice", a.Name)
		}
		seen[a.Name] = true
		if (a.Manifest != "") == (a.Helm != nil) {
			d.errorf(field, "name exactly one of manifest or helm")
		}
		d.checkManifest(field+".manifest", field+".sha256", a.Manifest, a.SHA256)
		if a.Helm != nil {
			d.checkHelm(field+".helm", a.Helm)
		}
	}
	if c.KubeProxy != nil && *c.KubeProxy && c.Network != nil && c.Network.Cilium != nil {
		inv.Warnings = append(inv.Warnings, fmt.Sprintf("%s: kubeProxy: true with cilium: Cilium runs beside kube-proxy (kubeProxyReplacement: false)", d.at("cluster.kubeProxy")))
	}
}

// checkManifest: the manifest is applied with cluster-admin rights, so
// whoever can change it on the way owns the cluster.
func (d *decoder) checkManifest(field, pinField, src, pin string) {
	switch {
	case pin != "" && !sha256Pin.MatchString(pin):
		d.errorf(pinField, "%q is not sha256: and 64 hex digits (sha256sum of the manifest)", pin)
	case pin != "" && src == "":
		d.errorf(pinField, "pins a manifest, but none is named")
	case strings.HasPrefix(src, "http://") && pin == "":
		d.errorf(field, "%q is plain http: use https, or pin the manifest with %s", src, pinField)
	}
}

func (d *decoder) checkHelm(field string, h *Helm) {
	remote := h.Repo != "" || strings.HasPrefix(h.Chart, "oci://")
	switch {
	case h.Chart == "":
		d.errorf(field+".chart", "is required: a chart directory or .tgz, an oci:// reference, or a chart name with repo")
	case remote && h.Version == "":
		d.errorf(field+".version", "is required for a chart from a repository or registry (fleet pins what it installs)")
	case strings.HasPrefix(h.Repo, "http://"):
		d.errorf(field+".repo", "%q is plain http: a chart repository must be https", h.Repo)
	}
	if h.Release != "" && !dnsLabel.MatchString(h.Release) {
		d.errorf(field+".release", "%q is not a release name (lower-case letters, digits and -)", h.Release)
	}
	if h.Namespace != "" && !dnsLabel.MatchString(h.Namespace) {
		d.errorf(field+".namespace", "%q is not a namespace name", h.Namespace)
	}
}

func (d *decoder) checkCilium(c *Cilium) {
	const field = "cluster.network.cilium"
	if !k8sVersion.MatchString(c.Version) {
		d.errorf(field+".version", "%q is not a Cilium version (e.g. 1.18.4)", c.Version)
	}
	if strings.HasPrefix(c.Repo, "http://") {
		d.errorf(field+".repo", "%q is plain http: a chart repository must be https", c.Repo)
	}
	b := c.BGP
	if b == nil {
		return
	}
	if len(b.NodeSelector) == 0 {
		b.NodeSelector = map[string]string{"bgp": "worker"}
	}
	if b.LocalASN < 1 || b.LocalASN > 4294967295 {
		d.errorf(field+".bgp.localASN", "%d is not an AS number (1-4294967295)", b.LocalASN)
	}
	if len(b.Peers) == 0 {
		d.errorf(field+".bgp.peers", "at least one peer (address, asn) is needed")
	}
	for i, p := range b.Peers {
		pf := fmt.Sprintf("%s.bgp.peers[%d]", field, i)
		if _, err := netip.ParseAddr(p.Address); err != nil {
			d.errorf(pf+".address", "%q is not an IP address", p.Address)
		}
		if p.ASN < 1 || p.ASN > 4294967295 {
			d.errorf(pf+".asn", "%d is not an AS number (1-4294967295)", p.ASN)
		}
	}
	for i, cidr := range b.LoadBalancerCIDRs {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			d.errorf(fmt.Sprintf("%s.bgp.loadBalancerCIDRs[%d]", field, i), "%q is not a CIDR", cidr)
		}
	}
	for k, v := range b.NodeSelector {
		if err := checkLabel(k, v); err != nil {
			d.errorf(field+".bgp.nodeSelector", "%v", err)
		}
	}
	if b.Community != "" && !bgpCommunity.MatchString(b.Community) {
		d.errorf(field+".bgp.community", "%q is not a standard community (ASN:value, e.g. 64512:100)", b.Community)
	}
}

var bgpCommunity = regexp.MustCompile(`^[0-9]{1,5}:[0-9]{1,5}$`)

// at is "file:line" of the first of the fields that was written.
func (d *decoder) at(fields ...string) string {
	for _, f := range fields {
		if n := d.pos[f]; n != nil {
			return fmt.Sprintf("%s:%d", d.file, n.Line)
		}
	}
	return d.file
}

// checkInstall accepts the install sources fleet carries out.
func (d *decoder) checkInstall(c *Cluster) {
	switch c.Install {
	case "":
		c.Install = InstallPrepared
	case InstallPrepared:
	case InstallBinaries:
		if c.Binaries == "" {
			d.errorf("cluster.install", "binaries needs cluster.binaries: the folder with kubeadm, kubelet, kubectl and their SHA256SUMS")
		}
	case InstallPackages:
		if p := c.Packages; p != nil {
			for _, r := range []struct {
				field string
				url   *string
			}{{"repository", &p.Repository}, {"rpmRepository", &p.RPMRepository}} {
				field, url := r.field, r.url
				if *url != "" && !strings.HasPrefix(*url, "https://") && !strings.HasPrefix(*url, "http://") {
					d.errorf("cluster.packages."+field, "%q is not an http(s) URL", *url)
				}
				if *url != "" && !strings.HasSuffix(*url, "/") {
					*url += "/"
				}
			}
			if fp := strings.ReplaceAll(p.KeyFingerprint, " ", ""); fp != "" && !fingerprint.MatchString(fp) {
				d.errorf("cluster.packages.keyFingerprint", "%q is not 40 hex digits (gpg --show-keys prints it)", p.KeyFingerprint)
			}
		}
	default:
		d.errorf("cluster.install", "%q: want prepared, binaries or packages", c.Install)
	}
	if c.BinariesURL != "" {
		switch {
		case c.Install != InstallBinaries:
			d.errorf("cluster.binariesURL", "is used by install: binaries only")
		case !strings.HasPrefix(c.BinariesURL, "https://"):
			d.errorf("cluster.binariesURL", "%q is not an https URL (the sums come from the same server)", c.BinariesURL)
		case !strings.Contains(c.BinariesURL, "{name}"):
			d.errorf("cluster.binariesURL", "%q has no {name}: each binary needs its own URL", c.BinariesURL)
		}
	}
	if c.Binaries != "" && c.Install != InstallBinaries {
		d.errorf("cluster.binaries", "is used by install: binaries only")
	}
	if c.Packages != nil && c.Install != InstallPackages {
		d.errorf("cluster.packages", "is used by install: packages only")
	}
	for host, urls := range c.RegistryMirrors {
		// It names a folder on every node (containerd's certs.d/HOST).
		if !registryHost.MatchString(host) || strings.Contains(host, "..") {
			d.errorf("cluster.registryMirrors", "%q is not a registry host (host or host:port, as in an image name)", host)
		}
		if len(urls) == 0 {
			d.errorf("cluster.registryMirrors", "%s has no mirror", host)
		}
		for _, u := range urls {
			if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
				d.errorf("cluster.registryMirrors", "%s: %q is not an http(s) URL", host, u)
			}
		}
	}
}

var fingerprint = regexp.MustCompile(`^[0-9A-Fa-f]{40}$`)

// registryHost is an image name's registry part: a host name or address,
// optionally with a port.
var registryHost = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$`)

var sha256Pin = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

func (d *decoder) validateSSH(s *SSH, path string) {
	if s.User != "" && !unixUser.MatchString(s.User) {
		d.errorf(path+".user", "%q is not a valid user name", s.User)
	}
	if s.Port < 0 || s.Port > 65535 {
		d.errorf(path+".port", "%d is not a TCP port", s.Port)
	}
	if s.ConnectTimeout < 0 {
		d.errorf(path+".connectTimeout", "must be positive")
	}
	if s.JumpHost != "" {
		if _, err := ParseJumpHost(s.JumpHost); err != nil {
			d.errorf(path+".jumpHost", "%v", err)
		}
	}
}

func (d *decoder) validateHost(h *Host, path string) {
	switch {
	case h.Name == "":
		d.errorf(path+".name", "is required")
	case !dnsLabel.MatchString(h.Name):
		d.errorf(path+".name", "%q must be a DNS label (lower-case letters, digits, '-'; it becomes the node name)", h.Name)
	}
	if h.Address == "" {
		d.errorf(path+".address", "is required")
	} else if err := checkAddress(h.Address); err != nil {
		d.errorf(path+".address", "%v", err)
	}
	if h.OS != "" && h.Role != RoleCA {
		d.errorf(path+".os", "only the ca host takes an os")
	}
	if h.JoinMode != "" {
		if h.Role != RoleWorker {
			d.errorf(path+".joinMode", "only workers take a join mode (masters join with kubeadm)")
		} else {
			d.checkJoinMode(h.JoinMode, path+".joinMode")
		}
	}
	if h.CFSSL != nil && h.Role != RoleCA {
		d.errorf(path+".cfssl", "only the ca host takes cfssl options")
	}
	if h.Nginx != nil {
		if h.Role != RoleLoadBalancer {
			d.errorf(path+".nginx", "only the loadbalancer host takes nginx options")
		}
		for field, v := range map[string]Duration{"connectTimeout": h.Nginx.ConnectTimeout, "proxyTimeout": h.Nginx.ProxyTimeout} {
			if v < 0 || (v > 0 && time.Duration(v) < time.Millisecond) {
				d.errorf(path+".nginx."+field, "must be at least 1ms")
			}
		}
		switch h.Nginx.RunAs {
		case "", NginxService:
			if h.Nginx.Image != "" {
				d.errorf(path+".nginx.image", "an image needs runAs: container")
			}
		case NginxContainer:
			if h.Nginx.Image != "" && !imageRef.MatchString(h.Nginx.Image) {
				d.errorf(path+".nginx.image", "%q is not an image reference like nginx:1.27 or registry.example.com/nginx@sha256:...", h.Nginx.Image)
			}
		default:
			d.errorf(path+".nginx.runAs", "%q: want service or container", h.Nginx.RunAs)
		}
	}
	if h.SSH != nil {
		d.validateSSH(h.SSH, path+".ssh")
		if h.SSH.Config != "" {
			d.errorf(path+".ssh.config", "the ssh config is chosen once, in the top-level ssh block")
		}
	}
	if (len(h.Labels) > 0 || len(h.Taints) > 0) && h.Role != RoleMaster && h.Role != RoleWorker {
		field := "labels"
		if len(h.Labels) == 0 {
			field = "taints"
		}
		d.errorf(path+"."+field, "only masters and workers are nodes: a %s takes no labels or taints", h.Role)
	}
	for k, v := range h.Labels {
		if err := checkLabel(k, v); err != nil {
			d.errorf(path+".labels."+k, "%v", err)
		}
	}
	seen := map[string]bool{}
	for i, t := range h.Taints {
		at := fmt.Sprintf("%s.taints[%d]", path, i)
		if t.Key == "" {
			d.errorf(at+".key", "is required")
		} else if err := checkLabel(t.Key, t.Value); err != nil {
			d.errorf(at, "%v", strings.NewReplacer("label key", "taint key", "label value", "taint value").Replace(err.Error()))
		}
		switch t.Effect {
		case "NoSchedule", "PreferNoSchedule", "NoExecute":
		case "":
			d.errorf(at+".effect", "is required: NoSchedule, PreferNoSchedule or NoExecute")
		default:
			d.errorf(at+".effect", "%q: want NoSchedule, PreferNoSchedule or NoExecute", t.Effect)
		}
		if id := t.Key + ":" + t.Effect; seen[id] {
			d.errorf(at, "a second taint %s: a node has one per key and effect", id)
		} else {
			seen[id] = true
		}
	}
}

func checkAddress(a string) error {
	if _, err := netip.ParseAddr(a); err == nil {
		return nil
	}
	if dottedNums.MatchString(a) {
		return fmt.Errorf("%q is not a valid IP address", a)
	}
	if !dnsName.MatchString(a) || len(a) > 253 {
		return fmt.Errorf("%q is neither an IP address nor a DNS name", a)
	}
	return nil
}

// checkLabel applies Kubernetes' label syntax: [prefix/]name=value.
func checkLabel(k, v string) error {
	name := k
	if i := strings.LastIndexByte(k, '/'); i >= 0 {
		if !labelPrefix.MatchString(k[:i]) {
			return fmt.Errorf("label key %q has an invalid prefix (a DNS subdomain)", k)
		}
		name = k[i+1:]
	}
	if !labelName.MatchString(name) {
		return fmt.Errorf("label key %q is invalid (at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends)", k)
	}
	if v != "" && !labelName.MatchString(v) {
		return fmt.Errorf("label value %q is invalid (at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends)", v)
	}
	return nil
}

func (d *decoder) checkUnique(inv *Inventory) {
	names, addrs := map[string]string{}, map[string]string{}
	for _, h := range inv.Hosts() {
		path := d.pathOf(inv, h)
		if h.Name != "" {
			if first, dup := names[h.Name]; dup {
				d.errorf(path+".name", "host name %q is already used by %s", h.Name, first)
			} else {
				names[h.Name] = path
			}
		}
		if h.Address != "" {
			if first, dup := addrs[h.Address]; dup {
				d.errorf(path+".address", "address %s is already used by %s", h.Address, first)
			} else {
				addrs[h.Address] = path
			}
		}
	}
}

func (d *decoder) pathOf(inv *Inventory, h *Host) string {
	switch h.Role {
	case RoleLoadBalancer:
		return d.lbPath(slices.Index(inv.LoadBalancers, h))
	case RoleCA:
		return "ca"
	}
	list, key := inv.Masters, "masters"
	if h.Role == RoleWorker {
		list, key = inv.Workers, "workers"
	}
	for i := range list {
		if &list[i] == h {
			return fmt.Sprintf("%s[%d]", key, i)
		}
	}
	return key
}

func (d *decoder) checkEndpoint(inv *Inventory) {
	ep := &inv.Cluster.ControlPlaneEndpoint
	if *ep == "" {
		switch {
		case inv.VIP != nil && inv.VIP.Address != "":
			*ep = net.JoinHostPort(inv.VIP.Address, strconv.Itoa(DefaultAPIPort))
		case inv.LoadBalancer != nil && inv.LoadBalancer.Address != "":
			*ep = net.JoinHostPort(inv.LoadBalancer.Address, strconv.Itoa(DefaultAPIPort))
		case len(inv.Masters) > 0 && inv.Masters[0].Address != "":
			// No balancer (node-local proxies): joins and the operator's
			// kubeconfig go to the first master.
			*ep = net.JoinHostPort(inv.Masters[0].Address, strconv.Itoa(DefaultAPIPort))
		}
		return
	}
	host, port, err := net.SplitHostPort(*ep)
	if err != nil {
		d.errorf("cluster.controlPlaneEndpoint", "%q must be host:port (e.g. lb.example.com:6443)", *ep)
		return
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		d.errorf("cluster.controlPlaneEndpoint", "port %q is not a TCP port", port)
	}
	if err := checkAddress(host); err != nil {
		d.errorf("cluster.controlPlaneEndpoint", "%v", err)
	}
}

// checkAddressesOutsideSubnets catches a classic mistake: a pod or service
// subnet that contains the nodes' own addresses breaks routing.
func (d *decoder) checkAddressesOutsideSubnets(inv *Inventory) {
	pod, err1 := netip.ParsePrefix(inv.Cluster.PodSubnet)
	svc, err2 := netip.ParsePrefix(inv.Cluster.ServiceSubnet)
	if err1 != nil || err2 != nil {
		return
	}
	for _, h := range inv.Hosts() {
		a, err := netip.ParseAddr(h.Address)
		if err != nil {
			continue
		}
		for _, s := range []struct {
			name   string
			prefix netip.Prefix
		}{{"pod subnet", pod}, {"service subnet", svc}} {
			if s.prefix.Contains(a) {
				d.errorf(d.pathOf(inv, h)+".address", "%s lies inside the %s %s", h.Address, s.name, s.prefix)
			}
		}
	}
}

// JumpHost is a parsed [user@]host[:port].
type JumpHost struct {
	User, Address string
	Port          int
}

// ParseJumpHost reads ssh -J syntax.
func ParseJumpHost(s string) (JumpHost, error) {
	j := JumpHost{Port: DefaultSSHPort}
	rest := s
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		j.User, rest = rest[:i], rest[i+1:]
		if !unixUser.MatchString(j.User) {
			return j, fmt.Errorf("jump host %q: %q is not a valid user name", s, j.User)
		}
	}
	if h, p, err := net.SplitHostPort(rest); err == nil {
		port, perr := strconv.Atoi(p)
		if perr != nil || port < 1 || port > 65535 {
			return j, fmt.Errorf("jump host %q: bad port %q", s, p)
		}
		rest, j.Port = h, port
	}
	if err := checkAddress(rest); err != nil {
		return j, fmt.Errorf("jump host %q: %v", s, err)
	}
	j.Address = rest
	return j, nil
}

// expandHome turns ~ and ~/x into the user's home folder.
func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		home, _ := os.UserHomeDir()
		return filepath.Join(home, strings.TrimPrefix(p, "~"))
	}
	return p
}

// resolvePaths makes identity, known_hosts and ssh config paths absolute.
func resolvePaths(inv *Inventory) error {
	base := filepath.Dir(inv.Path)
	fix := func(p *string) {
		switch {
		case *p == "":
		case *p == "~" || strings.HasPrefix(*p, "~/"):
			*p = expandHome(*p)
		case !filepath.IsAbs(*p):
			*p = filepath.Join(base, *p)
		}
	}
	fixManifest := func(p *string) {
		if !strings.HasPrefix(*p, "http://") && !strings.HasPrefix(*p, "https://") {
			fix(p)
		}
	}
	fixHelm := func(h *Helm) {
		if h.Repo == "" && !strings.HasPrefix(h.Chart, "oci://") {
			fix(&h.Chart)
		}
		fix(&h.Values)
	}
	if n := inv.Cluster.Network; n != nil {
		fixManifest(&n.Manifest)
		if n.Helm != nil {
			fixHelm(n.Helm)
		}
		if c := n.Cilium; c != nil {
			if c.Chart != "" && c.Repo == "" && !strings.HasPrefix(c.Chart, "oci://") {
				fix(&c.Chart)
			}
			fix(&c.Values)
		}
	}
	for i := range inv.Cluster.Addons {
		a := &inv.Cluster.Addons[i]
		fixManifest(&a.Manifest)
		if a.Helm != nil {
			fixHelm(a.Helm)
		}
	}
	fix(&inv.Cluster.Binaries)
	if p := inv.Cluster.Packages; p != nil {
		fix(&p.Key)
	}
	fix(&inv.SSH.IdentityFile)
	if inv.SSH.Config != "none" {
		fix(&inv.SSH.Config)
	}
	fix(&inv.SSH.KnownHosts)
	for _, h := range inv.Hosts() {
		if h.SSH != nil {
			fix(&h.SSH.IdentityFile)
			fix(&h.SSH.KnownHosts)
		}
	}
	return nil
}
