// Package versionskew holds Kubernetes' version-skew rules as an upgrade
// must keep them: the control plane moves one minor at a time or by
// patches, never down, and a kubelet is never newer than its API server
// nor more than three minors older
// (https://kubernetes.io/releases/version-skew-policy/).
package versionskew

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/version"
)

// MaxKubeletLag is how many minors a kubelet may trail the API server.
const MaxKubeletLag = 3

// Change is what moving from one version to another is.
type Change int

const (
	Same  Change = iota // nothing to do
	Patch               // same minor, a later patch
	Minor               // the next minor
)

func (c Change) String() string {
	return [...]string{"no change", "a patch upgrade", "a minor upgrade"}[c]
}

// Upgrade says what moving the control plane from to to is, or why it
// may not: a downgrade, a skipped minor, another major.
func Upgrade(from, to string) (Change, error) {
	f, t, err := parse(from, to)
	if err != nil {
		return 0, err
	}
	switch {
	case t.EqualTo(f):
		return Same, nil
	case t.LessThan(f):
		return 0, fmt.Errorf("%s is older than the cluster's %s: fleet does not downgrade (kubeadm cannot; restore a backup taken before the upgrade instead)", to, from)
	case t.Major() != f.Major():
		return 0, fmt.Errorf("%s is another major version than the cluster's %s", to, from)
	case t.Minor() == f.Minor():
		return Patch, nil
	case t.Minor() == f.Minor()+1:
		return Minor, nil
	}
	return 0, fmt.Errorf("%s is %d minors past the cluster's %s: upgrade one minor at a time (first to v%d.%d)",
		to, t.Minor()-f.Minor(), from, f.Major(), f.Minor()+1)
}

// Kubelet says why a kubelet at kubelet may not work with an API server at
// apiserver, or nil.
func Kubelet(kubelet, apiserver string) error {
	k, a, err := parse(kubelet, apiserver)
	if err != nil {
		return err
	}
	if k.Major() != a.Major() || k.Minor() > a.Minor() || (k.Minor() == a.Minor() && k.Patch() > a.Patch()) {
		return fmt.Errorf("its kubelet %s is newer than the API server's %s", kubelet, apiserver)
	}
	if a.Minor()-k.Minor() > MaxKubeletLag {
		return fmt.Errorf("its kubelet %s is more than %d minors older than the API server's %s", kubelet, MaxKubeletLag, apiserver)
	}
	return nil
}

func parse(a, b string) (*version.Version, *version.Version, error) {
	va, err := version.ParseSemantic(a)
	if err != nil {
		return nil, nil, fmt.Errorf("version %q: %w", a, err)
	}
	vb, err := version.ParseSemantic(b)
	if err != nil {
		return nil, nil, fmt.Errorf("version %q: %w", b, err)
	}
	return va, vb, nil
}
