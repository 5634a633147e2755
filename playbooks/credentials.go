package playbooks

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetops/fleet/internal/kubeadm"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// joinState is which nodes had joined when the credentials step looked:
// the join steps' checks read it instead of asking every host again.
type joinState map[string]bool

// joinCredentials are what every join of a run needs. The token and the
// certificate key are sources, not values: a join replaces the token when
// it is gone or about to expire, and the key when its Secret is gone.
type joinCredentials struct {
	caPEM   []byte
	caHash  string
	token   *tokenSource
	certKey *certKeySource
}

// credentialsPhase finds the nodes still to join and makes what they
// need: a short-lived token (unless init just made one), the control-plane
// certificates uploaded under a fresh key when masters will join, and the
// CA hash computed from ca.crt. It runs once, on the cluster's master.
type credentialsPhase struct {
	inv      *inventory.Inventory
	master   string   // where upload-certs runs
	nodes    []string // the masters (but master) and workers the run joins
	tokenTTL time.Duration
	access   *steps.Output[*clusterAccess]
	made     *steps.Output[initCredentials] // nil where no init runs (fleet join)
	joined   *steps.Output[joinState]
	creds    *steps.Output[*joinCredentials]
}

// check: nothing left to join, so no token or key is needed.
func (p *credentialsPhase) check(ctx context.Context, pr probe, _ string) (bool, string, error) {
	state, err := p.joinState(ctx, pr)
	if err != nil {
		return false, "", err
	}
	if err := p.joined.Set(ctx, state); err != nil {
		return false, "", err
	}
	for _, done := range state {
		if !done {
			return false, "", nil
		}
	}
	return true, "every node has joined: no token needed", nil
}

func (p *credentialsPhase) run(ctx context.Context, r remote, _ string) error {
	state, err := p.joined.Get(ctx)
	if err != nil {
		return err
	}
	var made initCredentials
	var initRan bool
	if p.made != nil {
		if made, initRan, err = p.made.Lookup(ctx); err != nil {
			return err
		}
	}
	if !initRan {
		if made, err = newInitCredentials(r.probe); err != nil {
			return err
		}
		// Through the API, as kubeadm token create would: a token on a
		// remote command line shows in ps and in sudo's log.
		access, err := p.access.Get(ctx)
		if err != nil {
			return err
		}
		if err := createToken(ctx, access.client, made.token, p.tokenTTL); err != nil {
			return err
		}
		if p.mastersPending(state) {
			if err := uploadCerts(ctx, r, p.inv, p.master, made.certKey); err != nil {
				return fmt.Errorf("kubeadm init phase upload-certs: %w", err)
			}
		}
	}
	ca, err := r.readFile(ctx, p.master, caCert)
	if err != nil {
		return err
	}
	hash, err := kubeadm.CAHash(ca)
	if err != nil {
		return err
	}
	return p.creds.Set(ctx, &joinCredentials{caPEM: ca, caHash: hash,
		token:   &tokenSource{token: made.token, ttl: p.tokenTTL},
		certKey: &certKeySource{key: made.certKey, inv: p.inv, master: p.master}})
}

func (p *credentialsPhase) mastersPending(state joinState) bool {
	for host, done := range state {
		if !done && p.inv.Host(host).Role == inventory.RoleMaster {
			return true
		}
	}
	return false
}

// joinState asks every node of the run, in parallel, whether it has
// joined (what preflight saw, where it looked: nothing joins between the
// two); a master counts only once its Node is marked control-plane.
func (p *credentialsPhase) joinState(ctx context.Context, pr probe) (joinState, error) {
	done, errs := onEach(p.nodes, 32, func(host string) (bool, error) {
		if ok, seen := pr.s.joinedAt.take(host); seen {
			return ok, nil
		}
		ok, _, err := joined(ctx, pr, host)
		return ok, err
	})
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	state := joinState{}
	for i, h := range p.nodes {
		state[h] = done[i]
	}
	return state, p.unmarkCutMasters(ctx, state)
}

// unmarkCutMasters turns a master's "joined" into "not joined" when its
// Node is not marked as a control plane: the kubelet has its credentials,
// but the join was cut short before its etcd and mark-control-plane
// phases had finished, and only a new join completes it.
func (p *credentialsPhase) unmarkCutMasters(ctx context.Context, state joinState) error {
	var marked map[string]bool
	for _, host := range p.nodes {
		if !state[host] || p.inv.Host(host).Role != inventory.RoleMaster {
			continue
		}
		if marked == nil {
			access, err := p.access.Get(ctx)
			if err != nil {
				return err
			}
			nodes, err := access.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: controlPlaneLabel})
			if err != nil {
				return fmt.Errorf("list the control-plane Nodes: %w", err)
			}
			marked = map[string]bool{}
			for _, n := range nodes.Items {
				marked[n.Name] = true
			}
		}
		state[host] = marked[host]
	}
	return nil
}

// joinedCheck is the state check of the join steps: what the credentials
// step found, or, where it did not look, the host itself.
type joinedCheck struct {
	inv    *inventory.Inventory
	joined *steps.Output[joinState]
}

func (c joinedCheck) check(ctx context.Context, p probe, host string) (bool, string, error) {
	state, ok, err := c.joined.Lookup(ctx)
	if err != nil {
		return false, "", err
	}
	done, known := state[host]
	switch {
	case !ok || !known:
		return joined(ctx, p, host)
	case !done:
		return false, "", nil
	case c.inv.Host(host).Role == inventory.RoleMaster:
		return true, "joined (kubelet.conf present, Node marked control-plane)", nil
	}
	return true, "joined (kubelet.conf present)", nil
}

// createToken makes a bootstrap token of this run through the API, as
// kubeadm token create would, without the token on any command line. Its
// Secret's name is the token's: a repeat that finds it made is done.
func createToken(ctx context.Context, client kubernetes.Interface, tok kubeadm.Token, ttl time.Duration) error {
	sec := kubeadm.BootstrapSecret(tok, ttl, time.Now(), kubeadm.TokenDescription)
	err := apiRetry(ctx, func(ctx context.Context) error {
		_, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, sec, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("create bootstrap token %s: %w", tok.ID, err)
	}
	return nil
}

// tokenMargin: a join does not start with a token that expires sooner (it
// discovers the cluster and the kubelet bootstraps with it).
const tokenMargin = time.Minute

// tokenSource is the run's bootstrap token, shared by the joins running
// in parallel.
type tokenSource struct {
	mu    sync.Mutex // guards token; held to replace it, not to look it up
	token kubeadm.Token
	ttl   time.Duration
}

// valid returns the run's token, or a new one when it is gone (the token
// cleaner deletes expired ones, an operator may delete it) or about to
// expire: a slow run or a short --token-ttl must not make the joins fail.
// The new one has the run's description, so cleanup-tokens deletes it too.
// The joins look the token up at once: a hundred workers starting
// together must not wait on each other's lookups; one of them replaces it.
func (t *tokenSource) valid(ctx context.Context, p probe, client kubernetes.Interface) (kubeadm.Token, error) {
	t.mu.Lock()
	seen := t.token
	t.mu.Unlock()
	sec, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, kubeadm.BootstrapSecretName(seen.ID), metav1.GetOptions{})
	switch {
	case err == nil:
		if info, ok := kubeadm.ReadTokenInfo(sec); ok && (info.Expires.IsZero() || time.Until(info.Expires) > tokenMargin) {
			return seen, nil
		}
	case !apierrors.IsNotFound(err):
		return kubeadm.Token{}, fmt.Errorf("look up bootstrap token %s: %w", seen.ID, err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != seen { // another join replaced it meanwhile
		return t.token, nil
	}
	tok, err := newToken(p)
	if err != nil {
		return kubeadm.Token{}, err
	}
	if err := createToken(ctx, client, tok, max(t.ttl, 2*tokenMargin)); err != nil {
		return kubeadm.Token{}, fmt.Errorf("replace the expired bootstrap token %s: %w", seen.ID, err)
	}
	t.token = tok
	return tok, nil
}

// certKeySource is the key the control-plane certificates are uploaded
// under, for the masters joining one after another.
type certKeySource struct {
	mu     sync.Mutex
	key    string
	inv    *inventory.Inventory
	master string // where upload-certs runs
}

// uploaded returns the key, first re-uploading the certificates under a
// new one when the kubeadm-certs Secret is gone: it is deleted with the
// short-lived token that owns it (kubeadm's certificate-key TTL), and a
// join with a key whose Secret is gone cannot succeed.
func (c *certKeySource) uploaded(ctx context.Context, r remote, client kubernetes.Interface) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, kubeadmCertsSecret, metav1.GetOptions{})
	switch {
	case err == nil:
		return c.key, nil
	case !apierrors.IsNotFound(err):
		return "", fmt.Errorf("look up the uploaded certificates: %w", err)
	}
	key, err := newCertificateKey(r.probe)
	if err != nil {
		return "", err
	}
	if err := uploadCerts(ctx, r, c.inv, c.master, key); err != nil {
		return "", fmt.Errorf("re-upload the certificates (the kubeadm-certs Secret was gone): %w", err)
	}
	c.key = key
	return key, nil
}
