package playbooks

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/fleetops/fleet/internal/etcd"
	"github.com/fleetops/fleet/inventory"
)

// clusterAccess is what the playbooks that work on a running cluster (join,
// remove, rotate-tokens, status) start from: a master that holds the control
// plane, and an API client through the load balancer with its admin.conf.
type clusterAccess struct {
	s          *Session
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
		ok, _, err := initialised(ctx, s, m.Name)
		if err != nil {
			tried = append(tried, fmt.Sprintf("%s: %v", m.Name, err))
			continue
		}
		if !ok {
			tried = append(tried, m.Name+": not initialised")
			continue
		}
		raw, err := adminKubeconfigOf(ctx, s, m.Name)
		if err != nil {
			return nil, err
		}
		rest, err := clientcmd.RESTConfigFromKubeConfig(raw)
		if err != nil {
			return nil, err
		}
		rest.Timeout = 15 * time.Second
		client, err := kubernetes.NewForConfig(rest)
		if err != nil {
			return nil, err
		}
		return &clusterAccess{s: s, master: m.Name, kubeconfig: raw, client: client}, nil
	}
	return nil, fmt.Errorf("no initialised master to work from in %s (%s): run fleet apply first", s.Inv.Path, strings.Join(tried, "; "))
}

// adminKubeconfigOf reads admin.conf from a master, points it at the load
// balancer and registers its client key with the redactor.
func adminKubeconfigOf(ctx context.Context, s *Session, master string) ([]byte, error) {
	raw, err := s.readFile(ctx, master, adminConf)
	if err != nil {
		return nil, err
	}
	s.Redactor.Add(clientKeys(raw)...)
	cfg, err := clientcmd.Load(raw)
	if err != nil {
		return nil, fmt.Errorf("%s:%s: %w", master, adminConf, err)
	}
	for _, c := range cfg.Clusters {
		c.Server = "https://" + s.Inv.Cluster.ControlPlaneEndpoint
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
func etcdOn(ctx context.Context, s *Session, master string) (*etcd.Client, error) {
	var creds etcd.Credentials
	for _, f := range []struct {
		path string
		into *[]byte
	}{{etcdCA, &creds.CA}, {etcdClientCert, &creds.Cert}, {etcdClientKey, &creds.Key}} {
		data, err := s.readFile(ctx, master, f.path)
		if err != nil {
			return nil, err
		}
		*f.into = data
	}
	s.Redactor.Add(string(creds.Key))
	conn, err := s.Conn(ctx, master)
	if err != nil {
		return nil, err
	}
	return etcd.New("127.0.0.1:2379", creds, conn.DialContext)
}

// memberOf finds a node's etcd member, by name or, for a learner that
// never started, by the peer URL kubeadm gave it.
func memberOf(s *Session, members []etcd.Member, node string) (etcd.Member, bool) {
	return etcd.FindMember(members, node, etcd.PeerURL(s.Inv.Host(node).Address))
}

// removeEtcdMember removes a node's etcd member through the etcd on
// another master, and says whether there was one.
func removeEtcdMember(ctx context.Context, s *Session, via, node string) (bool, error) {
	c, err := etcdOn(ctx, s, via)
	if err != nil {
		return false, err
	}
	defer c.Close()
	members, err := c.Members(ctx)
	if err != nil {
		return false, err
	}
	m, found := memberOf(s, members, node)
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
