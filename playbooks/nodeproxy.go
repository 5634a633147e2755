package playbooks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/lb"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// Where the node-local API proxy lives on a node: a second nginx, with
// files of its own, beside any nginx the host runs.
const (
	nodeProxyDir     = "/etc/fleet/apiserver-proxy"
	nodeProxyConf    = nodeProxyDir + "/nginx.conf"
	nodeProxyStaging = nodeProxyDir + "/.nginx.conf.new"
	nodeProxyPID     = "/run/fleet-apiserver-proxy.pid"
	nodeProxyLog     = "/var/log/fleet-apiserver-proxy.log"
	nodeProxyUnit    = "/etc/systemd/system/fleet-apiserver-proxy.service"
	// The kubelet's watches stay open for minutes: the proxy keeps an
	// idle connection as long as Kubespray's does.
	nodeProxyIdle = 10 * time.Minute
)

// localAPIServer is the address every kubelet (and kube-proxy) uses with
// a node-local proxy.
func localAPIServer(inv *inventory.Inventory) string {
	return "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(inv.NodeLocalPort()))
}

// nodeProxyHosts are the nodes among nodes that run a proxy: the workers,
// and the masters too when the proxy's port is not their API server's.
func nodeProxyHosts(inv *inventory.Inventory, nodes []string) []string {
	var out []string
	for _, n := range nodes {
		if h := inv.Host(n); h.Role == inventory.RoleWorker || inv.NodeLocalPort() != inventory.DefaultAPIPort {
			out = append(out, n)
		}
	}
	return out
}

// nodeProxyConfig is the proxy's whole nginx.conf for inv's masters.
func nodeProxyConfig(inv *inventory.Inventory) ([]byte, error) {
	cfg := lb.Config{ListenAddress: "127.0.0.1", ListenPort: inv.NodeLocalPort(), ConnectTimeout: lb.DefaultConnectTimeout, ProxyTimeout: nodeProxyIdle}
	for _, m := range inv.Masters {
		cfg.Backends = append(cfg.Backends, lb.Backend{Name: m.Name, Address: m.Address, Port: inventory.DefaultAPIPort})
	}
	stream, err := lb.Render(cfg)
	if err != nil {
		return nil, err
	}
	return lb.NodeProxyMain(stream, nodeProxyPID, nodeProxyLog)
}

// nodeProxyAlive tests, in sh, that the proxy's nginx runs.
const nodeProxyAlive = `[ -s ` + nodeProxyPID + ` ] && kill -0 "$(cat ` + nodeProxyPID + `)" 2>/dev/null`

// nodeProxyUnitFile runs the proxy under systemd, before the kubelet
// (which needs it to reach the API).
const nodeProxyUnitFile = `# Managed by fleet: the node-local proxy to the Kubernetes API servers.
[Unit]
Description=fleet: node-local proxy to the Kubernetes API servers
After=network-online.target
Before=kubelet.service

[Service]
Type=forking
PIDFile=` + nodeProxyPID + `
ExecStartPre=/usr/sbin/nginx -t -q -c ` + nodeProxyConf + `
ExecStart=/usr/sbin/nginx -c ` + nodeProxyConf + `
ExecReload=/usr/sbin/nginx -c ` + nodeProxyConf + ` -s reload
Restart=always

[Install]
WantedBy=multi-user.target
`

// addNodeLocal adds, with a node-local proxy, the steps that give nodes
// their proxy (inv: the masters they proxy to) and, for those in point,
// point their kubelet (and kube-proxy) at it. It returns the steps added.
func addNodeLocal(s *Session, g *steps.Graph, inv *inventory.Inventory, nodes, point []string, after []string, access *steps.Output[*clusterAccess]) []string {
	if !inv.Cluster.NodeLocalProxy {
		return nil
	}
	var added []string
	proxies := nodeProxyHosts(inv, nodes)
	if len(proxies) > 0 {
		if inv.Installs() {
			g.MustAdd(s.step(steps.Step{Name: "prepare-node-proxy", Description: "install nginx and its stream module from the distribution's packages (apt or dnf) for the node-local proxy",
				Hosts: proxies, After: after}, &lbPackagesPhase{inv: inv, proxy: true}))
			after = []string{"prepare-node-proxy"}
		}
		g.MustAdd(s.step(steps.Step{Name: "node-proxy", Description: "an NGINX stream proxy on " + localAPIServer(inv) + " to every master's API server (nginx -t, start or reload)",
			Hosts: proxies, After: after}, &nodeProxyPhase{inv: inv}))
		added = append(added, "node-proxy")
	}
	if len(point) == 0 {
		return added
	}
	masters := namesWithRole(inv, inventory.RoleMaster)
	g.MustAdd(s.step(steps.Step{Name: "apiserver-sans", Description: "every API server's certificate names 127.0.0.1",
		Hosts: masters, After: after, ReadOnly: true}, &apiserverSANsPhase{}))
	pointAfter := append(slices.Clone(added), "apiserver-sans")
	// Masters one at a time, each healthy before the next: the API
	// stays up behind the load balancer while a kubelet restarts.
	if m := slices.DeleteFunc(slices.Clone(point), func(n string) bool { return inv.Host(n).Role != inventory.RoleMaster }); len(m) > 0 {
		g.MustAdd(s.step(steps.Step{Name: "master-kubeconfig", Description: "the kubelet's kubeconfig points at " + localAPIServer(inv) + "; the kubelet restarted, its control plane healthy; one master at a time",
			Hosts: m, Serial: true, After: pointAfter}, &nodeKubeconfigPhase{inv: inv}))
		pointAfter = append(pointAfter, "master-kubeconfig")
		added = append(added, "master-kubeconfig")
	}
	last := added[len(added)-1]
	if w := slices.DeleteFunc(slices.Clone(point), func(n string) bool { return inv.Host(n).Role == inventory.RoleMaster }); len(w) > 0 {
		g.MustAdd(s.step(steps.Step{Name: "node-kubeconfig", Description: "the kubelet's kubeconfig points at " + localAPIServer(inv) + "; the kubelet restarted",
			Hosts: w, After: pointAfter}, &nodeKubeconfigPhase{inv: inv}))
		added, last = append(added, "node-kubeconfig"), "node-kubeconfig"
	}
	g.MustAdd(s.step(steps.Step{Name: "kube-proxy-config", Description: "kube-proxy's kubeconfig (ConfigMap kube-system/kube-proxy) points at " + localAPIServer(inv),
		After: []string{last}, Consumes: []steps.Slot{access}}, &kubeProxyConfigPhase{inv: inv, access: access}))
	return append(added, "kube-proxy-config")
}

// nodeProxyPhase writes the proxy's config (checked with nginx -t before
// it goes live) and starts or reloads it.
type nodeProxyPhase struct {
	inv     *inventory.Inventory
	systemd seen[bool] // what the check learnt: the run needs not ask again
}

const nodeProxyStateScript = `[ -d /run/systemd/system ] && echo systemd
if ` + nodeProxyAlive + `; then echo proxy:running; fi`

func (p *nodeProxyPhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	want, err := nodeProxyConfig(p.inv)
	if err != nil {
		return false, "", err
	}
	out, files, err := pr.queryWithFiles(ctx, host, nodeProxyStateScript, nodeProxyConf, nodeProxyUnit)
	if err != nil {
		return false, "", err
	}
	p.systemd.keep(host, strings.Contains(out, "systemd"))
	switch {
	case string(files[nodeProxyConf]) != string(want):
		return false, "write the proxy's config (the masters' upstream), then start or reload it", nil
	case strings.Contains(out, "systemd") && string(files[nodeProxyUnit]) != nodeProxyUnitFile:
		return false, "write the proxy's systemd unit", nil
	case !strings.Contains(out, "proxy:running"):
		return false, "start the proxy", nil
	}
	return true, "the proxy serves the current upstream", nil
}

// nodeProxyScript: $1 staged config, $2 live config. nginx -t checks the
// staged one before it goes live; then a running proxy reloads, or it
// starts (through systemd where that runs, with its unit).
const nodeProxyScript = `set -e
nginx -t -q -c "$1" || { nginx -t -c "$1" 2>&1 | tail -n 3 >&2; exit 3; }
mv -f "$1" "$2"
if ` + nodeProxyAlive + `; then nginx -c "$2" -s reload
elif [ -d /run/systemd/system ]; then systemctl daemon-reload && systemctl enable --now fleet-apiserver-proxy
else nginx -c "$2"; fi`

func (p *nodeProxyPhase) run(ctx context.Context, r remote, host string) error {
	conf, err := nodeProxyConfig(p.inv)
	if err != nil {
		return err
	}
	files := []remoteFile{{nodeProxyStaging, conf, 0o644}}
	systemd, ok := p.systemd.take(host)
	if !ok {
		res, err := r.query(ctx, host, nodeProxyStateScript)
		if err != nil {
			return err
		}
		systemd = strings.Contains(res.Stdout, "systemd")
	}
	if systemd {
		files = append(files, remoteFile{nodeProxyUnit, []byte(nodeProxyUnitFile), 0o644})
	}
	if err := r.uploadAll(ctx, host, files); err != nil {
		return err
	}
	res, err := r.run(ctx, host, exec.Command("sh", "-c", nodeProxyScript, "fleet-proxy", nodeProxyStaging, nodeProxyConf))
	switch {
	case err != nil && res.ExitCode == 3:
		return fmt.Errorf("nginx -t rejected the proxy's config (the live one is untouched): %w", err)
	case err != nil:
		return fmt.Errorf("start or reload the proxy: %w", err)
	}
	dial, err := r.probe.dialer(ctx, host)
	if err != nil {
		return err
	}
	return waitLocalAPI(ctx, dial, p.inv, 15*time.Second)
}

// waitLocalAPI waits until an API server answers /livez through the
// host's 127.0.0.1 (its proxy, or on a master its own API server), dialled
// through the SSH connection. A liveness probe: nothing secret is sent.
func waitLocalAPI(ctx context.Context, dial func(context.Context, string, string) (net.Conn, error), inv *inventory.Inventory, limit time.Duration) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(inv.NodeLocalPort()))
	return waitHealthy(ctx, dial, staticPod{name: "API through 127.0.0.1", scheme: "https", addr: addr, path: "/livez"}, limit)
}

// apiserverSANsPhase checks that the master's API server certificate
// names 127.0.0.1, which a kubelet pointed at its node's proxy verifies.
// fleet puts it there at kubeadm init; a cluster made without it cannot
// take a node-local proxy yet.
type apiserverSANsPhase struct{}

const apiserverCert = "/etc/kubernetes/pki/apiserver.crt"

func (p *apiserverSANsPhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	data, err := pr.readFile(ctx, host, apiserverCert)
	if err != nil {
		return false, "", err
	}
	ok, err := namesLoopback(data)
	if err != nil {
		return false, "", fmt.Errorf("%s: %w", apiserverCert, err)
	}
	if ok {
		return true, "the API server's certificate names 127.0.0.1", nil
	}
	return false, "the API server's certificate lacks 127.0.0.1", nil
}

func (p *apiserverSANsPhase) run(ctx context.Context, r remote, host string) error {
	return fmt.Errorf("its API server's certificate (%s) lacks 127.0.0.1, which a kubelet pointed at its node-local proxy verifies: fleet adds it at kubeadm init; turning nodeLocalProxy on for a cluster made without it is not supported yet", apiserverCert)
}

// namesLoopback says whether a PEM certificate lists 127.0.0.1.
func namesLoopback(certPEM []byte) (bool, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil {
		return false, fmt.Errorf("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(cert.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) }), nil
}

// nodeKubeconfigPhase points the node's kubelet at 127.0.0.1 (kubeadm
// joined it through the load balancer) and restarts it.
type nodeKubeconfigPhase struct{ inv *inventory.Inventory }

func (p *nodeKubeconfigPhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	raw, err := pr.readFile(ctx, host, kubeletConf)
	if err != nil {
		return false, "", err
	}
	pr.redact(clientKeys(raw)...)
	servers, err := kubeconfigServers(raw)
	if err != nil {
		return false, "", fmt.Errorf("%s: %w", kubeletConf, err)
	}
	if len(servers) > 0 && !slices.ContainsFunc(servers, func(s string) bool { return s != localAPIServer(p.inv) }) {
		return true, "the kubelet uses " + localAPIServer(p.inv), nil
	}
	return false, "point the kubelet at " + localAPIServer(p.inv) + " (it uses " + strings.Join(servers, ", ") + ")", nil
}

// restartKubeletScript restarts the kubelet: through systemd, or where a
// supervisor of its own runs it, by ending this host's kubelet (its
// network namespace's: a host is not always a machine of its own).
const restartKubeletScript = `if [ -d /run/systemd/system ]; then systemctl restart kubelet; exit; fi
self=$(readlink /proc/self/ns/net)
for p in $(pgrep -x kubelet); do [ "$(readlink /proc/$p/ns/net)" = "$self" ] && kill "$p"; done; :`

// restartKubelet restarts the kubelet (onto its new binary) and waits for
// its health endpoint.
func restartKubelet(ctx context.Context, r remote, host string) error {
	if _, err := r.run(ctx, host, restartKubeletScript); err != nil {
		return fmt.Errorf("restart the kubelet: %w", err)
	}
	dial, err := r.probe.dialer(ctx, host)
	if err != nil {
		return err
	}
	if err := waitHealthy(ctx, dial, staticPod{name: "kubelet", scheme: "http", addr: "127.0.0.1:10248", path: "/healthz"}, 2*time.Minute); err != nil {
		return fmt.Errorf("the kubelet after its restart: %w", err)
	}
	return nil
}

func (p *nodeKubeconfigPhase) run(ctx context.Context, r remote, host string) error {
	raw, err := r.readFile(ctx, host, kubeletConf)
	if err != nil {
		return err
	}
	r.redact(clientKeys(raw)...)
	cfg, err := clientcmd.Load(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", kubeletConf, err)
	}
	for _, c := range cfg.Clusters {
		c.Server = localAPIServer(p.inv)
	}
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	if err := r.upload(ctx, host, kubeletConf, out, 0o600); err != nil {
		return err
	}
	if err := restartKubelet(ctx, r, host); err != nil {
		return err
	}
	if p.inv.Host(host).Role != inventory.RoleMaster {
		return nil
	}
	// On a master, its control plane too (a restarted kubelet may
	// restart it).
	dial, err := r.probe.dialer(ctx, host)
	if err != nil {
		return err
	}
	for _, pod := range controlPlanePods[:2] {
		if err := waitHealthy(ctx, dial, pod, 3*time.Minute); err != nil {
			return fmt.Errorf("%s after the kubelet's restart: %w", pod.name, err)
		}
	}
	return nil
}

// kubeconfigServers lists the server of every cluster in a kubeconfig.
func kubeconfigServers(raw []byte) ([]string, error) {
	cfg, err := clientcmd.Load(raw)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range cfg.Clusters {
		out = append(out, c.Server)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// kubeProxyConfigPhase points kube-proxy's kubeconfig (kubeadm's
// ConfigMap) at 127.0.0.1 and has its DaemonSet restart its pods onto it.
type kubeProxyConfigPhase struct {
	inv    *inventory.Inventory
	access *steps.Output[*clusterAccess]
}

const kubeProxyKubeconfig = "kubeconfig.conf"

func (p *kubeProxyConfigPhase) check(ctx context.Context, _ probe, _ string) (bool, string, error) {
	access, err := p.access.Get(ctx)
	if err != nil {
		return false, "", err
	}
	cm, err := access.client.CoreV1().ConfigMaps("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return true, "no kube-proxy (kubeadm's addon is off)", nil
		}
		return false, "", err
	}
	servers, err := kubeconfigServers([]byte(cm.Data[kubeProxyKubeconfig]))
	if err != nil {
		return false, "", fmt.Errorf("ConfigMap kube-system/kube-proxy: %w", err)
	}
	if len(servers) == 1 && servers[0] == localAPIServer(p.inv) {
		return true, "kube-proxy uses " + localAPIServer(p.inv), nil
	}
	return false, "point kube-proxy at " + localAPIServer(p.inv), nil
}

func (p *kubeProxyConfigPhase) run(ctx context.Context, _ remote, _ string) error {
	access, err := p.access.Get(ctx)
	if err != nil {
		return err
	}
	cms := access.client.CoreV1().ConfigMaps("kube-system")
	cm, err := cms.Get(ctx, "kube-proxy", metav1.GetOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	cfg, err := clientcmd.Load([]byte(cm.Data[kubeProxyKubeconfig]))
	if err != nil {
		return fmt.Errorf("ConfigMap kube-system/kube-proxy: %w", err)
	}
	for _, c := range cfg.Clusters {
		c.Server = localAPIServer(p.inv)
	}
	out, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	cm.Data[kubeProxyKubeconfig] = string(out)
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		return err
	}
	// As kubectl rollout restart does: a new template annotation.
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`, time.Now().UTC().Format(time.RFC3339))
	_, err = access.client.AppsV1().DaemonSets("kube-system").Patch(ctx, "kube-proxy", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// localProxyAnswers says whether a TLS server answers on the host's
// 127.0.0.1 at the node-local port (its proxy, or a master's own API
// server), dialled through the SSH connection; for fleet status.
func localProxyAnswers(ctx context.Context, p probe, inv *inventory.Inventory, host string) Answer {
	dial, err := p.dialer(ctx, host)
	if err != nil {
		return Unknown
	}
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: dial, TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // a liveness probe
	}}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, localAPIServer(inv)+"/livez", nil)
	resp, err := client.Do(req)
	if err != nil {
		return No
	}
	resp.Body.Close()
	return answer(resp.StatusCode == http.StatusOK)
}
