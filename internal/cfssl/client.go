package cfssl

import (
	"bytes"
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// Client speaks the CFSSL API (doc/api in the cfssl repository): info for
// the CA, authsign for certificates. It holds the auth key in memory only;
// no error it returns contains it.
type Client struct {
	BaseURL string // http://host:8888
	HTTP    *http.Client
	authKey []byte // decoded HMAC key
}

// NewClient takes the auth key as stored: hex, as the "standard" provider
// reads it (surrounding whitespace tolerated here, not by cfssl). An empty
// key makes a client that can only ask (info), not sign.
func NewClient(baseURL string, hc *http.Client, hexKey string) (*Client, error) {
	key, err := hex.DecodeString(strings.TrimSpace(hexKey))
	if err != nil || (len(key) == 0 && strings.TrimSpace(hexKey) != "") {
		return nil, fmt.Errorf("cfssl: the auth key is not hex (%d characters)", len(hexKey))
	}
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Client{BaseURL: strings.TrimRight(baseURL, "/"), HTTP: hc, authKey: key}, nil
}

// response is the API's envelope.
type response struct {
	Success bool            `json:"success"`
	Result  json.RawMessage `json:"result"`
	Errors  []struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// maxResponse bounds what fleet reads from the CA: certificates are small.
const maxResponse = 1 << 20

func (c *Client) post(ctx context.Context, endpoint string, body any, result any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+"/api/v1/cfssl/"+endpoint, bytes.NewReader(raw))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("cfssl %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("cfssl %s: %w", endpoint, err)
	}
	var env response
	if err := json.Unmarshal(data, &env); err != nil {
		return fmt.Errorf("cfssl %s: HTTP %d, not an API answer: %.200q", endpoint, resp.StatusCode, data)
	}
	if !env.Success {
		var msgs []string
		for _, e := range env.Errors {
			msgs = append(msgs, fmt.Sprintf("%d %s", e.Code, e.Message))
		}
		return fmt.Errorf("cfssl %s: HTTP %d: %s", endpoint, resp.StatusCode, strings.Join(msgs, "; "))
	}
	return json.Unmarshal(env.Result, result)
}

// Info returns the CA certificate (PEM) the server signs with.
func (c *Client) Info(ctx context.Context, profile string) ([]byte, error) {
	var res struct {
		Certificate string `json:"certificate"`
	}
	if err := c.post(ctx, "info", map[string]string{"label": "", "profile": profile}, &res); err != nil {
		return nil, err
	}
	if _, err := parseCert([]byte(res.Certificate)); err != nil {
		return nil, fmt.Errorf("cfssl info: %w", err)
	}
	return []byte(res.Certificate), nil
}

// signRequest is the body of a sign request, wrapped by authsign.
type signRequest struct {
	Hosts   []string `json:"hosts"`
	Request string   `json:"certificate_request"`
	Profile string   `json:"profile"`
}

// authenticatedRequest is cfssl's auth.AuthenticatedRequest: the request
// bytes and the HMAC-SHA256 over them (both base64 in JSON).
type authenticatedRequest struct {
	Token   []byte `json:"token"`
	Request []byte `json:"request"`
}

// AuthSign has the CA sign csrPEM with profile; hosts become the SANs.
func (c *Client) AuthSign(ctx context.Context, csrPEM []byte, profile string, hosts []string) ([]byte, error) {
	if len(c.authKey) == 0 {
		return nil, fmt.Errorf("cfssl: no auth key: this client can only ask for info")
	}
	inner, err := json.Marshal(signRequest{Hosts: hosts, Request: string(csrPEM), Profile: profile})
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, c.authKey)
	mac.Write(inner)
	var res struct {
		Certificate string `json:"certificate"`
	}
	if err := c.post(ctx, "authsign", authenticatedRequest{Token: mac.Sum(nil), Request: inner}, &res); err != nil {
		return nil, err
	}
	if _, err := parseCert([]byte(res.Certificate)); err != nil {
		return nil, fmt.Errorf("cfssl authsign: %w", err)
	}
	return []byte(res.Certificate), nil
}

// NodeCSR is the certificate request of a kubelet that authenticates as
// node name: CN system:node:<name>, O system:nodes (what the Node
// authorizer expects), SANs = the name and its addresses.
func NodeCSR(name string, addresses []string, key crypto.Signer) (csrPEM []byte, hosts []string, err error) {
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "system:node:" + name, Organization: []string{"system:nodes"}}}
	hosts = append(hosts, name)
	tmpl.DNSNames = []string{name}
	for _, a := range addresses {
		ip := net.ParseIP(a)
		if ip == nil {
			return nil, nil, fmt.Errorf("cfssl: node %s: %q is not an IP address", name, a)
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		hosts = append(hosts, a)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), hosts, nil
}

func parseCert(p []byte) (*x509.Certificate, error) {
	b, _ := pem.Decode(p)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("no PEM certificate in the answer")
	}
	return x509.ParseCertificate(b.Bytes)
}
