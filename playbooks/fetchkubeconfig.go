package playbooks

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

// KubeconfigResult is what FetchKubeconfig found, and did with it.
type KubeconfigResult struct {
	From     string    // the master whose admin.conf it is
	Document []byte    // the kubeconfig: it holds the admin's client key
	Written  bool      // the file was missing or different and is written now
	Expires  time.Time // the client certificate's end; zero if it has none
	// APIVersion is the API server's version as it answered through the
	// load balancer with these credentials; APIErr says why it did not.
	APIVersion string
	APIErr     error
}

// FetchKubeconfig gets the admin kubeconfig from the first initialised
// master that answers (so losing master0 does not lock the operator out),
// points it at the load balancer and asks the API through it. With a path,
// the kubeconfig is written there (0600, atomically) unless the file holds
// it already. It changes nothing on any host and takes no lock.
func FetchKubeconfig(ctx context.Context, s *Session, path string) (*KubeconfigResult, error) {
	access, err := connectCluster(ctx, s)
	if err != nil {
		return nil, err
	}
	r := &KubeconfigResult{From: access.master, Document: access.kubeconfig}
	if r.Expires, err = clientCertExpiry(r.Document); err != nil {
		return nil, fmt.Errorf("%s:%s: %w", access.master, adminConf, err)
	}
	if v, err := access.client.Discovery().ServerVersion(); err != nil {
		r.APIErr = err
	} else {
		r.APIVersion = v.GitVersion
	}
	if path == "" {
		return r, nil
	}
	if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, r.Document) {
		// Still 0600 even if someone widened it.
		return r, os.Chmod(path, 0o600)
	}
	if err := writeFileAtomic(path, r.Document, 0o600); err != nil {
		return nil, err
	}
	r.Written = true
	return r, nil
}

// clientCertExpiry returns when the earliest client certificate in a
// kubeconfig ends: the day the kubeconfig stops working.
func clientCertExpiry(kubeconfig []byte) (time.Time, error) {
	cfg, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return time.Time{}, err
	}
	var earliest time.Time
	for name, u := range cfg.AuthInfos {
		if len(u.ClientCertificateData) == 0 {
			continue
		}
		block, _ := pem.Decode(u.ClientCertificateData)
		if block == nil {
			return time.Time{}, fmt.Errorf("user %s: client-certificate-data is not PEM", name)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return time.Time{}, fmt.Errorf("user %s: %w", name, err)
		}
		if earliest.IsZero() || cert.NotAfter.Before(earliest) {
			earliest = cert.NotAfter
		}
	}
	return earliest, nil
}
