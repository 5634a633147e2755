package kubeadm

import (
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

// TLS bootstrapping without kubeadm on the node (seed 003): the kubelet
// logs in with a bootstrap token, asks for its client certificate with a
// CSR, and the controller manager approves it because of these bindings.

// Groups the bindings grant: every bootstrap token's, and every node's.
const (
	BootstrappersGroup = "system:bootstrappers"
	NodesGroup         = "system:nodes"
)

// BootstrapBindings are the three ClusterRoleBindings TLS bootstrapping
// needs: bootstrappers may create CSRs, their node-client CSRs are
// approved, and nodes' renewals of their own certificates are approved.
// kubeadm init makes equivalents for its own token group; fleet makes
// these for any bootstrap token, under its own names so that they can be
// found and are made once.
func BootstrapBindings() []*rbacv1.ClusterRoleBinding {
	bind := func(name, role, group string) *rbacv1.ClusterRoleBinding {
		return &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/managed-by": "fleet"}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: group}},
		}
	}
	return []*rbacv1.ClusterRoleBinding{
		bind("fleet:kubelet-bootstrap", "system:node-bootstrapper", BootstrappersGroup),
		bind("fleet:node-autoapprove-bootstrap", "system:certificates.k8s.io:certificatesigningrequests:nodeclient", BootstrappersGroup),
		bind("fleet:node-autoapprove-certificate-rotation", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", NodesGroup),
	}
}

// BootstrapKubeconfig is bootstrap-kubelet.conf: the API server through
// the load balancer, verified with the cluster CA, and the token. It holds
// a secret: write it 0600.
func BootstrapKubeconfig(server string, caPEM []byte, tok Token) ([]byte, error) {
	if len(caPEM) == 0 {
		return nil, fmt.Errorf("bootstrap kubeconfig: no CA certificate: the kubelet must verify the API server")
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubernetes"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos["kubelet-bootstrap"] = &clientcmdapi.AuthInfo{Token: tok.String()}
	cfg.Contexts["kubelet-bootstrap@kubernetes"] = &clientcmdapi.Context{Cluster: "kubernetes", AuthInfo: "kubelet-bootstrap"}
	cfg.CurrentContext = "kubelet-bootstrap@kubernetes"
	return clientcmd.Write(*cfg)
}

// NodeKubeconfig is a kubelet's kubeconfig with its client certificate and
// key embedded (join mode cfssl: the CA host signed the certificate). It
// holds the key: write it 0600.
func NodeKubeconfig(server, node string, caPEM, certPEM, keyPEM []byte) ([]byte, error) {
	if len(caPEM) == 0 || len(certPEM) == 0 || len(keyPEM) == 0 {
		return nil, fmt.Errorf("node kubeconfig: the CA, the certificate and the key are all required")
	}
	user := "system:node:" + node
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kubernetes"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	cfg.Contexts[user+"@kubernetes"] = &clientcmdapi.Context{Cluster: "kubernetes", AuthInfo: user}
	cfg.CurrentContext = user + "@kubernetes"
	return clientcmd.Write(*cfg)
}

// KubeletConfigAPI is the kubelet config's API version.
const KubeletConfigAPI = "kubelet.config.k8s.io/v1beta1"

// SwapBehavior is how the kubelets use swap when the inventory allows it.
const SwapBehavior = "LimitedSwap"

// KubeletConfig is the kubelet's config.yaml for a node fleet starts
// itself: clients of its API authenticate with certificates of the cluster
// CA (clientCAFile) or tokens checked by the API server, anonymous access
// is off, and the kubelet renews its client certificate itself. c's
// kubelet policy (swap, cgroups v1) is the one kubeadm's nodes get.
func KubeletConfig(clientCAFile, clusterDNS, clusterDomain string, c Cluster) ([]byte, error) {
	doc := map[string]any{
		"apiVersion": KubeletConfigAPI,
		"kind":       "KubeletConfiguration",
		"authentication": map[string]any{
			"anonymous": map[string]any{"enabled": false},
			"webhook":   map[string]any{"enabled": true},
			"x509":      map[string]any{"clientCAFile": clientCAFile},
		},
		"authorization":      map[string]any{"mode": "Webhook"},
		"rotateCertificates": true,
		"staticPodPath":      "/etc/kubernetes/manifests", // as kubeadm sets it: a node may run static pods
		"cgroupDriver":       "systemd",
		"clusterDomain":      clusterDomain,
		"clusterDNS":         []string{clusterDNS},
	}
	for k, v := range c.KubeletPolicy() {
		doc[k] = v
	}
	return yaml.Marshal(doc)
}
