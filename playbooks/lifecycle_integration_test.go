package playbooks_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetops/fleet/internal/kubeadm"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
	"github.com/fleetops/fleet/playbooks"
	"github.com/fleetops/fleet/testing/reliability"
	"github.com/fleetops/fleet/testing/sim"
)

// lifecycle is the test bed of TestLifecycle: the HA hosts plus a worker2,
// first built without master2 and worker2, which join later.
type lifecycle struct {
	c          *sim.Cluster
	full       string // inventory with every host
	small      string // inventory without master2 and worker2
	kubeconfig string
	out        output
	// Every session's secrets, as its redactor knows them, and every
	// command line run on the machine meanwhile.
	redactors []func(string) string
	cmdlines  *cmdlineWatcher
	// byHand are tokens the test itself put on a command line, as a user
	// pasting the join command rotate-tokens printed does.
	byHand []string
}

// worker2Meta: worker2's labels and taint in the inventory.
const worker2Meta = "    labels:\n      pool.example.com/kind: general\n      node-role.kubernetes.io/worker: \"\"\n" +
	"    taints:\n      - {key: dedicated, value: web, effect: NoSchedule}\n"

func TestLifecycle(t *testing.T) {
	sim.Need(t, cluster)
	topo := sim.Topology{ID: "lc", Subnet: 22, Hosts: []sim.HostSpec{
		{Name: "lb", Role: "loadbalancer"},
		{Name: "master0", Role: "master"}, {Name: "master1", Role: "master"}, {Name: "master2", Role: "master"},
		{Name: "worker0", Role: "worker"}, {Name: "worker1", Role: "worker"}, {Name: "worker2", Role: "worker"},
	}}
	c := upWithNodeBinaries(t, topo)
	lc := &lifecycle{c: c, full: c.Inventory, small: filepath.Join(c.Dir, "small.yaml"), kubeconfig: filepath.Join(c.Dir, "admin.kubeconfig")}
	full, err := os.ReadFile(c.Inventory)
	if err != nil {
		t.Fatal(err)
	}
	// Log in as a sudo user, whose every command sudo writes to its log.
	full = []byte(strings.Replace(string(full), "\n  user: root\n", "\n  user: "+sim.SudoUser+"\n  sudo: true\n", 1))
	// worker2 joins later with labels and a taint.
	w2 := "  - name: worker2\n    address: " + c.Host("worker2").Address + "\n"
	if !strings.Contains(string(full), w2) {
		t.Fatalf("no %q in the inventory", w2)
	}
	full = []byte(strings.Replace(string(full), w2, w2+worker2Meta, 1))
	if err := os.WriteFile(lc.full, full, 0o600); err != nil {
		t.Fatal(err)
	}
	small := regexp.MustCompile(`(?m)^  - name: (master2|worker2)\n    address: \S+\n(    .*\n|      .*\n)*`).ReplaceAll(full, nil)
	if err := os.WriteFile(lc.small, small, 0o600); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"apply builds two masters and two workers", lc.testApplySmall},
		{"join worker2 master2 with fresh credentials", lc.testJoin},
		{"join again changes nothing", lc.testJoinAgain},
		{"remove refuses the last master and quorum loss", lc.testRemoveRefusals},
		{"remove worker1 honours a PodDisruptionBudget", lc.testRemoveWorker},
		{"remove master2", lc.testRemoveMaster},
		{"rotate-tokens and a join by hand", lc.testRotateTokens},
		{"apply re-joins master2", lc.testApplyRejoins},
		{"remove --gone takes a dead master and a dead worker out", lc.testRemoveGone},
		{"no secret in any output", lc.testNoSecrets},
		{"reset tears down, apply rebuilds", lc.testResetThenApply},
		{"no secret on a command line or in sudo's log", lc.testNoSecretOnCommandLines},
	}
	lc.cmdlines = watchCmdlines(t)
	for _, st := range steps {
		if !t.Run(st.name, st.fn) {
			return // each builds on the one before
		}
	}
}

func (lc *lifecycle) session(t *testing.T, path string, onEvent func(steps.Event)) *playbooks.Session {
	t.Helper()
	inv, err := inventory.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := playbooks.NewSession(inv, playbooks.Options{OnEvent: func(e steps.Event) {
		lc.out.event(e)
		if onEvent != nil {
			onEvent(e)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	lc.redactors = append(lc.redactors, s.Redactor.String)
	t.Cleanup(func() {
		// Whatever a session learned must never have been printed.
		if got := lc.out.buf.String(); s.Redactor.String(got) != got {
			t.Error("a secret appears in the run's output")
		}
		s.Close()
	})
	return s
}

func (lc *lifecycle) client(t *testing.T) kubernetes.Interface { return clientFor(t, lc.kubeconfig) }

func (lc *lifecycle) apply(t *testing.T, inv string) *steps.Report {
	t.Helper()
	opts := playbooks.DefaultApplyOptions()
	opts.Kubeconfig = lc.kubeconfig
	report, err := playbooks.Apply(context.Background(), lc.session(t, inv, nil), opts)
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, lc.out.buf.String())
	}
	return report
}

func (lc *lifecycle) testApplySmall(t *testing.T) {
	lc.apply(t, lc.small)
	lc.wantNodes(t, "master0", "master1", "worker0", "worker1")
	lc.wantEtcd(t, "master0", "master1")
	lc.wantUpstream(t, "master0", "master1")
	lc.wantNoUploadedCerts(t)
}

// tokens lists the cluster's bootstrap tokens.
func (lc *lifecycle) tokens(t *testing.T) []kubeadm.TokenInfo {
	t.Helper()
	list, err := lc.client(t).CoreV1().Secrets("kube-system").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []kubeadm.TokenInfo
	for i := range list.Items {
		if info, ok := kubeadm.ReadTokenInfo(&list.Items[i]); ok {
			out = append(out, info)
		}
	}
	return out
}

func (lc *lifecycle) testJoin(t *testing.T) {
	// No token that could join a node is left from the apply: the join
	// can only succeed with credentials it makes itself.
	for _, tok := range lc.tokens(t) {
		if slices.Contains(tok.Usages, "authentication") && !tok.Expired(time.Now()) {
			t.Fatalf("a usable token %s (%q) survived the apply", tok.ID, tok.Description)
		}
	}
	// The uploaded certificates vanish between the credentials step and
	// master2's join, as when their 1h owner token expires: the join must
	// notice and upload them again.
	client := lc.client(t)
	deleted := false
	var metaNotes, upstreamNotes []string
	s := lc.session(t, lc.full, func(e steps.Event) {
		if e.Step == "node-meta" && e.Kind == steps.Note {
			metaNotes = append(metaNotes, e.Host+": "+e.Reason)
		}
		if e.Step == "join-masters" && e.Kind == steps.Note {
			upstreamNotes = append(upstreamNotes, e.Host+": "+e.Reason)
		}
		if e.Step == "credentials" && e.Kind == steps.Succeeded {
			err := client.CoreV1().Secrets("kube-system").Delete(context.Background(), "kubeadm-certs", metav1.DeleteOptions{})
			deleted = err == nil
		}
	})
	report, err := playbooks.Join(context.Background(), s, []string{"worker2", "master2"}, playbooks.DefaultJoinOptions())
	if err != nil {
		t.Fatalf("join: %v\n%s", err, lc.out.buf.String())
	}
	if !deleted {
		t.Fatal("the test could not delete the kubeadm-certs Secret")
	}
	ran := changedSteps(report)
	for _, want := range []string{"credentials/", "join-masters/master2", "join-workers/worker2", "cleanup-tokens/"} {
		if !ran[want] {
			t.Errorf("step %s did not run; ran %v", want, ran)
		}
	}
	// master2 entered the balancer's upstream once its API server was
	// ready, inside its join: the loadbalancer step after found it done.
	if got := strings.Join(upstreamNotes, "\n"); got != "master2: ready: added to the upstream of lb" || ran["loadbalancer/lb"] {
		t.Errorf("join-masters notes %q; the loadbalancer step ran: %v", got, ran["loadbalancer/lb"])
	}
	if ran["join-workers/worker0"] || ran["join-masters/master1"] {
		t.Errorf("join touched nodes it was not asked to: %v", ran)
	}
	lc.wantNodes(t, "master0", "master1", "master2", "worker0", "worker1", "worker2")
	reliability.Record(t, reliability.Row{N: 11, Did: "the kubeadm-certs Secret was deleted after the credentials step; before master2's join fleet found it gone, ran kubeadm init phase upload-certs under a new key and master2 joined in the same run",
		Rerun: "not needed: the run converged (6 nodes)"})
	lc.wantEtcd(t, "master0", "master1", "master2")
	lc.wantUpstream(t, "master0", "master1", "master2")
	lc.wantServes(t, "master2")
	for _, tok := range lc.tokens(t) {
		if tok.ByFleet() {
			t.Errorf("the join's token %s was not deleted", tok.ID)
		}
	}
	// The kubelet registered worker2 with the label it may set and kubeadm
	// with the taint; the API added the role label NodeRestriction keeps
	// from kubelets.
	if got := strings.Join(metaNotes, "\n"); got != "worker2: label +node-role.kubernetes.io/worker=" {
		t.Errorf("node-meta after the join did %q; want only the role label left to the API", got)
	}
	w2, err := client.CoreV1().Nodes().Get(context.Background(), "worker2", metav1.GetOptions{})
	if err != nil || w2.Labels["pool.example.com/kind"] != "general" || len(w2.Spec.Taints) != 1 || w2.Spec.Taints[0].Key != "dedicated" {
		t.Errorf("worker2's Node: %v, labels %v, taints %v", err, w2.Labels, w2.Spec.Taints)
	}
	lc.wantNoUploadedCerts(t)
	if !strings.Contains(lc.out.buf.String(), "deleted the kubeadm-certs Secret") {
		t.Error("the join did not say it deleted the uploaded certificates")
	}
}

// wantNoUploadedCerts: the control-plane keys are not left in the cluster,
// nor the proxy token that owns them.
func (lc *lifecycle) wantNoUploadedCerts(t *testing.T) {
	t.Helper()
	_, err := lc.client(t).CoreV1().Secrets("kube-system").Get(context.Background(), "kubeadm-certs", metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		t.Errorf("the kubeadm-certs Secret is still in the cluster (%v)", err)
	}
	for _, tok := range lc.tokens(t) {
		if tok.Description == kubeadm.CertsProxyDescription {
			t.Errorf("the proxy token %s of the kubeadm-certs Secret is still in the cluster", tok.ID)
		}
	}
}

func (lc *lifecycle) testJoinAgain(t *testing.T) {
	report, err := playbooks.Join(context.Background(), lc.session(t, lc.full, nil), []string{"worker2", "master2"}, playbooks.DefaultJoinOptions())
	if err != nil {
		t.Fatal(err)
	}
	if report.Changed() {
		t.Errorf("a second join changed: %+v", report.Changes())
	}
	_, err = playbooks.Join(context.Background(), lc.session(t, lc.full, nil), []string{"worker9"}, playbooks.DefaultJoinOptions())
	if err == nil || !strings.Contains(err.Error(), "no such host in "+lc.full) {
		t.Errorf("joining a host not in the inventory: %v", err)
	}
}

func (lc *lifecycle) testRemoveRefusals(t *testing.T) {
	s := lc.session(t, lc.full, nil)
	_, err := playbooks.Remove(context.Background(), s, []string{"master0", "master1", "master2"}, playbooks.DefaultRemoveOptions())
	if err == nil || !strings.Contains(err.Error(), "no other initialised master") {
		t.Errorf("removing every master: %v", err)
	}
	_, err = playbooks.Remove(context.Background(), s, []string{"master1", "master2"}, playbooks.DefaultRemoveOptions())
	if err == nil || !strings.Contains(err.Error(), "below the quorum") {
		t.Errorf("removing two of three masters: %v", err)
	}
	lc.wantEtcd(t, "master0", "master1", "master2")
	lc.wantUpstream(t, "master0", "master1", "master2")
}

func (lc *lifecycle) testRemoveWorker(t *testing.T) {
	ctx := context.Background()
	client := lc.client(t)
	labels := map[string]string{"app": "pinned"}
	pod, err := client.CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "pinned", Labels: labels},
		Spec: corev1.PodSpec{NodeName: "worker1", Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
			Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The emulated kubelet runs no regular pods; report this one Running
	// and Ready as a kubelet would, so the budget counts it (the eviction
	// API ignores budgets for Pending pods).
	now := metav1.Now()
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &now, Conditions: []corev1.PodCondition{
		{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now}}}
	if _, err := client.CoreV1().Pods("default").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	one := intstr.FromInt32(1)
	_, err = client.PolicyV1().PodDisruptionBudgets("default").Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "pinned"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &one, Selector: &metav1.LabelSelector{MatchLabels: labels}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the disruption controller has counted the pod.
	deadline := time.Now().Add(time.Minute)
	for {
		pdb, err := client.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "pinned", metav1.GetOptions{})
		if err == nil && pdb.Status.ObservedGeneration == pdb.Generation && pdb.Status.CurrentHealthy == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the budget never counted the pod: %+v %v", pdb.Status, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The pod has no controller: kubectl drain refuses it without --force,
	// and so does fleet, before it cordons the node.
	opts := playbooks.DefaultRemoveOptions()
	opts.DrainTimeout = 3 * time.Second
	var se *steps.StepError
	_, err = playbooks.Remove(ctx, lc.session(t, lc.full, nil), []string{"worker1"}, opts)
	if !errors.As(err, &se) || se.Step != "drain" || !strings.Contains(err.Error(), "--force-drain") {
		t.Fatalf("remove of a node with an unmanaged pod, without --force-drain: %v", err)
	}
	if node, err := client.CoreV1().Nodes().Get(ctx, "worker1", metav1.GetOptions{}); err != nil || node.Spec.Unschedulable {
		t.Fatalf("worker1 cordoned by a drain that was refused (or gone: %v)", err)
	}

	opts.ForceDrain = true
	_, err = playbooks.Remove(ctx, lc.session(t, lc.full, nil), []string{"worker1"}, opts)
	if !errors.As(err, &se) || se.Step != "drain" || se.Host != "worker1" || !strings.Contains(err.Error(), "disruption budget") {
		t.Fatalf("remove despite the budget: %v", err)
	}
	if _, err := client.CoreV1().Nodes().Get(ctx, "worker1", metav1.GetOptions{}); err != nil {
		t.Errorf("worker1's Node is gone although its drain failed: %v", err)
	}
	if _, err := lc.c.Exec("worker1", "test", "-e", "/etc/kubernetes/kubelet.conf"); err != nil {
		t.Error("worker1 was reset although its drain failed")
	}

	if err := client.PolicyV1().PodDisruptionBudgets("default").Delete(ctx, "pinned", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	opts.DrainTimeout = playbooks.DefaultRemoveOptions().DrainTimeout
	if _, err := playbooks.Remove(ctx, lc.session(t, lc.full, nil), []string{"worker1"}, opts); err != nil {
		t.Fatalf("remove worker1: %v\n%s", err, lc.out.buf.String())
	}
	if _, err := client.CoreV1().Pods("default").Get(ctx, "pinned", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the pinned pod was not evicted: %v", err)
	}
	if _, err := lc.c.Exec("worker1", "test", "-e", "/etc/kubernetes/kubelet.conf"); err == nil {
		t.Error("worker1 still has kubelet.conf after kubeadm reset")
	}
	lc.wantNodes(t, "master0", "master1", "master2", "worker0", "worker2")
}

func (lc *lifecycle) testRemoveMaster(t *testing.T) {
	report, err := playbooks.Remove(context.Background(), lc.session(t, lc.full, nil), []string{"master2"}, playbooks.DefaultRemoveOptions())
	if err != nil {
		t.Fatalf("remove master2: %v\n%s", err, lc.out.buf.String())
	}
	ran := changedSteps(report)
	if !ran["loadbalancer/lb"] || !ran["reset/master2"] || !ran["delete-node/master2"] {
		t.Errorf("steps that ran: %v", ran)
	}
	lc.wantUpstream(t, "master0", "master1")
	lc.wantEtcd(t, "master0", "master1")
	lc.wantNodes(t, "master0", "master1", "worker0", "worker2")
}

func (lc *lifecycle) testRotateTokens(t *testing.T) {
	ctx := context.Background()
	first, err := playbooks.RotateTokens(ctx, lc.session(t, lc.full, nil), playbooks.RotateOptions{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	second, err := playbooks.RotateTokens(ctx, lc.session(t, lc.full, nil), playbooks.RotateOptions{TTL: 7 * time.Minute, CertificateKey: true})
	if err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, r := range second.Rows {
		if r.Action == playbooks.TokenDeleted {
			deleted = append(deleted, r.ID)
		}
	}
	if !slices.Contains(deleted, first.Token.ID) {
		t.Errorf("the second rotation deleted %v, not the first one's token %s", deleted, first.Token.ID)
	}
	var fleetTokens []kubeadm.TokenInfo
	for _, tok := range lc.tokens(t) {
		if tok.ByFleet() {
			fleetTokens = append(fleetTokens, tok)
		}
	}
	if len(fleetTokens) != 1 || fleetTokens[0].ID != second.Token.ID {
		t.Fatalf("fleet's tokens after rotation: %+v, want only %s", fleetTokens, second.Token.ID)
	}
	if left := time.Until(fleetTokens[0].Expires); left < 6*time.Minute || left > 7*time.Minute {
		t.Errorf("new token expires in %s, want the 7m asked for", left)
	}
	// kubeadm itself agrees.
	list, err := lc.c.Exec("master0", "kubeadm", "token", "list")
	if err != nil || !strings.Contains(string(list), second.Token.ID) || strings.Contains(string(list), first.Token.ID) {
		t.Errorf("kubeadm token list: %v\n%s", err, list)
	}
	if second.CertificateKey == "" {
		t.Error("no certificate key after --certificate-key")
	}
	// A user joins worker1 by hand with the printed command.
	lc.byHand = append(lc.byHand, second.Token.String())
	if out, err := lc.c.Exec("worker1", "sh", "-c", second.JoinCommand(false)); err != nil {
		t.Fatalf("join by hand: %v\n%s", err, out)
	}
	lc.waitReady(t, "worker1")

	// The next rotation without --certificate-key cleans the certificates
	// the last one uploaded, and says why.
	third, err := playbooks.RotateTokens(ctx, lc.session(t, lc.full, nil), playbooks.RotateOptions{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	proxyDeleted := false
	for _, r := range third.Rows {
		proxyDeleted = proxyDeleted || r.Action == playbooks.TokenDeleted && strings.Contains(r.Why, "kubeadm-certs")
	}
	if !proxyDeleted {
		t.Errorf("rotate-tokens did not delete the uploaded certificates' proxy token: %+v", third.Rows)
	}
	lc.wantNoUploadedCerts(t)
}

func (lc *lifecycle) testApplyRejoins(t *testing.T) {
	report := lc.apply(t, lc.full)
	ran := changedSteps(report)
	if !ran["join-masters/master2"] || ran["init/master0"] || ran["join-workers/worker1"] {
		t.Errorf("steps that ran: %v; want master2's join only", ran)
	}
	lc.wantEtcd(t, "master0", "master1", "master2")
	lc.wantUpstream(t, "master0", "master1", "master2")
	lc.wantNodes(t, "master0", "master1", "master2", "worker0", "worker1", "worker2")
}

// testRemoveGone: master2 and worker2 die (links cut for good); remove
// --gone takes them out of the load balancer, etcd and the API without
// running anything on them, and refuses a node that answers and the lock's
// master. Then the dead machines are replaced by fresh ones.
func (lc *lifecycle) testRemoveGone(t *testing.T) {
	ctx := context.Background()
	gone := playbooks.DefaultRemoveOptions()
	gone.Gone = true
	for _, h := range []string{"master2", "worker2"} {
		if err := lc.c.LinkDown(h); err != nil {
			t.Fatal(err)
		}
		defer lc.c.LinkUp(h)
	}
	_, err := playbooks.Remove(ctx, lc.session(t, lc.full, nil), []string{"worker0", "worker2"}, gone)
	if err == nil || !strings.Contains(err.Error(), "worker0 answer(s) over SSH: remove without --gone") || strings.Contains(err.Error(), "worker2 answer") {
		t.Errorf("remove --gone of a live worker0: %v, want it refused naming worker0 only", err)
	}
	_, err = playbooks.Remove(ctx, lc.session(t, lc.full, nil), []string{"master0"}, gone)
	if err == nil || !strings.Contains(err.Error(), "holds the cluster lock; list another master first") {
		t.Errorf("remove --gone of master0: %v, want it refused with the way out", err)
	}
	lc.wantNodes(t, "master0", "master1", "master2", "worker0", "worker1", "worker2") // refusals change nothing

	report, err := playbooks.Remove(ctx, lc.session(t, lc.full, nil), []string{"master2", "worker2"}, gone)
	if err != nil {
		t.Fatalf("remove --gone master2 worker2: %v\n%s", err, lc.out.buf.String())
	}
	ran := changedSteps(report)
	if !ran["loadbalancer/lb"] || !ran["etcd-member/master2"] || !ran["delete-node/master2"] || !ran["delete-node/worker2"] {
		t.Errorf("steps that ran: %v; want the upstream, master2's etcd member and both Nodes", ran)
	}
	for _, e := range report.Events {
		if e.Step == "drain" || e.Step == "reset" {
			t.Errorf("remove --gone ran %s on %s", e.Step, e.Host)
		}
	}
	lc.wantUpstream(t, "master0", "master1")
	lc.wantEtcd(t, "master0", "master1")
	lc.wantNodes(t, "master0", "master1", "worker0", "worker1")
	again, err := playbooks.Remove(ctx, lc.session(t, lc.full, nil), []string{"master2", "worker2"}, gone)
	if err != nil || again.Changed() {
		t.Errorf("a second remove --gone: %v, changes %v; want none", err, changedSteps(again))
	}

	// New machines in the dead ones' place: nothing of the old join.
	for _, h := range []string{"master2", "worker2"} {
		if err := lc.c.LinkUp(h); err != nil {
			t.Fatal(err)
		}
		if out, err := lc.c.Exec(h, "sh", "-c", "kubeadm reset -f >/dev/null 2>&1; rm -rf /var/lib/etcd/*; test ! -e /etc/kubernetes/kubelet.conf"); err != nil {
			t.Fatalf("replace %s by a fresh machine: %v %s", h, err, out)
		}
	}
}

func (lc *lifecycle) testNoSecrets(t *testing.T) {
	// Every session's redactor is checked at its cleanup; here the output
	// is also searched for anything shaped like a token or a key.
	out := lc.out.buf.String()
	if m := regexp.MustCompile(`[a-z0-9]{6}\.[a-z0-9]{16}`).FindString(out); m != "" {
		t.Errorf("a bootstrap token appears in the output: %s…", m[:7])
	}
	if strings.Contains(out, "PRIVATE KEY") {
		t.Error("a private key appears in the output")
	}
	if len(out) < 1000 {
		t.Errorf("only %d bytes of output collected: the check above would prove nothing", len(out))
	}
	st, err := os.Stat(lc.kubeconfig)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig: %v %v, want mode 0600", st, err)
	}
}

// testNoSecretOnCommandLines: apply, join and rotate-tokens ran as a sudo
// user; no token or certificate key they made was ever on a command line
// another local user could read, nor in sudo's log on any host.
func (lc *lifecycle) testNoSecretOnCommandLines(t *testing.T) {
	lc.cmdlines.Stop()
	lines, samples := lc.cmdlines.Seen()
	if samples < 1000 || len(lines) < 50 {
		t.Fatalf("only %d samples, %d distinct command lines: the watcher saw too little to prove anything", samples, len(lines))
	}
	var logged int
	for _, h := range []string{"lb", "master0", "master1", "master2", "worker0", "worker1", "worker2"} {
		log, err := lc.c.Exec(h, "cat", sim.SudoLogFile)
		if err != nil {
			t.Fatalf("%s: read sudo's log: %v", h, err)
		}
		for _, l := range strings.Split(string(log), "\n") {
			if l != "" {
				logged++
				lines = append(lines, l)
			}
		}
	}
	if logged < 100 {
		t.Fatalf("sudo logged only %d commands on the hosts: the run did not go through sudo", logged)
	}
	found := 0
lines:
	for _, l := range lines {
		for _, tok := range lc.byHand {
			if strings.Contains(l, tok) && strings.Contains(l, "kubeadm join") {
				continue lines // the test's own join by hand
			}
		}
		for _, redact := range lc.redactors {
			if redact(l) != l {
				found++
				t.Errorf("a secret of the run is on a command line or in sudo's log: %.60s…", redact(l))
				break
			}
		}
	}
	if found == 0 {
		reliability.Record(t, reliability.Row{N: 16, Did: fmt.Sprintf("no token or certificate key of %d sessions in %d distinct command lines (%d samples of /proc every %s) nor in %d sudo log lines on 7 hosts; tokens are made through the API, the certificate key is read by kubeadm from a 0600 file removed in the same command",
			len(lc.redactors), len(lines)-logged, samples, cmdlineInterval, logged), Rerun: "not needed: nothing to fix"})
	}
}

func (lc *lifecycle) testResetThenApply(t *testing.T) {
	report, err := playbooks.Reset(context.Background(), lc.session(t, lc.full, nil))
	if err != nil {
		t.Fatalf("reset: %v\n%s", err, lc.out.buf.String())
	}
	if !report.Changed() {
		t.Error("reset changed nothing")
	}
	for _, h := range []string{"master0", "master1", "master2", "worker0", "worker1", "worker2"} {
		if _, err := lc.c.Exec(h, "test", "-e", "/etc/kubernetes/kubelet.conf"); err == nil {
			t.Errorf("%s still has kubelet.conf", h)
		}
	}
	if _, err := lc.c.Exec("lb", "test", "-e", "/etc/nginx/fleet.d/kube-apiserver.conf"); err == nil {
		t.Error("the load balancer still has fleet's config")
	}
	again, err := playbooks.Reset(context.Background(), lc.session(t, lc.full, nil))
	if err != nil || again.Changed() {
		t.Errorf("a second reset: %v, changed %v", err, again.Changes())
	}
	lc.apply(t, lc.full)
	lc.wantNodes(t, "master0", "master1", "master2", "worker0", "worker1", "worker2")
	lc.wantEtcd(t, "master0", "master1", "master2")
}

// changedSteps names the step/host pairs that ran and changed something.
func changedSteps(r *steps.Report) map[string]bool {
	ran := map[string]bool{}
	for _, e := range r.Changes() {
		ran[e.Step+"/"+e.Host] = true
	}
	return ran
}

// wantNodes checks the cluster's Nodes are exactly these, all Ready.
func (lc *lifecycle) wantNodes(t *testing.T, want ...string) {
	t.Helper()
	nodes, err := lc.client(t).CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range nodes.Items {
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				got = append(got, n.Name)
			}
		}
	}
	slices.Sort(got)
	if strings.Join(got, ",") != strings.Join(want, ",") || len(nodes.Items) != len(want) {
		t.Errorf("Ready nodes %v of %d, want %v", got, len(nodes.Items), want)
	}
}

func (lc *lifecycle) waitReady(t *testing.T, node string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		n, err := lc.client(t).CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
		if err == nil {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return
				}
			}
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("%s not Ready in 2m", node)
}

func (lc *lifecycle) wantEtcd(t *testing.T, want ...string) {
	t.Helper()
	members, err := lc.c.EtcdMembers("master0")
	if err != nil || strings.Join(members, ",") != strings.Join(want, ",") {
		t.Errorf("etcd members %v %v, want %v", members, err, want)
	}
}

func (lc *lifecycle) wantUpstream(t *testing.T, want ...string) {
	t.Helper()
	conf, err := os.ReadFile(filepath.Join(lc.c.Host("lb").Dir, "etc/nginx/fleet.d/kube-apiserver.conf"))
	if err != nil {
		t.Fatal(err)
	}
	got := regexp.MustCompile(`(?m)# (master\d+)$`).FindAllStringSubmatch(string(conf), -1)
	var names []string
	for _, m := range got {
		names = append(names, m[1])
	}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("nginx upstream %v, want %v", names, want)
	}
}

// wantServes: the master's own API server answers /readyz with the
// cluster CA, so the upstream entry leads somewhere.
func (lc *lifecycle) wantServes(t *testing.T, master string) {
	t.Helper()
	ca, err := os.ReadFile(filepath.Join(lc.c.Host(master).Dir, "etc/kubernetes/pki/ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get("https://" + lc.c.Host(master).Address + ":6443/readyz")
	if err != nil {
		t.Fatalf("%s's API server: %v", master, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("%s /readyz: %s", master, resp.Status)
	}
}
