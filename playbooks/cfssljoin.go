package playbooks

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetops/fleet/internal/cfssl"
	"github.com/fleetops/fleet/internal/kubeadm"
	"github.com/fleetops/fleet/inventory"
)

// Join mode cfssl (seed 000): the worker's kubelet authenticates with a
// certificate the CA host signed. fleet acts from the operator's machine:
// it asks the CFSSL API for the CA (info), makes the node's key and CSR
// (CN system:node:<name>, O system:nodes, SANs = name and address), has it
// signed by authenticated remote signing (authsign, HMAC with the CA
// host's auth key, which never appears in output), writes the kubelet's
// kubeconfig with both embedded, and starts the kubelet.

// cfsslNodeRegisterTimeout bounds the wait for the kubelet's Node object.
const cfsslNodeRegisterTimeout = 3 * time.Minute

// cfsslClient returns a client of the CA host's API with its auth key,
// read from the CA host (0600 there) once per run, and kept out of every
// output. The ca-host step makes the key before any join asks for it.
func (s *Session) cfsslClient(ctx context.Context) (*cfssl.Client, error) {
	s.caMu.Lock()
	defer s.caMu.Unlock()
	if s.caClient != nil {
		return s.caClient, nil
	}
	p, err := s.caPlatformLocked(ctx)
	if err != nil {
		return nil, err
	}
	key, err := s.readFile(ctx, s.Inv.CA.Name, p.Path(cfssl.AuthFile))
	if err != nil {
		return nil, fmt.Errorf("read the CA host's auth key: %w", err)
	}
	hexKey := strings.TrimSpace(string(key))
	s.Redactor.Add(hexKey)
	hc, err := caHTTP(ctx, s.probe(), s.Inv, 30*time.Second)
	if err != nil {
		return nil, err
	}
	c, err := cfssl.NewClient(caURL(s.Inv), hc, hexKey)
	if err != nil {
		return nil, err
	}
	s.caClient = c
	return c, nil
}

// cfsslWorker joins one worker with a certificate from the CA host.
func cfsslWorker(ctx context.Context, r remote, inv *inventory.Inventory, access *clusterAccess, host string) error {
	files, err := cfsslKubeletFiles(ctx, r, inv, inv.Host(host))
	if err != nil {
		return err
	}
	if err := startKubeletWith(ctx, r, host, files); err != nil {
		return err
	}
	return waitNodeRegistered(ctx, access.client, host)
}

// waitNodeRegistered waits until the kubelet has made its Node object: it
// logged in with the CA host's certificate.
func waitNodeRegistered(ctx context.Context, client kubernetes.Interface, host string) error {
	err := pollUntil(ctx, 500*time.Millisecond, cfsslNodeRegisterTimeout, func(ctx context.Context) (bool, error) {
		_, err := client.CoreV1().Nodes().Get(ctx, host, metav1.GetOptions{})
		if err == nil || apierrors.IsNotFound(err) {
			return err == nil, nil
		}
		return false, fmt.Errorf("look up Node %s: %w", host, err)
	})
	if err == errPollTimeout {
		return fmt.Errorf("the kubelet did not register Node %s in %s with the CA host's certificate: see its log on the host", host, cfsslNodeRegisterTimeout)
	}
	return err
}

// cfsslKubeletFiles has the CA host sign a new key for worker w and returns
// the kubelet's files with the certificate and key embedded in its
// kubeconfig.
func cfsslKubeletFiles(ctx context.Context, r remote, inv *inventory.Inventory, w *inventory.Host) ([]remoteFile, error) {
	client, err := r.cfsslClient(ctx)
	if err != nil {
		return nil, err
	}
	// The API's answers are checked against the CA host's files, read
	// over SSH, before anything reaches the worker.
	plat, err := r.caPlatform(ctx)
	if err != nil {
		return nil, err
	}
	caPEM, err := r.readFile(ctx, inv.CA.Name, plat.Path(cfssl.CACert))
	if err != nil {
		return nil, err
	}
	answered, err := client.Info(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("CFSSL info: %w", err)
	}
	if err := cfssl.SameCA(answered, caPEM); err != nil {
		return nil, fmt.Errorf("%s's certificate: %w", w.Name, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	r.redactPEM(keyPEM)
	csr, hosts, err := cfssl.NodeCSR(w.Name, []string{w.Address}, key)
	if err != nil {
		return nil, err
	}
	certPEM, err := client.AuthSign(ctx, csr, cfssl.ProfileKubelet, hosts)
	if err != nil {
		return nil, fmt.Errorf("CFSSL authsign of system:node:%s: %w", w.Name, err)
	}
	if err := cfssl.VerifyNodeCert(certPEM, caPEM, w.Name, &key.PublicKey, time.Now()); err != nil {
		return nil, fmt.Errorf("CFSSL authsign of system:node:%s: %w", w.Name, err)
	}
	kubeconfig, err := kubeadm.NodeKubeconfig("https://"+inv.Cluster.ControlPlaneEndpoint, w.Name, caPEM, certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return kubeletFiles(inv, w, caPEM, kubeletConf, kubeconfig)
}
