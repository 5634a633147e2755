package playbooks_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/charts"
)

var (
	crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	bgpCluster  = schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumbgpclusterconfigs"}
	lbPool      = schema.GroupVersionResource{Group: "cilium.io", Version: "v2", Resource: "ciliumloadbalancerippools"}
)

// testNetworkFromCharts switches the cluster's network from the manifest
// it was built with to Cilium from its real chart, with BGP and an addon
// from a chart of our own, and back; on a real API server, with the real
// kubectl on master0.
//
// What the test bed cannot run, the test does in its place, as the real
// thing would on the API: the Cilium operator creates its CRDs when its
// Deployment appears, and each node's kubelet reports its Cilium pods
// Ready (the emulated runtime cannot run cilium-agent).
func testNetworkFromCharts(t *testing.T) {
	ctx := context.Background()
	kubeconfig := applyOptions().Kubeconfig
	client := clientFor(t, kubeconfig)
	dyn := dynamicFor(t, kubeconfig)
	cilium, err := charts.FetchCilium(ctx)
	if err != nil {
		t.Fatal(err)
	}
	original, err := os.ReadFile(applyCluster.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	defer os.WriteFile(applyCluster.Inventory, original, 0o600)
	cniLine := regexp.MustCompile(`(?m)^  cni: .*\n`).Find(original)
	if cniLine == nil {
		t.Fatal("the test cluster's inventory names no cni: manifest")
	}
	values, _ := filepath.Abs("../inventory/examples/cilium-values.yaml")
	demo, _ := filepath.Abs("../internal/chart/testdata/demo")
	network := func(operatorReplicas int) string {
		return fmt.Sprintf(`  network:
    cilium:
      version: %s
      chart: %s
      values: %s
      set: {operator.replicas: %d}
      bgp:
        localASN: 64512
        peers: [{address: 198.18.0.1, asn: 64513}]
        loadBalancerCIDRs: [203.0.113.0/24]
  addons:
    - name: demo
      helm: {chart: %s, release: web, namespace: apps, set: {replicas: 2}}
`, charts.CiliumVersion, cilium.Chart(), values, operatorReplicas, demo)
	}
	inv := editInventory(t, applyCluster.Inventory, original, [2]string{string(cniLine), network(1)})

	// The plan says what the switch does: the chart's objects to add, the
	// manifest's ConfigMap to remove.
	var planned output
	ps, err := playbooks.NewSession(inv, playbooks.Options{OnEvent: planned.event})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := playbooks.Plan(ctx, ps, applyOptions())
	ps.Close()
	if err != nil {
		t.Fatal(err)
	}
	if reason := reasonOf(plan, "network", "master0"); !regexp.MustCompile(`^chart cilium 1\.18\.4: \d+ objects to add, 1 object to remove \(kube-system/ConfigMap/fleet-test-cni\), objects waiting for CRDs its operator creates$`).MatchString(reason) {
		t.Errorf("plan's network line: %q", reason)
	}

	// A chart that refuses its values stops the run at the gate, before
	// any host or object changes.
	bad := editInventory(t, applyCluster.Inventory, original, [2]string{string(cniLine),
		strings.Replace(network(1), "set: {operator.replicas: 1}", "set: {operator.replicas: 1, hubble.relay.enabled: false}", 1)})
	_, _, shown, err := runApply(t, bad, applyOptions(), nil)
	var gate *steps.StepError
	if !errors.As(err, &gate) || gate.Step != "gate" || !strings.Contains(err.Error(), "Hubble UI requires .Values.hubble.relay.enabled=true") {
		t.Fatalf("a chart that does not render: want the gate to stop the run with the chart's reason, got %v\n%s", err, shown)
	}
	if strings.Contains(shown, "started network") || strings.Contains(shown, "started loadbalancer") {
		t.Errorf("steps after the gate started:\n%s", shown)
	}
	if _, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "fleet-test-cni", metav1.GetOptions{}); err != nil {
		t.Errorf("the manifest's ConfigMap went: %v", err)
	}
	inv = editInventory(t, applyCluster.Inventory, original, [2]string{string(cniLine), network(1)})

	// The operator: its CRDs, made once its Deployment exists.
	operatorDone := make(chan error, 1)
	opCtx, stopOperator := context.WithTimeout(ctx, 3*time.Minute)
	defer stopOperator()
	go func() { operatorDone <- playCiliumOperator(opCtx, client, dyn, cilium) }()

	// First apply: everything but kube-proxy's removal, which waits for
	// Cilium to roll out, and it does not.
	opts := applyOptions()
	opts.NetworkTimeout = 15 * time.Second
	report, _, shown, err := runApply(t, inv, opts, nil)
	var se *steps.StepError
	if !errors.As(err, &se) || se.Step != "kube-proxy" || !strings.Contains(err.Error(), "kube-proxy kept") || !strings.Contains(err.Error(), "daemonset kube-system/cilium not rolled out") {
		t.Fatalf("first apply: want kube-proxy kept for Cilium's rollout, got %v\n%s", err, shown)
	}
	if err := <-operatorDone; err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"network", "addons", "node-meta"} {
		if !ran(report, step) {
			t.Errorf("step %s did not run:\n%s", step, shown)
		}
	}
	if !strings.Contains(shown, "note network master0 deleted kube-system/ConfigMap/fleet-test-cni: not in chart cilium 1.18.4") {
		t.Errorf("no note of the manifest's ConfigMap deleted:\n%s", shown)
	}
	if _, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "fleet-test-cni", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the old network's ConfigMap is still there: %v", err)
	}
	if !strings.Contains(shown, "note network master0 chart cilium 1.18.4: waiting for ciliumloadbalancerippools.cilium.io, ciliumbgpclusterconfigs.cilium.io") {
		t.Errorf("no note of the wait for the operator's CRDs:\n%s", shown)
	}
	config, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "cilium-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"kube-proxy-replacement": "true", "enable-bgp-control-plane": "true", "cluster-pool-ipv4-cidr": inv.Cluster.PodSubnet} {
		if config.Data[k] != v {
			t.Errorf("cilium-config %s = %q, want %q", k, config.Data[k], v)
		}
	}
	agent, err := client.AppsV1().DaemonSets("kube-system").Get(ctx, "cilium", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if host := envOf(agent, "cilium-agent", "KUBERNETES_SERVICE_HOST"); host != applyCluster.Host("lb").Address {
		t.Errorf("cilium-agent reaches the API at %q, want the load balancer %s", host, applyCluster.Host("lb").Address)
	}
	cc, err := dyn.Resource(bgpCluster).Get(ctx, "fleet-bgp", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("CiliumBGPClusterConfig: %v", err)
	}
	if sel, _, _ := unstructured.NestedStringMap(cc.Object, "spec", "nodeSelector", "matchLabels"); sel["bgp"] != "worker" {
		t.Errorf("BGP cluster config selects %v", sel)
	}
	if _, err := dyn.Resource(lbPool).Get(ctx, "fleet-bgp", metav1.GetOptions{}); err != nil {
		t.Errorf("CiliumLoadBalancerIPPool: %v", err)
	}
	for _, h := range inv.Hosts() {
		node, err := client.CoreV1().Nodes().Get(ctx, h.Name, metav1.GetOptions{})
		if err != nil {
			continue // the load balancer
		}
		if want := map[string]string{"worker": "worker"}[string(h.Role)]; node.Labels["bgp"] != want {
			t.Errorf("node %s: bgp label %q, want %q", h.Name, node.Labels["bgp"], want)
		}
	}
	if d, err := client.AppsV1().Deployments("apps").Get(ctx, "web-server", metav1.GetOptions{}); err != nil || *d.Spec.Replicas != 2 {
		t.Errorf("the demo addon's Deployment in its own namespace, 2 replicas: %v", err)
	}
	if crd, err := dyn.Resource(crdResource).Get(ctx, "widgets.demo.example.com", metav1.GetOptions{}); err != nil || !established(crd) {
		t.Errorf("the demo chart's CRD, Established: %v", err)
	}
	if _, err := client.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{}); err != nil {
		t.Errorf("kube-proxy went before Cilium rolled out: %v", err)
	}

	// Cilium's pods Ready on every node: the next apply removes kube-proxy.
	if err := reportCiliumReady(ctx, client); err != nil {
		t.Fatal(err)
	}
	opts.NetworkTimeout = 2 * time.Minute
	_, _, shown, err = runApply(t, inv, opts, nil)
	if err != nil {
		t.Fatalf("second apply: %v\n%s", err, shown)
	}
	if !strings.Contains(shown, "removed kube-proxy (DaemonSet and ConfigMap): chart cilium 1.18.4 has rolled out") {
		t.Errorf("no note of kube-proxy removed:\n%s", shown)
	}
	for _, get := range []func() error{
		func() error {
			_, err := client.AppsV1().DaemonSets("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
			return err
		},
		func() error {
			_, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{})
			return err
		},
	} {
		if err := get(); !apierrors.IsNotFound(err) {
			t.Errorf("kube-proxy still there: %v", err)
		}
	}

	// Converged: the next apply finds Cilium's every object as rendered.
	report, _, shown, err = runApply(t, inv, opts, nil)
	if err != nil || report.Changed() {
		ps, _ := playbooks.NewSession(inv, playbooks.Options{})
		plan, _ := playbooks.Plan(ctx, ps, applyOptions())
		ps.Close()
		t.Fatalf("third apply changed %v (err %v): a plan now says network %q, addons %q:\n%s", report.Changes(), err,
			reasonOf(plan, "network", "master0"), reasonOf(plan, "addons", "master0"), shown)
	}
	if reason := reasonOf(report, "network", "master0"); reason != "chart cilium 1.18.4 applied as rendered" {
		t.Errorf("network: %q", reason)
	}

	// A changed value is one object to change, in the plan.
	inv = editInventory(t, applyCluster.Inventory, original, [2]string{string(cniLine), network(2)})
	ps, err = playbooks.NewSession(inv, playbooks.Options{})
	if err != nil {
		t.Fatal(err)
	}
	plan, err = playbooks.Plan(ctx, ps, applyOptions())
	ps.Close()
	if err != nil {
		t.Fatal(err)
	}
	if reason := reasonOf(plan, "network", "master0"); reason != "chart cilium 1.18.4: 1 object to change" {
		t.Errorf("plan after operator.replicas changed: %q", reason)
	}

	// Back to the manifest: Cilium's objects and the addon go, the
	// manifest's ConfigMap is back, the workers lose the BGP label.
	inv = editInventory(t, applyCluster.Inventory, original)
	_, _, shown, err = runApply(t, inv, applyOptions(), nil)
	if err != nil {
		t.Fatalf("apply back to the manifest: %v\n%s", err, shown)
	}
	if _, err := client.AppsV1().DaemonSets("kube-system").Get(ctx, "cilium", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Cilium's DaemonSet outlived the network: %v", err)
	}
	if _, err := client.AppsV1().Deployments("apps").Get(ctx, "web-server", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the dropped addon's Deployment is still there: %v", err)
	}
	if !strings.Contains(shown, "removed addon demo: no longer in the inventory") || !strings.Contains(shown, "kept kube-system/Namespace/cilium-secrets") {
		t.Errorf("notes of the addon removed and the namespace kept missing:\n%s", shown)
	}
	if _, err := client.CoreV1().ConfigMaps("kube-system").Get(ctx, "fleet-test-cni", metav1.GetOptions{}); err != nil {
		t.Errorf("the manifest's ConfigMap is not back: %v", err)
	}
	if node, err := client.CoreV1().Nodes().Get(ctx, "worker0", metav1.GetOptions{}); err != nil || node.Labels["bgp"] != "" {
		t.Errorf("worker0 keeps the BGP label fleet set: %v %v", node.Labels, err)
	}
}

func dynamicFor(t *testing.T, path string) dynamic.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func envOf(ds *appsv1.DaemonSet, container, name string) string {
	for _, c := range ds.Spec.Template.Spec.Containers {
		if c.Name != container {
			continue
		}
		for _, e := range c.Env {
			if e.Name == name {
				return e.Value
			}
		}
	}
	return ""
}

func established(crd *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// playCiliumOperator creates the BGP and LB-IPAM CRDs (Cilium's own
// files) once the operator's Deployment exists, as the operator does when
// it starts.
func playCiliumOperator(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface, c charts.Cilium) error {
	for {
		if _, err := client.AppsV1().Deployments("kube-system").Get(ctx, "cilium-operator", metav1.GetOptions{}); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the cilium-operator Deployment never appeared: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	// An operator takes a moment to start: long enough that fleet has to
	// wait for the CRDs.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(3 * time.Second):
	}
	for _, name := range []string{"ciliumloadbalancerippools.cilium.io", "ciliumbgpclusterconfigs.cilium.io", "ciliumbgppeerconfigs.cilium.io", "ciliumbgpadvertisements.cilium.io"} {
		data, err := os.ReadFile(c.CRD(name))
		if err != nil {
			return err
		}
		var obj map[string]any
		if err := yaml.Unmarshal(data, &obj); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if _, err := dyn.Resource(crdResource).Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create CRD %s: %w", name, err)
		}
	}
	return nil
}

// reportCiliumReady sets every Cilium pod (agent and envoy) Running and
// Ready, as its node's kubelet would once the containers run, after the
// scheduler has bound them all.
func reportCiliumReady(ctx context.Context, client kubernetes.Interface) error {
	deadline := time.Now().Add(time.Minute)
	for _, ds := range []string{"cilium", "cilium-envoy"} {
		for {
			d, err := client.AppsV1().DaemonSets("kube-system").Get(ctx, ds, metav1.GetOptions{})
			if err != nil {
				return err
			}
			pods, err := client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(d.Spec.Selector)})
			if err != nil {
				return err
			}
			bound := 0
			for _, p := range pods.Items {
				if p.Spec.NodeName != "" {
					bound++
				}
			}
			if d.Status.DesiredNumberScheduled > 0 && bound == int(d.Status.DesiredNumberScheduled) && len(pods.Items) == bound {
				for i := range pods.Items {
					if err := setReady(ctx, client, &pods.Items[i]); err != nil {
						return err
					}
				}
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("daemonset %s: %d of %d pods bound", ds, bound, d.Status.DesiredNumberScheduled)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	return nil
}

func setReady(ctx context.Context, client kubernetes.Interface, p *corev1.Pod) error {
	now := metav1.Now()
	p.Status.Phase = corev1.PodRunning
	p.Status.StartTime = &now
	p.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
	}
	p.Status.ContainerStatuses = nil
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image, Ready: true,
			Started: func() *bool { b := true; return &b }(), State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}})
	}
	if _, err := client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("pod %s status: %w", p.Name, err)
	}
	return nil
}
