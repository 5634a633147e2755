package playbooks

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/fleetops/fleet/internal/chart"
)

// release is one named set of objects fleet applies to the cluster and
// keeps: the network, or an addon. It is applied server-side with kubectl
// on the first master (the manifests go on kubectl's stdin), and recorded
// in a ConfigMap, so that objects a later render no longer has are
// deleted and a changed chart version or values is an update of the same
// objects.
type release struct {
	name      string // "network", "addon-NAME": the record's name
	namespace string // of objects that name none
	source    string // what it came from, for messages
	crds      []chart.Object
	objects   []chart.Object
	// late objects need CRDs that something the release starts creates
	// (the Cilium operator): applied once lateCRDs are Established.
	late     []chart.Object
	lateCRDs []string
}

// fieldManager is who owns the fields fleet applies.
const fieldManager = "fleet"

// releaseCRDTimeout bounds the wait for CRDs: the chart's own (the API
// server takes a second), and late ones (an operator's first start,
// image pull included).
const (
	chartCRDTimeout = time.Minute
	lateCRDTimeout  = 10 * time.Minute
)

// systemNamespaces exist in every cluster: never created, never deleted.
var systemNamespaces = []string{"default", "kube-system", "kube-public", "kube-node-lease"}

func (r *release) recordName() string { return "fleet-release-" + r.name }

// all is every object the release has now, late ones included.
func (r *release) all() []chart.Object {
	return slices.Concat(r.namespaceObject(), r.crds, r.objects, r.late)
}

// namespaceObject creates the release's namespace when it is not one
// every cluster has (and is never pruned: deleting a namespace deletes
// all in it).
func (r *release) namespaceObject() []chart.Object {
	if slices.Contains(systemNamespaces, r.namespace) {
		return nil
	}
	return []chart.Object{{APIVersion: "v1", Kind: "Namespace", Name: r.namespace,
		YAML: []byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + r.namespace + "\n")}}
}

// keys are the release's objects as the record lists them.
func (r *release) keys() []string {
	var keys []string
	for _, o := range r.all() {
		keys = append(keys, o.Key(r.namespace))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// digest changes whenever any object's YAML does.
func (r *release) digest() string {
	h := sha256.New()
	for _, o := range r.all() {
		h.Write(o.YAML)
		h.Write([]byte{0})
	}
	return fmt.Sprintf("sha256:%x", h.Sum(nil))
}

// record is what the cluster holds of the release's last apply.
type record struct {
	Source  string   `json:"source"`
	Digest  string   `json:"digest"`
	Objects []string `json:"objects"`
}

// recordObject is the record as a ConfigMap in kube-system. It holds the
// objects' names and a digest, never their content (a chart's Secrets).
func (r *release) recordObject(rec record) (chart.Object, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return chart.Object{}, err
	}
	cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": r.recordName(), "namespace": "kube-system",
			"labels": map[string]any{"app.kubernetes.io/managed-by": "fleet"}},
		"data": map[string]any{"release": string(data)}}
	y, err := json.Marshal(cm) // JSON is YAML
	if err != nil {
		return chart.Object{}, err
	}
	return chart.Object{APIVersion: "v1", Kind: "ConfigMap", Namespace: "kube-system", Name: r.recordName(), YAML: y}, nil
}

// readRecord reads the release's record; nil when there is none.
func readRecord(ctx context.Context, pr probe, master, name string) (*record, error) {
	res, err := pr.query(ctx, master, kubectl("get", "configmap", "-n", "kube-system", "fleet-release-"+name,
		"--ignore-not-found", "-o", "jsonpath={.data.release}"))
	if err != nil {
		return nil, fmt.Errorf("read the record of %s: %w", name, err)
	}
	out := strings.TrimSpace(res.Stdout)
	if out == "" {
		return nil, nil
	}
	var rec record
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		return nil, fmt.Errorf("the record of %s (configmap fleet-release-%s in kube-system): %w", name, name, err)
	}
	return &rec, nil
}

// releaseState is how the cluster differs from the release.
type releaseState struct {
	added, removed []string // object keys: in the render and not the record, and the reverse
	changed        int      // objects kubectl diff finds different, beyond the added
	lateWaiting    bool     // the late objects' CRDs are not there yet
	recorded       bool
}

func (s releaseState) done() bool {
	return s.recorded && len(s.added) == 0 && len(s.removed) == 0 && s.changed == 0 && !s.lateWaiting
}

// summary is the plan's line: what an apply would do.
func (s releaseState) summary() string {
	var parts []string
	if n := len(s.added); n > 0 {
		parts = append(parts, plural(n, "object")+" to add")
	}
	if s.changed > 0 {
		parts = append(parts, plural(s.changed, "object")+" to change")
	}
	if n := len(s.removed); n > 0 {
		parts = append(parts, plural(n, "object")+" to remove ("+strings.Join(s.removed, ", ")+")")
	}
	if s.lateWaiting {
		parts = append(parts, "objects waiting for their CRDs")
	}
	if len(parts) == 0 {
		return "the release's record to write"
	}
	return strings.Join(parts, ", ")
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// diffHeader is one object in kubectl diff's output.
var diffHeader = regexp.MustCompile(`(?m)^diff -u -N `)

// state compares the cluster with the release: its record, and kubectl
// diff (server-side, as apply would send it) over every object whose
// kind the cluster knows.
func (r *release) state(ctx context.Context, pr probe, master string) (releaseState, error) {
	var st releaseState
	rec, err := readRecord(ctx, pr, master, r.name)
	if err != nil {
		return st, err
	}
	keys := r.keys()
	var old []string
	if rec != nil {
		st.recorded, old = true, rec.Objects
	}
	for _, k := range keys {
		if !slices.Contains(old, k) {
			st.added = append(st.added, k)
		}
	}
	for _, k := range old {
		if !slices.Contains(keys, k) {
			st.removed = append(st.removed, k)
		}
	}
	objs := slices.Concat(r.namespaceObject(), r.crds, r.objects)
	if len(r.late) > 0 {
		ok, err := crdsExist(ctx, pr, master, r.lateCRDs)
		if err != nil {
			return st, err
		}
		if ok {
			objs = append(objs, r.late...)
		} else {
			st.lateWaiting = true
		}
	}
	diffs := 0
	for ns, group := range byNamespace(objs, r.namespace) {
		// kubectl diff exits 0 for no difference, 1 for differences.
		cmd := kubectl("diff", "--server-side", "--force-conflicts", "--field-manager="+fieldManager, "-n", ns, "-f", "-") + " 2>&1; echo \"exit=$?\""
		res, err := pr.queryInput(ctx, master, cmd, chart.Join(group))
		if err != nil {
			return st, err
		}
		out, code, _ := strings.Cut(res.Stdout, "exit=")
		switch strings.TrimSpace(code) {
		case "0", "1":
			diffs += len(diffHeader.FindAllStringIndex(out, -1))
		default:
			return st, fmt.Errorf("kubectl diff of %s failed (exit %s): %s", r.name, strings.TrimSpace(code), lastLines(out, 5))
		}
	}
	st.changed = max(0, diffs-len(st.added))
	return st, nil
}

// apply brings the cluster to the release: its CRDs first (waited for
// Established), then its objects, then the late objects once their CRDs
// exist; then deletes what the record has and the render no longer does.
// The record lists the union while objects are applied and the render
// after the prune, so a run cut anywhere leaves nothing unaccounted.
func (r *release) apply(ctx context.Context, rm remote, master string) error {
	rec, err := readRecord(ctx, rm.probe, master, r.name)
	if err != nil {
		return err
	}
	keys := r.keys()
	var old []string
	if rec != nil {
		old = rec.Objects
	}
	union := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(old), keys...))))
	if err := r.writeRecord(ctx, rm, master, record{Source: r.source, Digest: "applying", Objects: union}); err != nil {
		return err
	}
	if err := r.applyObjects(ctx, rm, master, r.namespaceObject()); err != nil {
		return err
	}
	if len(r.crds) > 0 {
		if err := r.applyObjects(ctx, rm, master, r.crds); err != nil {
			return err
		}
		if err := waitCRDs(ctx, rm, master, crdNames(r.crds), chartCRDTimeout); err != nil {
			return err
		}
	}
	if err := r.applyObjects(ctx, rm, master, r.objects); err != nil {
		return err
	}
	if len(r.late) > 0 {
		rm.note("", master, fmt.Sprintf("%s: waiting for %s", r.name, strings.Join(r.lateCRDs, ", ")))
		if err := waitCRDs(ctx, rm, master, r.lateCRDs, lateCRDTimeout); err != nil {
			return err
		}
		if err := r.applyObjects(ctx, rm, master, r.late); err != nil {
			return err
		}
	}
	for _, k := range old {
		if slices.Contains(keys, k) {
			continue
		}
		if err := deleteObject(ctx, rm, master, k); err != nil {
			return err
		}
		rm.note("", master, fmt.Sprintf("%s: deleted %s (no longer in %s)", r.name, k, r.source))
	}
	return r.writeRecord(ctx, rm, master, record{Source: r.source, Digest: r.digest(), Objects: keys})
}

func (r *release) writeRecord(ctx context.Context, rm remote, master string, rec record) error {
	obj, err := r.recordObject(rec)
	if err != nil {
		return err
	}
	return r.applyObjects(ctx, rm, master, []chart.Object{obj})
}

// applyObjects applies server-side, one kubectl per namespace, fleet
// taking over fields another manager set (the chart owns them now).
func (r *release) applyObjects(ctx context.Context, rm remote, master string, objs []chart.Object) error {
	for ns, group := range byNamespace(objs, r.namespace) {
		cmd := kubectl("apply", "--server-side", "--force-conflicts", "--field-manager="+fieldManager, "-n", ns, "-f", "-")
		if _, err := rm.runInput(ctx, master, cmd, chart.Join(group)); err != nil {
			return fmt.Errorf("apply %s (%s): %w", r.name, r.source, err)
		}
	}
	return nil
}

// byNamespace groups objects by the namespace kubectl gets them in (-n):
// their own, or the release's for those that name none (cluster-scoped
// objects among them: kubectl ignores -n for them).
func byNamespace(objs []chart.Object, def string) map[string][]chart.Object {
	groups := map[string][]chart.Object{}
	for _, o := range objs {
		ns := o.Namespace
		if ns == "" {
			ns = def
		}
		groups[ns] = append(groups[ns], o)
	}
	return groups
}

func crdNames(crds []chart.Object) []string {
	var names []string
	for _, c := range crds {
		names = append(names, c.Name)
	}
	return names
}

// crdsExist: every named CRD is registered and Established.
func crdsExist(ctx context.Context, pr probe, master string, names []string) (bool, error) {
	args := []string{"get", "crd", "--ignore-not-found", "-o", `jsonpath={range .items[*]}{.metadata.name}{" "}{.status.conditions[?(@.type=="Established")].status}{"\n"}{end}`}
	res, err := pr.query(ctx, master, kubectl(append(args, names...)...))
	if err != nil {
		return false, err
	}
	established := map[string]bool{}
	for _, line := range strings.Split(res.Stdout, "\n") {
		if name, status, ok := strings.Cut(strings.TrimSpace(line), " "); ok && status == "True" {
			established[name] = true
		}
	}
	for _, n := range names {
		if !established[n] {
			return false, nil
		}
	}
	return true, nil
}

// waitCRDs waits for CRDs to be created, then Established.
func waitCRDs(ctx context.Context, rm remote, master string, names []string, timeout time.Duration) error {
	crds := make([]string, len(names))
	for i, n := range names {
		crds[i] = "crd/" + n
	}
	t := "--timeout=" + timeout.String()
	cmd := kubectl(append([]string{"wait", "--for=create", t}, crds...)...) + " && " +
		kubectl(append([]string{"wait", "--for=condition=Established", t}, crds...)...)
	if _, err := rm.run(ctx, master, cmd); err != nil {
		return fmt.Errorf("wait for CRDs %s: %w", strings.Join(names, ", "), err)
	}
	return nil
}

// deleteObject deletes one recorded object ("ns/Kind.group/name"); a
// Namespace never (deleting one deletes everything in it).
func deleteObject(ctx context.Context, rm remote, master, key string) error {
	ns, ref, ok := strings.Cut(key, "/")
	if !ok || strings.HasPrefix(ref, "Namespace/") {
		return nil
	}
	if _, err := rm.run(ctx, master, kubectl("delete", "--ignore-not-found", "--wait=false", "-n", ns, ref)); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// daemonSets are the release's DaemonSets: a network's agents.
func (r *release) daemonSets() []chart.Object {
	var ds []chart.Object
	for _, o := range r.objects {
		if o.Kind == "DaemonSet" {
			ds = append(ds, o)
		}
	}
	return ds
}

// rolledOut waits for the release's DaemonSets to run, updated and
// ready, everywhere they should, up to timeout.
func (r *release) rolledOut(ctx context.Context, rm remote, master string, timeout time.Duration) error {
	for _, ds := range r.daemonSets() {
		ns := ds.Namespace
		if ns == "" {
			ns = r.namespace
		}
		cmd := kubectl("rollout", "status", "-n", ns, "daemonset/"+ds.Name, "--timeout="+timeout.String())
		if _, err := rm.run(ctx, master, cmd); err != nil {
			return fmt.Errorf("%s: daemonset %s/%s not rolled out within %s: %w", r.name, ns, ds.Name, timeout, err)
		}
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
