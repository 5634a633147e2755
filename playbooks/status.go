package playbooks

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// Answer is a yes or no that fleet may not know: the host or the API
// could not be asked. A status never says "no" for "could not tell".
type Answer int8

const (
	Unknown Answer = iota
	No
	Yes
)

func answer(b bool) Answer {
	if b {
		return Yes
	}
	return No
}

func (a Answer) String() string {
	switch a {
	case Yes:
		return "yes"
	case No:
		return "no"
	}
	return "?"
}

// NodeStatus is one row of `fleet status`.
type NodeStatus struct {
	Host           string
	Role           inventory.Role
	Reachable      bool
	Joined         Answer // kubelet.conf on the host
	Ready          Answer // Node Ready in the API
	KubeletVersion string // as the Node reports it
	Cordoned       bool   // the Node is unschedulable
	// UpgradingTo is the version a fleet upgrade that cordoned the node
	// was moving it to ("" when fleet upgrade did not cordon it).
	UpgradingTo    string
	KubeadmVersion string // kubeadm version -o short on the host
	EtcdMember     Answer // an etcd static pod runs for it
	InUpstream     Answer // listed in the load balancer's upstream
	// LocalProxy: with a node-local proxy, whether an API server answers
	// through the node's 127.0.0.1 (its proxy; a master's own API server).
	LocalProxy Answer
	// ControlPlane sums up a master's static pods from their mirror pods:
	// "ok", or each one that is not ready, why, and its restarts; "?" when
	// the API could not be asked, or the host cannot and the API's view
	// of it is old.
	ControlPlane string
	// LastHeard is how long ago the node's kubelet last renewed its Lease;
	// past nodeGrace the API's view of the node is stale.
	LastHeard time.Duration
	Stale     bool
	Err       error // why the host could not be asked
}

// nodeGrace is the node controller's default grace period: a kubelet that
// has not renewed its Lease for longer is presumed gone.
const nodeGrace = 40 * time.Second

var upstreamLine = regexp.MustCompile(`(?m)^\s*server \S+; # (\S+)$`)

// statusScript answers whether the node joined, and which kubeadm it has
// (size, mtime and path: the same file on many nodes is asked once).
const statusScript = `test -e ` + kubeletConf + ` && echo joined=yes || echo joined=no
k=$(command -v kubeadm) && echo "kubeadm=$(stat -c '%s %Y' "$k") $k"; :`

// Status asks the hosts (in parallel) and the API (through the load
// balancer, with the admin.conf of the first master that answers) how the
// cluster stands. It changes nothing.
func Status(ctx context.Context, s *Session) ([]NodeStatus, error) {
	var rows []NodeStatus
	for _, h := range s.Inv.Hosts() {
		if h.Role == inventory.RoleMaster || h.Role == inventory.RoleWorker {
			rows = append(rows, NodeStatus{Host: h.Name, Role: h.Role})
		}
	}
	index := map[string]*NodeStatus{}
	for i := range rows {
		index[rows[i].Host] = &rows[i]
	}
	var mu sync.Mutex
	kubeadms := map[string][]string{} // "size mtime path" of a kubeadm -> the hosts that have it
	g := steps.New()
	g.MustAdd(steps.Step{Name: "status", Description: "read each node's kubeadm state and version",
		Hosts: namesOf(rows), ReadOnly: true, Run: func(ctx context.Context, host string) error {
			res, err := s.run(ctx, host, statusScript)
			proxy := Unknown
			if err == nil && s.Inv.Cluster.NodeLocalProxy {
				proxy = localProxyAnswers(ctx, s.probe(), s.Inv, host)
			}
			mu.Lock()
			defer mu.Unlock()
			r := index[host]
			if err != nil {
				r.Err = err
				return nil // a row that says so, not a failed status
			}
			r.Reachable = true
			r.Joined = answer(strings.Contains(res.Stdout, "joined=yes"))
			r.LocalProxy = proxy
			for _, line := range strings.Split(res.Stdout, "\n") {
				if id, ok := strings.CutPrefix(line, "kubeadm="); ok && len(strings.Fields(id)) == 3 {
					kubeadms[id] = append(kubeadms[id], host)
				}
			}
			return nil
		}})
	if _, err := s.Run(ctx, g); err != nil {
		return rows, err
	}
	// Starting kubeadm (a large program) on every node is most of what
	// status costs: each distinct kubeadm is asked its version once, on
	// one of the nodes that have it.
	ids := slices.Sorted(maps.Keys(kubeadms))
	versions, _ := onEach(ids, 0, func(id string) (string, error) {
		path := strings.Fields(id)[2]
		res, err := s.run(ctx, kubeadms[id][0], exec.Command(path, "version", "-o", "short")+" 2>/dev/null || :")
		return strings.TrimSpace(res.Stdout), err
	})
	for i, id := range ids {
		for _, host := range kubeadms[id] {
			index[host].KubeadmVersion = versions[i]
		}
	}
	if s.Inv.LoadBalancer == nil {
		// No balancer: no upstream to be in (the column says "?").
	} else if conf, err := s.readFile(ctx, s.Inv.LoadBalancer.Name, lbLiveStream(s.Inv)); err == nil {
		for _, r := range rows {
			r := index[r.Host]
			r.InUpstream = No
		}
		for _, m := range upstreamLine.FindAllStringSubmatch(string(conf), -1) {
			if r := index[m[1]]; r != nil {
				r.InUpstream = Yes
			}
		}
	}
	err := fillFromAPI(ctx, s, index, time.Now())
	if err != nil {
		for i := range rows {
			rows[i].ControlPlane = "?"
		}
	}
	return rows, err
}

// fillFromAPI completes the rows from the API, through the load balancer
// with the admin.conf of the first initialised master that answers: a
// status must work with master0 down.
func fillFromAPI(ctx context.Context, s *Session, index map[string]*NodeStatus, now time.Time) error {
	access, err := connectCluster(ctx, s)
	if err != nil {
		return err
	}
	return fillFromClient(ctx, access.client, index, now)
}

// fillFromClient is fillFromAPI once connected.
func fillFromClient(ctx context.Context, client kubernetes.Interface, index map[string]*NodeStatus, now time.Time) error {
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes through the load balancer: %w", err)
	}
	pods, err := client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "tier=control-plane"})
	if err != nil {
		return fmt.Errorf("list control-plane pods: %w", err)
	}
	leases, err := client.CoordinationV1().Leases(corev1.NamespaceNodeLease).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list node leases: %w", err)
	}
	// The API answered: what it does not list is a no.
	for _, r := range index {
		r.Ready = No
		if r.Role == inventory.RoleMaster {
			r.EtcdMember = No
		}
	}
	marked := map[string]bool{}
	for _, n := range nodes.Items {
		r := index[n.Name]
		if r == nil {
			continue
		}
		_, marked[n.Name] = n.Labels[controlPlaneLabel]
		r.KubeletVersion = n.Status.NodeInfo.KubeletVersion
		r.Cordoned, r.UpgradingTo = n.Spec.Unschedulable, n.Annotations[upgradeCordoned]
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				r.Ready = answer(c.Status == corev1.ConditionTrue)
			}
		}
	}
	for _, l := range leases.Items {
		if r := index[l.Name]; r != nil && l.Spec.RenewTime != nil {
			r.LastHeard = now.Sub(l.Spec.RenewTime.Time)
			r.Stale = r.LastHeard > nodeGrace
		}
	}
	problems := map[string][]string{}
	for _, p := range pods.Items {
		r := index[p.Spec.NodeName]
		if r == nil {
			continue
		}
		if p.Labels["component"] == "etcd" {
			r.EtcdMember = Yes
		}
		if problem := podProblem(&p); problem != "" {
			problems[r.Host] = append(problems[r.Host], problem)
		}
		r.ControlPlane = "ok"
	}
	for host, ps := range problems {
		sort.Strings(ps)
		index[host].ControlPlane = strings.Join(ps, "; ")
	}
	for _, r := range index {
		switch {
		case r.Role == inventory.RoleMaster && r.Joined == Yes && !marked[r.Host]:
			r.ControlPlane = "join cut short (Node not marked control-plane): fleet apply redoes it"
		case r.ControlPlane != "" && !r.Reachable && r.Stale:
			// The mirror pods are what the kubelet last reported.
			r.ControlPlane = fmt.Sprintf("? (host unreachable; the API's view, %s old: %s)", r.LastHeard.Round(time.Second), r.ControlPlane)
		}
	}
	return nil
}

// podProblem says what is wrong with a control-plane pod, or "": a
// container not ready, why (CrashLoopBackOff...), and how often it restarted.
func podProblem(p *corev1.Pod) string {
	for _, c := range p.Status.ContainerStatuses {
		if c.Ready {
			continue
		}
		why := "not ready"
		if c.State.Waiting != nil && c.State.Waiting.Reason != "" {
			why = c.State.Waiting.Reason
		}
		name := p.Labels["component"]
		if name == "" {
			name = c.Name
		}
		return fmt.Sprintf("%s: %s, %d restarts", name, why, c.RestartCount)
	}
	return ""
}

func namesOf(rows []NodeStatus) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Host
	}
	return out
}

// NodesByJoined asks every master and worker over SSH, in parallel,
// whether it has joined (its kubelet.conf): what shell completion offers
// to join and to remove. A host that does not answer is in neither list.
func NodesByJoined(ctx context.Context, s *Session) (joined, unjoined []string) {
	var nodes []string
	for _, h := range s.Inv.Hosts() {
		if h.Role == inventory.RoleMaster || h.Role == inventory.RoleWorker {
			nodes = append(nodes, h.Name)
		}
	}
	answers, errs := onEach(nodes, 0, func(h string) (bool, error) { return s.allExist(ctx, h, kubeletConf) })
	for i, n := range nodes {
		switch {
		case errs[i] != nil:
		case answers[i]:
			joined = append(joined, n)
		default:
			unjoined = append(unjoined, n)
		}
	}
	return joined, unjoined
}
