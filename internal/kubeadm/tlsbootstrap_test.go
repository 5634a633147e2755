package kubeadm

import (
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

func TestBootstrapBindings(t *testing.T) {
	want := map[string][2]string{ // name: role, group
		"fleet:kubelet-bootstrap":                     {"system:node-bootstrapper", "system:bootstrappers"},
		"fleet:node-autoapprove-bootstrap":            {"system:certificates.k8s.io:certificatesigningrequests:nodeclient", "system:bootstrappers"},
		"fleet:node-autoapprove-certificate-rotation": {"system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", "system:nodes"},
	}
	got := BootstrapBindings()
	if len(got) != len(want) {
		t.Fatalf("%d bindings, want %d", len(got), len(want))
	}
	for _, b := range got {
		w, ok := want[b.Name]
		if !ok {
			t.Errorf("unexpected binding %s", b.Name)
			continue
		}
		if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != w[0] || b.RoleRef.APIGroup != "rbac.authorization.k8s.io" {
			t.Errorf("%s binds %+v, want ClusterRole %s", b.Name, b.RoleRef, w[0])
		}
		if len(b.Subjects) != 1 || b.Subjects[0].Kind != "Group" || b.Subjects[0].Name != w[1] {
			t.Errorf("%s subjects %+v, want group %s", b.Name, b.Subjects, w[1])
		}
	}
}

// testCA stands for the cluster CA: the kubeconfig carries it as bytes.
const testCA = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"

func TestBootstrapKubeconfig(t *testing.T) {
	tok := Token{ID: "abcdef", Secret: "0123456789abcdef"}
	raw, err := BootstrapKubeconfig("https://198.18.0.10:6443", []byte(testCA), tok)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.Load(raw)
	if err != nil {
		t.Fatal(err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil {
		t.Fatalf("no current context in\n%s", raw)
	}
	cluster, user := cfg.Clusters[ctx.Cluster], cfg.AuthInfos[ctx.AuthInfo]
	if cluster.Server != "https://198.18.0.10:6443" || string(cluster.CertificateAuthorityData) != testCA || cluster.InsecureSkipTLSVerify {
		t.Errorf("cluster %+v: want the load balancer, verified with the CA", cluster)
	}
	if user.Token != "abcdef.0123456789abcdef" {
		t.Errorf("user token %q", user.Token)
	}
	if _, err := BootstrapKubeconfig("https://x:6443", nil, tok); err == nil {
		t.Error("a kubeconfig without the CA (skipping verification) was written")
	}
}

func TestKubeletConfig(t *testing.T) {
	for _, allowSwap := range []bool{false, true} {
		testKubeletConfig(t, allowSwap)
	}
}

func testKubeletConfig(t *testing.T, allowSwap bool) {
	raw, err := KubeletConfig("/etc/kubernetes/pki/ca.crt", "10.96.0.10", "cluster.local", Cluster{AllowSwap: allowSwap, AllowCgroupV1: allowSwap})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Kind           string `json:"kind"`
		Authentication struct {
			Anonymous struct{ Enabled bool } `json:"anonymous"`
			X509      struct {
				ClientCAFile string `json:"clientCAFile"`
			} `json:"x509"`
		} `json:"authentication"`
		Authorization struct{ Mode string } `json:"authorization"`
		Rotate        bool                  `json:"rotateCertificates"`
		FailSwapOn    *bool                 `json:"failSwapOn"`
		FailCgroupV1  *bool                 `json:"failCgroupV1"`
		MemorySwap    struct {
			SwapBehavior string `json:"swapBehavior"`
		} `json:"memorySwap"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Kind != "KubeletConfiguration" || doc.Authentication.X509.ClientCAFile != "/etc/kubernetes/pki/ca.crt" ||
		doc.Authentication.Anonymous.Enabled || doc.Authorization.Mode != "Webhook" || !doc.Rotate {
		t.Errorf("kubelet config:\n%s", raw)
	}
	// Swap: the kubelet's defaults (fail on swap) unless allowed.
	if allowed := doc.FailSwapOn != nil && !*doc.FailSwapOn && doc.MemorySwap.SwapBehavior == "LimitedSwap"; allowed != allowSwap ||
		(!allowSwap && (doc.FailSwapOn != nil || doc.MemorySwap.SwapBehavior != "")) {
		t.Errorf("allowSwap %v: kubelet config:\n%s", allowSwap, raw)
	}
	if allowed := doc.FailCgroupV1 != nil && !*doc.FailCgroupV1; allowed != allowSwap {
		t.Errorf("allowCgroupV1 %v: kubelet config:\n%s", allowSwap, raw)
	}
}

func TestNodeKubeconfig(t *testing.T) {
	cert, key := "-----BEGIN CERTIFICATE-----\nMIIcert\n-----END CERTIFICATE-----\n", "-----BEGIN EC PRIVATE KEY-----\nMHckey\n-----END EC PRIVATE KEY-----\n"
	raw, err := NodeKubeconfig("https://198.18.0.10:6443", "worker3", []byte(testCA), []byte(cert), []byte(key))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.Load(raw)
	if err != nil {
		t.Fatal(err)
	}
	ctx := cfg.Contexts[cfg.CurrentContext]
	if ctx == nil || ctx.AuthInfo != "system:node:worker3" {
		t.Fatalf("current context %+v", ctx)
	}
	cluster, user := cfg.Clusters[ctx.Cluster], cfg.AuthInfos[ctx.AuthInfo]
	if cluster.Server != "https://198.18.0.10:6443" || string(cluster.CertificateAuthorityData) != testCA || cluster.InsecureSkipTLSVerify {
		t.Errorf("cluster %+v", cluster)
	}
	if string(user.ClientCertificateData) != cert || string(user.ClientKeyData) != key || user.Token != "" {
		t.Errorf("user %+v", user)
	}
	for _, missing := range [][3]string{{"", cert, key}, {testCA, "", key}, {testCA, cert, ""}} {
		if _, err := NodeKubeconfig("https://x:6443", "w", []byte(missing[0]), []byte(missing[1]), []byte(missing[2])); err == nil {
			t.Errorf("accepted a kubeconfig missing a part: %q", missing)
		}
	}
}
