package playbooks

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fleetops/fleet/internal/nodeprep"
	"github.com/fleetops/fleet/inventory"
)

func TestMaxUnavailable(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		workers int
		want    int
		err     string
	}{
		{"", 100, 10, ""},
		{"", 5, 1, ""}, // 10 % of 5 rounds down to 0: at least one
		{"", 0, 1, ""},
		{"3", 100, 3, ""},
		{"25%", 100, 25, ""},
		{"25%", 10, 2, ""},
		{"100%", 7, 7, ""},
		{"0", 10, 0, "positive number"},
		{"-1", 10, 0, "positive number"},
		{"0%", 10, 0, "percentage from 1%"},
		{"150%", 10, 0, "percentage from 1%"},
		{"ten", 10, 0, "positive number"},
	} {
		got, err := MaxUnavailable(tc.spec, tc.workers)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("MaxUnavailable(%q, %d): %v, want an error with %q", tc.spec, tc.workers, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("MaxUnavailable(%q, %d) = %d, %v; want %d", tc.spec, tc.workers, got, err, tc.want)
		}
	}
}

func TestUpgradeProblems(t *testing.T) {
	node := func(name, kubelet string, ready bool) corev1.Node {
		status := corev1.ConditionTrue
		if !ready {
			status = corev1.ConditionFalse
		}
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{
			NodeInfo:   corev1.NodeSystemInfo{KubeletVersion: kubelet},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: status}}}}
	}
	for _, tc := range []struct {
		name  string
		nodes []corev1.Node
		want  string // "" for none
	}{
		{"all at the old version", []corev1.Node{node("m0", "v1.34.4", true), node("w0", "v1.34.4", true)}, ""},
		{"one done already (a resumed upgrade)", []corev1.Node{node("m0", "v1.35.4", true), node("w0", "v1.34.4", true)}, ""},
		{"a lagging kubelet within the rules", []corev1.Node{node("m0", "v1.34.4", true), node("w0", "v1.32.1", true)}, ""},
		{"not Ready", []corev1.Node{node("m0", "v1.34.4", true), node("w0", "v1.34.4", false)}, "w0 is not Ready"},
		{"missing", []corev1.Node{node("m0", "v1.34.4", true)}, "w0 is not in the cluster"},
		{"a kubelet past the target", []corev1.Node{node("m0", "v1.34.4", true), node("w0", "v1.36.0", true)}, "w0: its kubelet v1.36.0 is newer than the API server's v1.34.4"},
		{"a kubelet too old for the target", []corev1.Node{node("m0", "v1.34.4", true), node("w0", "v1.31.0", true)}, "w0: its kubelet v1.31.0 is more than 3 minors older than the API server's v1.35.4"},
	} {
		got := strings.Join(upgradeProblems([]string{"m0", "w0"}, tc.nodes, "v1.34.4", "v1.35.4"), "; ")
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestManifestsVersion(t *testing.T) {
	manifest := func(image string) []byte {
		return []byte("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - command:\n    - kube-apiserver\n    image: " + image + "\n    name: c\n")
	}
	files := func(a, c, s string) map[string][]byte {
		return map[string][]byte{controlPlaneManifests[0]: manifest(a), controlPlaneManifests[1]: manifest(c), controlPlaneManifests[2]: manifest(s)}
	}
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{"one version", files("registry.k8s.io/kube-apiserver:v1.34.4", "registry.k8s.io/kube-controller-manager:v1.34.4", "registry.k8s.io/kube-scheduler:v1.34.4"), "v1.34.4"},
		{"cut mid-way", files("registry.k8s.io/kube-apiserver:v1.35.4", "registry.k8s.io/kube-controller-manager:v1.34.4", "registry.k8s.io/kube-scheduler:v1.34.4"), "mixed"},
		{"a registry with a port", files("localhost:5000/kube-apiserver:v1.35.4", "localhost:5000/kube-controller-manager:v1.35.4", "localhost:5000/kube-scheduler:v1.35.4"), "v1.35.4"},
		{"no tag", files("localhost:5000/kube-apiserver", "localhost:5000/kube-controller-manager", "localhost:5000/kube-scheduler"), ""},
		{"no manifests", map[string][]byte{}, ""},
	} {
		if got := manifestsVersion(tc.files); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestNodeUpgradeTodo(t *testing.T) {
	for _, tc := range []struct {
		name   string
		st     nodeUpgrade
		master bool
		want   string
	}{
		{"a master to do", nodeUpgrade{kubelet: "v1.34.4", controlPlane: "v1.34.4"}, true, "control plane v1.34.4 → v1.35.4; drain, kubelet v1.34.4 → v1.35.4; uncordon"},
		{"a master whose kubeadm ran", nodeUpgrade{kubelet: "v1.34.4", controlPlane: "v1.35.4", cordoned: true}, true, "drain, kubelet v1.34.4 → v1.35.4; uncordon"},
		{"cut before the uncordon", nodeUpgrade{kubelet: "v1.35.4", controlPlane: "v1.35.4", cordoned: true}, true, "uncordon"},
		{"a master done", nodeUpgrade{kubelet: "v1.35.4", controlPlane: "v1.35.4"}, true, ""},
		{"a worker to do", nodeUpgrade{kubelet: "v1.34.4"}, false, "drain, kubelet v1.34.4 → v1.35.4; uncordon"},
		{"a worker done", nodeUpgrade{kubelet: "v1.35.4"}, false, ""},
	} {
		if got := strings.Join(tc.st.todo(tc.master, "v1.35.4"), "; "); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestUpgradePlanVerdict(t *testing.T) {
	out := `Components that must be upgraded manually after you have upgraded the control plane with 'kubeadm upgrade apply':
COMPONENT   NODE      CURRENT   TARGET
kubelet     master0   v1.34.4   v1.35.4
kubelet     worker0   v1.34.4   v1.35.4

[upgrade/versions] Target version: v1.35.4

Upgrade to the latest version in the v1.34 series:

COMPONENT                 NODE      CURRENT    TARGET
kube-apiserver            master0   v1.34.4    v1.35.4
kube-controller-manager   master0   v1.34.4    v1.35.4
etcd                      master0   3.6.4-0    3.6.5-0

You can now apply the upgrade by executing the following command:

	kubeadm upgrade apply v1.35.4
`
	got := upgradePlanVerdict(out, "v1.35.4")
	want := "kubeadm offers kubeadm upgrade apply v1.35.4: kube-apiserver v1.34.4 → v1.35.4, kube-controller-manager v1.34.4 → v1.35.4, kubelet v1.34.4 → v1.35.4"
	if got != want {
		t.Errorf("verdict %q, want %q", got, want)
	}
	if got := upgradePlanVerdict("Awesome, you're up-to-date! Enjoy!\n", "v1.35.4"); !strings.Contains(got, "does not offer") {
		t.Errorf("verdict without an offer: %q", got)
	}
}

func TestVersionProblem(t *testing.T) {
	inv := &inventory.Inventory{Path: "inv.yaml", Cluster: inventory.Cluster{KubernetesVersion: "v1.35.4"}}
	manifest := func(tag string) []byte {
		return []byte("spec:\n  containers:\n  - image: registry.k8s.io/kube-apiserver:" + tag + "\n")
	}
	for _, tc := range []struct {
		name      string
		manifest  []byte
		upgrading bool
		want      string
	}{
		{"the same version", manifest("v1.35.4"), false, ""},
		{"no control plane yet", nil, false, ""},
		{"older: upgrade", manifest("v1.34.4"), false, "apply does not change versions; fleet upgrade -i inv.yaml does"},
		{"newer: no downgrade", manifest("v1.36.0"), false, "does not downgrade"},
		{"fleet upgrade's own preflight", manifest("v1.34.4"), true, ""},
	} {
		err := (&preflightPhase{inv: inv, upgrading: tc.upgrading}).versionProblem(tc.manifest)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestPackagesUpgradeTodo(t *testing.T) {
	inv := &inventory.Inventory{Cluster: inventory.Cluster{KubernetesVersion: "v1.35.4"}}
	apt, dnf := managerFor(inv, nodeprep.FamilyDebian), managerFor(inv, nodeprep.FamilyRHEL)
	key := []byte("KEY")
	st := func(m packageManager, source string, installed map[string]string, held ...string) packagesState {
		h := map[string]bool{}
		for _, n := range held {
			h[n] = true
		}
		return packagesState{installed: installed, held: h, files: map[string][]byte{m.keyFile: key, m.sourceFile: []byte(source), versionlockConf: {}}}
	}
	old := aptList("https://pkgs.k8s.io/core:/stable:/v1.34/deb/")
	for _, tc := range []struct {
		name  string
		m     packageManager
		st    packagesState
		names []string
		want  string
	}{
		{"kubeadm first", apt, st(apt, old, map[string]string{"kubeadm": "1.34.4-1.1", "kubelet": "1.34.4-1.1"}, "kubeadm", "kubelet"), []string{"kubeadm"},
			"write /etc/apt/sources.list.d/fleet-kubernetes.list; upgrade kubeadm 1.34.4-1.1 → 1.35.4; hold kubeadm"},
		{"then the kubelet, kubeadm done", apt, st(apt, apt.source, map[string]string{"kubeadm": "1.35.4-1.1", "kubelet": "1.34.4-1.1", "kubectl": "1.34.4-1.1"}, "kubeadm", "kubelet", "kubectl"),
			[]string{"kubelet", "kubectl"}, "upgrade kubelet 1.34.4-1.1 → 1.35.4; upgrade kubectl 1.34.4-1.1 → 1.35.4; hold kubelet; hold kubectl"},
		{"cut after the install, before the hold", apt, st(apt, apt.source, map[string]string{"kubelet": "1.35.4-1.1"}), []string{"kubelet"}, "hold kubelet"},
		{"done", apt, st(apt, apt.source, map[string]string{"kubelet": "1.35.4-1.1"}, "kubelet"), []string{"kubelet"}, ""},
		{"dnf: the new minor's repository, then kubeadm", dnf, st(dnf, dnfRepo("https://pkgs.k8s.io/core:/stable:/v1.34/rpm/"), map[string]string{"kubeadm": "1.34.4-150500.1.1"}, "kubeadm"),
			[]string{"kubeadm"}, "write /etc/yum.repos.d/fleet-kubernetes.repo; upgrade kubeadm 1.34.4-150500.1.1 → 1.35.4; hold kubeadm"},
		{"dnf: done", dnf, st(dnf, dnf.source, map[string]string{"kubeadm": "1.35.4-150500.1.1"}, "kubeadm"), []string{"kubeadm"}, ""},
	} {
		if got := strings.Join(packagesUpgradeTodo(tc.st, tc.m, key, "v1.35.4", tc.names), "; "); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
