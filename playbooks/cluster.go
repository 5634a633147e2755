package playbooks

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/kubernetes"
	restclient "k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fleetops/fleet/internal/etcd"
	"github.com/fleetops/fleet/internal/lb"
	"github.com/fleetops/fleet/inventory"
)

// clusterAccess is what works on a running cluster starts from: a master
// that holds the control plane, and an API client through the load
// balancer with its admin.conf. Apply's init step produces it; join,
// remove, rotate-tokens and status find it with connectCluster.
type clusterAccess struct {
	master     string // an initialised master, in inventory order
	kubeconfig []byte // admin.conf, server = the load balancer
	client     kubernetes.Interface
}

// connectCluster finds the first initialised master that is not in skip
// (masters being removed) and builds an API client from its admin.conf.
func connectCluster(ctx context.Context, s *Session, skip ...string) (*clusterAccess, error) {
	var tried []string
	for _, m := range s.Inv.Masters {
		if slices.Contains(skip, m.Name) {
			continue
		}
		access, err := accessVia(ctx, s.probe(), s.Inv, m.Name)
		switch {
		case err != nil:
			tried = append(tried, fmt.Sprintf("%s: %v", m.Name, err))
		case access == nil:
			tried = append(tried, m.Name+": not initialised")
		default:
			return access, nil
		}
	}
	return nil, fmt.Errorf("no initialised master to work from in %s (%s): run fleet apply first", s.Inv.Path, strings.Join(tried, "; "))
}

// accessVia reads, in one round trip, whether kubeadm init (or a
// control-plane join) completed on master, and its admin.conf; nil when it
// has not.
func accessVia(ctx context.Context, p probe, inv *inventory.Inventory, master string) (*clusterAccess, error) {
	files, err := p.readFiles(ctx, master, adminConf, apiserverYAML)
	if err != nil {
		return nil, err
	}
	raw, ok := files[adminConf]
	if _, manifest := files[apiserverYAML]; !ok || !manifest {
		return nil, nil
	}
	kubeconfig, err := pointAtLoadBalancer(p, inv, master, raw)
	if err != nil {
		return nil, err
	}
	rest, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	rest.Timeout = 15 * time.Second
	// client-go's own limit (5 requests/s, bursts of 10) made a
	// no-change apply of 25 workers wait ~4 s between its per-node
	// checks; kubectl's figures instead. The API server's priority and
	// fairness still protect it.
	rest.QPS, rest.Burst = apiQPS, apiBurst
	if err := idleBelow(rest, lbProxyTimeout(inv)/2); err != nil {
		return nil, err
	}
	client, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return nil, err
	}
	return &clusterAccess{master: master, kubeconfig: kubeconfig, client: client}, nil
}

// fleet's client-side limit on API requests, as kubectl's.
const (
	apiQPS   = 50
	apiBurst = 300
)

// idleBelow gives the client a transport of its own that closes a
// connection idle for longer than idle. The load balancer drops one idle
// past its proxy_timeout; a client that reuses it finds it closed and, for
// a POST, does not send again: the call fails with EOF.
func idleBelow(cfg *restclient.Config, idle time.Duration) error {
	tlsConfig, err := restclient.TLSConfigFor(cfg)
	if err != nil {
		return err
	}
	cfg.Transport = utilnet.SetTransportDefaults(&http.Transport{
		Proxy: http.ProxyFromEnvironment, TLSClientConfig: tlsConfig, TLSHandshakeTimeout: 10 * time.Second,
		DialContext:     (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		IdleConnTimeout: idle,
	})
	cfg.TLSClientConfig = restclient.TLSClientConfig{} // in the transport now
	return nil
}

// lbProxyTimeout is how long the load balancer keeps an idle connection.
func lbProxyTimeout(inv *inventory.Inventory) time.Duration {
	if inv.LoadBalancer == nil { // node-local proxies only: the API server itself
		return nodeProxyIdle
	}
	if o := inv.LoadBalancer.Nginx; o != nil && o.ProxyTimeout > 0 {
		return time.Duration(o.ProxyTimeout)
	}
	return lb.DefaultProxyTimeout
}

// initialisedReason is what a check says of a master accessVia found.
const initialisedReason = "control plane present (admin.conf, kube-apiserver manifest)"

// pointAtLoadBalancer registers admin.conf's client key with the redactor
// and points it at the load balancer, so the operator's kubectl survives
// losing a master.
func pointAtLoadBalancer(p probe, inv *inventory.Inventory, master string, raw []byte) ([]byte, error) {
	p.redact(clientKeys(raw)...)
	cfg, err := clientcmd.Load(raw)
	if err != nil {
		return nil, fmt.Errorf("%s:%s: %w", master, adminConf, err)
	}
	for _, c := range cfg.Clusters {
		c.Server = "https://" + inv.Cluster.ControlPlaneEndpoint
	}
	return clientcmd.Write(*cfg)
}

// Files of kubeadm's etcd PKI that let fleet act as an etcd client.
const (
	etcdCA         = "/etc/kubernetes/pki/etcd/ca.crt"
	etcdClientCert = "/etc/kubernetes/pki/etcd/healthcheck-client.crt"
	etcdClientKey  = "/etc/kubernetes/pki/etcd/healthcheck-client.key"
)

// etcdOn returns a client of the etcd on a master, reached through an SSH
// tunnel to its loopback client port: etcd is never exposed to fleet's
// network, and no etcdctl is needed on the host.
func etcdOn(ctx context.Context, p probe, master string) (*etcd.Client, error) {
	var creds etcd.Credentials
	for _, f := range []struct {
		path string
		into *[]byte
	}{{etcdCA, &creds.CA}, {etcdClientCert, &creds.Cert}, {etcdClientKey, &creds.Key}} {
		data, err := p.readFile(ctx, master, f.path)
		if err != nil {
			return nil, err
		}
		*f.into = data
	}
	p.redact(string(creds.Key))
	dial, err := p.dialer(ctx, master)
	if err != nil {
		return nil, err
	}
	return etcd.New("127.0.0.1:2379", creds, dial)
}

// memberOf finds a node's etcd member, by name or, for a learner that
// never started, by the peer URL kubeadm gave it.
func memberOf(inv *inventory.Inventory, members []etcd.Member, node string) (etcd.Member, bool) {
	return etcd.FindMember(members, node, etcd.PeerURL(inv.Host(node).Address))
}

// removeEtcdMember removes a node's etcd member through the etcd on
// another master, and says whether there was one.
func removeEtcdMember(ctx context.Context, r remote, inv *inventory.Inventory, via, node string) (bool, error) {
	c, err := etcdOn(ctx, r.probe, via)
	if err != nil {
		return false, err
	}
	defer c.Close()
	members, err := c.Members(ctx)
	if err != nil {
		return false, err
	}
	m, found := memberOf(inv, members, node)
	if !found {
		return false, nil
	}
	return true, c.RemoveMember(ctx, m.ID)
}

// mastersOf names the inventory's masters.
func mastersOf(inv *inventory.Inventory) []string {
	names := make([]string, len(inv.Masters))
	for i, m := range inv.Masters {
		names[i] = m.Name
	}
	return names
}
