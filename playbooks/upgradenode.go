package playbooks

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/kubectl/pkg/drain"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// upgradeCordoned marks a Node that fleet upgrade cordoned, with the
// version it was upgrading to: the run that finds the node done
// uncordons it, and only it (a node the operator cordoned stays so).
const upgradeCordoned = "fleet.fleetops.dev/upgrade-cordoned"

// The control plane's manifests, whose images say which version a master
// runs (kubeadm rewrites them in upgrade apply and upgrade node).
var controlPlaneManifests = []string{
	manifestsDir + "/kube-apiserver.yaml",
	manifestsDir + "/kube-controller-manager.yaml",
	manifestsDir + "/kube-scheduler.yaml",
}

// upgradeNodePhase upgrades one node, from wherever an earlier run left
// it: each part is skipped when the cluster shows it done.
type upgradeNodePhase struct {
	inv   *inventory.Inventory
	view  *steps.Output[*upgradeView]
	opts  UpgradeOptions
	tools *upgradeTools  // kubelet and kubectl
	seen  seen[nodeSeen] // what the check read: the run starts from it
}

// nodeSeen is a node's state as its check read it.
type nodeSeen struct {
	st   nodeUpgrade
	node *corev1.Node
}

// nodeUpgrade is where one node stands.
type nodeUpgrade struct {
	kubelet      string // the version its kubelet reports
	controlPlane string // a master's manifests' version; "" on workers, "mixed" mid-way
	cordoned     bool   // by fleet upgrade
}

// todo lists what is left for the node to be at target, "" when nothing.
func (n nodeUpgrade) todo(master bool, target string) []string {
	var left []string
	if master && n.controlPlane != target {
		left = append(left, "control plane "+orUnknown(n.controlPlane)+" → "+target)
	}
	if n.kubelet != target {
		left = append(left, "drain, kubelet "+orUnknown(n.kubelet)+" → "+target)
	}
	if n.cordoned || n.kubelet != target {
		left = append(left, "uncordon")
	}
	return left
}

func (p *upgradeNodePhase) state(ctx context.Context, pr probe, host string) (nodeUpgrade, *corev1.Node, error) {
	v, err := p.view.Get(ctx)
	if err != nil {
		return nodeUpgrade{}, nil, err
	}
	var node *corev1.Node
	err = apiRetry(ctx, func(ctx context.Context) (err error) {
		node, err = v.access.client.CoreV1().Nodes().Get(ctx, host, metav1.GetOptions{})
		return err
	})
	if err != nil {
		return nodeUpgrade{}, nil, fmt.Errorf("node %s: %w", host, err)
	}
	st := nodeUpgrade{kubelet: node.Status.NodeInfo.KubeletVersion, cordoned: node.Annotations[upgradeCordoned] != ""}
	if p.inv.Host(host).Role == inventory.RoleMaster {
		files, err := pr.readFiles(ctx, host, controlPlaneManifests...)
		if err != nil {
			return nodeUpgrade{}, nil, err
		}
		st.controlPlane = manifestsVersion(files)
	}
	return st, node, nil
}

// manifestsVersion is the one image tag of the control plane's manifests,
// "mixed" when they differ (an upgrade cut short), "" when one has none.
func manifestsVersion(files map[string][]byte) string {
	version := ""
	for _, path := range controlPlaneManifests {
		tag := imageTag(files[path])
		switch {
		case tag == "":
			return ""
		case version == "":
			version = tag
		case version != tag:
			return "mixed"
		}
	}
	return version
}

// imageTag is the tag of a static pod manifest's first image: the version
// of the control-plane component kubeadm wrote it for.
func imageTag(manifest []byte) string {
	for _, line := range strings.Split(string(manifest), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "- ")
		if image, ok := strings.CutPrefix(line, "image:"); ok {
			image = strings.Trim(strings.TrimSpace(image), `"'`)
			if i := strings.LastIndex(image, ":"); i > strings.LastIndex(image, "/") {
				return image[i+1:]
			}
			return ""
		}
	}
	return ""
}

func (p *upgradeNodePhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	st, node, err := p.state(ctx, pr, host)
	if err != nil {
		return false, "", err
	}
	p.seen.keep(host, nodeSeen{st, node})
	target := p.inv.Cluster.KubernetesVersion
	left := st.todo(p.inv.Host(host).Role == inventory.RoleMaster, target)
	if len(left) == 0 {
		return true, "at " + target, nil
	}
	return false, strings.Join(left, "; "), nil
}

func (p *upgradeNodePhase) run(ctx context.Context, r remote, host string) error {
	v, err := p.view.Get(ctx)
	if err != nil {
		return err
	}
	client := v.access.client
	target := p.inv.Cluster.KubernetesVersion
	master := p.inv.Host(host).Role == inventory.RoleMaster
	seen, ok := p.seen.take(host)
	if !ok {
		if seen.st, seen.node, err = p.state(ctx, r.probe, host); err != nil {
			return err
		}
	}
	st, node := seen.st, seen.node
	step := "upgrade-workers"
	if master {
		step = "upgrade-masters"
	}
	if master && st.controlPlane != target {
		// The first master to move runs upgrade apply, which moves the
		// cluster's recorded version; every later one upgrade node.
		recorded, err := kubeadmConfigVersion(ctx, v.access)
		if err != nil {
			return err
		}
		args := []string{"kubeadm", "upgrade", "node"}
		if recorded != target {
			// The new kubelets must find the inventory's policy in the
			// cluster's kubelet-config, which kubeadm carries over.
			if err := ensureKubeletPolicy(ctx, client, clusterOf(p.inv).KubeletPolicy()); err != nil {
				return err
			}
			args = []string{"kubeadm", "upgrade", "apply", target, "--yes"}
		}
		if err := p.kubeadm(ctx, r, host, args); err != nil {
			return err
		}
	} else if !master && st.kubelet != target && p.inv.JoinModeOf(p.inv.Host(host)) == inventory.JoinKubeadm {
		// The kubelet's configuration of the new version, from the
		// cluster's kubelet-config.
		if err := p.kubeadm(ctx, r, host, []string{"kubeadm", "upgrade", "node"}); err != nil {
			return err
		}
	}
	if st.kubelet != target {
		if !node.Spec.Unschedulable {
			if err := annotateNode(ctx, client, host, upgradeCordoned, target); err != nil {
				return err
			}
		}
		// The API may blink while a control plane restarts: a drain is
		// safe to repeat.
		if err := apiRetry(ctx, func(ctx context.Context) error { return drainNode(ctx, client, host, p.opts.Drain) }); err != nil {
			return fmt.Errorf("%w (the node stays cordoned; fleet upgrade uncordons it when it finishes)", err)
		}
		if err := p.tools.run(ctx, r, host); err != nil {
			return err
		}
		if err := restartKubelet(ctx, r, host); err != nil {
			return err
		}
		if err := waitKubelet(ctx, client, host, target, p.opts.ReadyTimeout); err != nil {
			return err
		}
	}
	if master {
		dial, err := r.probe.dialer(ctx, host)
		if err != nil {
			return err
		}
		for _, pod := range controlPlanePods {
			if err := waitHealthy(ctx, dial, pod, p.opts.ReadyTimeout); err != nil {
				return fmt.Errorf("%s after the upgrade: %w", pod.name, err)
			}
		}
	}
	if err := uncordonUpgraded(ctx, client, host); err != nil {
		return err
	}
	r.note(step, host, "at "+target)
	return nil
}

// kubeadm runs one kubeadm upgrade command within --kubeadm-timeout,
// skipping the preflight checks the inventory's settings fail on purpose.
func (p *upgradeNodePhase) kubeadm(ctx context.Context, r remote, host string, args []string) error {
	if ignore := clusterOf(p.inv).PreflightIgnores(); len(ignore) > 0 {
		args = append(slices.Clone(args), "--ignore-preflight-errors="+strings.Join(ignore, ","))
	}
	runCtx, cancel := context.WithTimeout(ctx, p.opts.KubeadmTimeout)
	defer cancel()
	if _, err := r.run(runCtx, host, exec.Command(args...)); err != nil {
		if runCtx.Err() != nil && ctx.Err() == nil {
			return fmt.Errorf("%s: still running after %s (--kubeadm-timeout), killed: %w", strings.Join(args[:3], " "), p.opts.KubeadmTimeout, err)
		}
		return fmt.Errorf("%s: %w", strings.Join(args[:3], " "), err)
	}
	return nil
}

// ensureKubeletPolicy sets policy's fields in the cluster's kubelet-config
// ConfigMap where they differ (a cluster made before the inventory allowed
// cgroups v1 or swap): kubeadm upgrade writes every node's kubelet config
// from it.
func ensureKubeletPolicy(ctx context.Context, client kubernetes.Interface, policy map[string]any) error {
	if len(policy) == 0 {
		return nil
	}
	cms := client.CoreV1().ConfigMaps("kube-system")
	var cm *corev1.ConfigMap
	err := apiRetry(ctx, func(ctx context.Context) (err error) {
		cm, err = cms.Get(ctx, "kubelet-config", metav1.GetOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("kube-system/kubelet-config: %w", err)
	}
	cfg := map[string]any{}
	if err := yaml.Unmarshal([]byte(cm.Data["kubelet"]), &cfg); err != nil {
		return fmt.Errorf("kube-system/kubelet-config: %w", err)
	}
	// The policy as YAML reads back, to compare like with like.
	raw, err := yaml.Marshal(policy)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(raw, &policy); err != nil {
		return err
	}
	changed := false
	for k, v := range policy {
		if !reflect.DeepEqual(cfg[k], v) {
			cfg[k], changed = v, true
		}
	}
	if !changed {
		return nil
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	cm.Data["kubelet"] = string(out)
	err = apiRetry(ctx, func(ctx context.Context) error {
		_, err := cms.Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("kube-system/kubelet-config: %w", err)
	}
	return nil
}

// waitKubelet waits for host's Node to be Ready with its kubelet at
// version.
func waitKubelet(ctx context.Context, client kubernetes.Interface, host, version string, limit time.Duration) error {
	var last string
	err := pollUntil(ctx, time.Second, limit, func(ctx context.Context) (bool, error) {
		n, err := client.CoreV1().Nodes().Get(ctx, host, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("kubelet %s, Ready %v", n.Status.NodeInfo.KubeletVersion, nodeReady(n))
		return nodeReady(n) && n.Status.NodeInfo.KubeletVersion == version, nil
	})
	if err == errPollTimeout {
		return fmt.Errorf("%s not Ready at %s after %s (%s)", host, version, limit, last)
	}
	return err
}

// annotateNode sets one annotation on a Node.
func annotateNode(ctx context.Context, client kubernetes.Interface, node, key, value string) error {
	var v any
	if value != "" {
		v = value
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]any{key: v}}})
	if err != nil {
		return err
	}
	err = apiRetry(ctx, func(ctx context.Context) error {
		_, err := client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("annotate node %s: %w", node, err)
	}
	return nil
}

// uncordonUpgraded uncordons a node fleet upgrade cordoned, and forgets
// that it did.
func uncordonUpgraded(ctx context.Context, client kubernetes.Interface, host string) error {
	var n *corev1.Node
	err := apiRetry(ctx, func(ctx context.Context) (err error) {
		n, err = client.CoreV1().Nodes().Get(ctx, host, metav1.GetOptions{})
		return err
	})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if n.Annotations[upgradeCordoned] == "" {
		return nil
	}
	if n.Spec.Unschedulable {
		err := apiRetry(ctx, func(ctx context.Context) error {
			return drain.RunCordonOrUncordon(drainer(ctx, client, drainOptions{}), n, false)
		})
		if err != nil {
			return fmt.Errorf("uncordon %s: %w", host, err)
		}
	}
	return annotateNode(ctx, client, host, upgradeCordoned, "")
}
