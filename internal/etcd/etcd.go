// Package etcd speaks to a kubeadm cluster's stacked etcd through its JSON
// gateway (the v3 API over HTTPS on the client port): list and remove
// members. It needs no etcdctl on the hosts; the caller provides the
// transport, typically a tunnel through the SSH connection to a master.
package etcd

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Member is one etcd cluster member.
type Member struct {
	ID        uint64
	Name      string // the node name kubeadm gave it; empty while a learner has not started
	PeerURLs  []string
	IsLearner bool
}

// Client talks to one etcd endpoint.
type Client struct {
	http     *http.Client
	endpoint string // https://127.0.0.1:2379
}

// Credentials are the PEM files kubeadm writes under /etc/kubernetes/pki/etcd:
// the etcd CA and a client certificate it signed (healthcheck-client).
type Credentials struct {
	CA, Cert, Key []byte
}

// Dialer opens the TCP connection to the endpoint (an SSH tunnel).
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// New returns a client of the etcd at endpoint (host:port), reached with dial.
func New(endpoint string, creds Credentials, dial Dialer) (*Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(creds.CA) {
		return nil, fmt.Errorf("etcd CA: no certificate in PEM")
	}
	cert, err := tls.X509KeyPair(creds.Cert, creds.Key)
	if err != nil {
		return nil, fmt.Errorf("etcd client certificate: %w", err)
	}
	transport := &http.Transport{
		DialContext:     dial,
		TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	}
	return &Client{http: &http.Client{Transport: transport, Timeout: 15 * time.Second}, endpoint: "https://" + endpoint}, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Members lists the cluster's members.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var resp struct {
		Members []struct {
			ID        flexUint `json:"ID"`
			Name      string   `json:"name"`
			PeerURLs  []string `json:"peerURLs"`
			IsLearner bool     `json:"isLearner"`
		} `json:"members"`
	}
	if err := c.call(ctx, "/v3/cluster/member/list", struct{}{}, &resp); err != nil {
		return nil, fmt.Errorf("etcd member list: %w", err)
	}
	out := make([]Member, len(resp.Members))
	for i, m := range resp.Members {
		out[i] = Member{ID: uint64(m.ID), Name: m.Name, PeerURLs: m.PeerURLs, IsLearner: m.IsLearner}
	}
	return out, nil
}

// RemoveMember removes a member by ID.
func (c *Client) RemoveMember(ctx context.Context, id uint64) error {
	req := map[string]string{"ID": strconv.FormatUint(id, 10)}
	if err := c.call(ctx, "/v3/cluster/member/remove", req, nil); err != nil {
		return fmt.Errorf("etcd member remove %x: %w", id, err)
	}
	return nil
}

func (c *Client) call(ctx context.Context, path string, body, into any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.endpoint+path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Message != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Message)
		}
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(raw)))
	}
	if into == nil {
		return nil
	}
	return json.Unmarshal(raw, into)
}

// flexUint reads a uint64 the gateway writes as a JSON string (protobuf's
// JSON mapping of 64-bit integers) or, from older gateways, as a number.
type flexUint uint64

func (f *flexUint) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("member ID %s: %w", b, err)
	}
	*f = flexUint(v)
	return nil
}

// Quorum is the number of members a cluster of n needs to agree.
func Quorum(n int) int { return n/2 + 1 }

// PeerURL is the peer URL kubeadm gives a stacked etcd member on a node
// with this advertise address.
func PeerURL(address string) string { return "https://" + net.JoinHostPort(address, "2380") }

// FindMember finds a node's member by name or, for a learner that has not
// started (it has no name yet), by its peer URL.
func FindMember(members []Member, name, peerURL string) (Member, bool) {
	for _, m := range members {
		if m.Name == name || slices.Contains(m.PeerURLs, peerURL) {
			return m, true
		}
	}
	return Member{}, false
}
