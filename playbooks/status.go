package playbooks

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fleetops/fleet/internal/steps"
	"github.com/fleetops/fleet/inventory"
)

// NodeStatus is one row of `fleet status`.
type NodeStatus struct {
	Host           string
	Role           inventory.Role
	Reachable      bool
	Joined         bool   // kubelet.conf on the host
	Ready          bool   // Node Ready in the API
	KubeletVersion string // as the Node reports it
	KubeadmVersion string // kubeadm version -o short on the host
	EtcdMember     bool   // an etcd static pod runs for it
	InUpstream     bool   // listed in the load balancer's upstream
	// ControlPlane sums up a master's static pods from their mirror pods:
	// "ok", or each one that is not ready, why, and its restarts.
	ControlPlane string
	Err          error // why the host could not be asked
}

var upstreamLine = regexp.MustCompile(`(?m)^\s*server \S+; # (\S+)$`)

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
	g := steps.New()
	g.MustAdd(steps.Step{Name: "status", Description: "read each node's kubeadm state and version",
		Hosts: namesOf(rows), ReadOnly: true, Run: func(ctx context.Context, host string) error {
			res, err := s.run(ctx, host, `test -e `+kubeletConf+` && echo joined=yes || echo joined=no; echo "kubeadm=$(kubeadm version -o short 2>/dev/null)"`)
			mu.Lock()
			defer mu.Unlock()
			r := index[host]
			if err != nil {
				r.Err = err
				return nil // a row that says so, not a failed status
			}
			r.Reachable = true
			r.Joined = strings.Contains(res.Stdout, "joined=yes")
			for _, line := range strings.Split(res.Stdout, "\n") {
				if v, ok := strings.CutPrefix(line, "kubeadm="); ok {
					r.KubeadmVersion = v
				}
			}
			return nil
		}})
	if _, err := s.Run(ctx, g); err != nil {
		return rows, err
	}
	if conf, err := s.readFile(ctx, s.Inv.LoadBalancer.Name, lbLiveStream(s.Inv)); err == nil {
		for _, m := range upstreamLine.FindAllStringSubmatch(string(conf), -1) {
			if r := index[m[1]]; r != nil {
				r.InUpstream = true
			}
		}
	}
	return rows, fillFromAPI(ctx, s, index)
}

// fillFromAPI completes the rows from the API, through the load balancer
// with the admin.conf of the first initialised master that answers: a
// status must work with master0 down.
func fillFromAPI(ctx context.Context, s *Session, index map[string]*NodeStatus) error {
	access, err := connectCluster(ctx, s)
	if err != nil {
		return err
	}
	client := access.client
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("list nodes through the load balancer: %w", err)
	}
	marked := map[string]bool{}
	for _, n := range nodes.Items {
		r := index[n.Name]
		if r == nil {
			continue
		}
		_, marked[n.Name] = n.Labels[controlPlaneLabel]
		r.KubeletVersion = n.Status.NodeInfo.KubeletVersion
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				r.Ready = c.Status == corev1.ConditionTrue
			}
		}
	}
	pods, err := client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "tier=control-plane"})
	if err != nil {
		return fmt.Errorf("list control-plane pods: %w", err)
	}
	problems := map[string][]string{}
	for _, p := range pods.Items {
		r := index[p.Spec.NodeName]
		if r == nil {
			continue
		}
		if p.Labels["component"] == "etcd" {
			r.EtcdMember = true
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
		if r.Role == inventory.RoleMaster && r.Joined && !marked[r.Host] {
			r.ControlPlane = "join cut short (Node not marked control-plane): fleet apply redoes it"
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
