package playbooks

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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

// releaseLabel marks the records of fleet's releases.
const releaseLabel = "app.kubernetes.io/managed-by"

// fieldManager is who owns the fields fleet applies.
const fieldManager = "fleet"

// chartCRDTimeout bounds the wait for a chart's own CRDs (the API server
// takes a second); late ones wait as long as the run allows for the
// network (an operator's first start, image pull included).
const chartCRDTimeout = time.Minute

// systemNamespaces exist in every cluster: never created, never deleted.
var systemNamespaces = []string{"default", "kube-system", "kube-public", "kube-node-lease"}

// step is the step that applies the release, for its notes.
func (r *release) step() string {
	if r.name == "network" {
		return "network"
	}
	return "addons"
}

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

// hashes are the release's objects as the record lists them: key →
// the sha256 of the object's YAML.
func (r *release) hashes() map[string]string {
	out := map[string]string{}
	for _, o := range r.all() {
		out[o.Key(r.namespace)] = objectHash(o)
	}
	return out
}

func objectHash(o chart.Object) string { return fmt.Sprintf("%x", sha256.Sum256(o.YAML)) }

// record is what the cluster holds of the release's last apply: each
// object's key and the hash of the YAML applied ("" while an apply that
// adds it runs), and whether that apply is still under way. Names and
// hashes only, never content (a chart's Secrets).
type record struct {
	Source   string            `json:"source"`
	Applying bool              `json:"applying,omitempty"`
	Objects  map[string]string `json:"objects"`
}

// ranOnce: a Job fleet applied as it is rendered now. It is not applied
// again: it has run, and its TTL may have deleted it since (Cilium's
// certificate Job lives 30 minutes), which must not read as a change.
func (rec *record) ranOnce(o chart.Object, key string) bool {
	return rec != nil && o.Kind == "Job" && rec.Objects[key] == objectHash(o)
}

// changedJob: a Job fleet applied that the render changed. A Job's
// template cannot be changed in place: it is deleted and made again.
func (rec *record) changedJob(o chart.Object, key string) bool {
	h, ok := "", false
	if rec != nil {
		h, ok = rec.Objects[key]
	}
	return o.Kind == "Job" && ok && h != "" && h != objectHash(o)
}

// recordObject is the record as a ConfigMap in kube-system.
func (r *release) recordObject(rec record) (chart.Object, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return chart.Object{}, err
	}
	cm := map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": r.recordName(), "namespace": "kube-system",
			"labels": map[string]any{releaseLabel: "fleet"}},
		"data": map[string]any{"release": string(data)}}
	y, err := json.Marshal(cm) // JSON is YAML
	if err != nil {
		return chart.Object{}, err
	}
	return chart.Object{APIVersion: "v1", Kind: "ConfigMap", Namespace: "kube-system", Name: r.recordName(), YAML: y}, nil
}

// readRecord reads the release's record; nil when there is none.
func (r *release) readRecord(ctx context.Context, pr probe, master string) (*record, error) {
	res, err := pr.query(ctx, master, kubectl("get", "configmap", "-n", "kube-system", r.recordName(),
		"--ignore-not-found", "-o", "jsonpath={.data.release}"))
	if err != nil {
		return nil, fmt.Errorf("read the record of %s: %w", r.name, err)
	}
	out := strings.TrimSpace(res.Stdout)
	if out == "" {
		return nil, nil
	}
	var rec record
	if err := json.Unmarshal([]byte(out), &rec); err != nil {
		return nil, fmt.Errorf("the record of %s (configmap %s in kube-system): %w", r.name, r.recordName(), err)
	}
	return &rec, nil
}

// releaseState is how the cluster differs from the release.
type releaseState struct {
	added, removed []string // object keys: in the render and not the record, and the reverse
	changed        int      // objects kubectl diff finds different, beyond the added
	crdsMissing    bool     // the chart's own CRDs are not Established yet
	lateWaiting    bool     // the late objects' CRDs are not there yet
	recorded       bool     // a record exists, from a finished apply
}

func (s releaseState) done() bool {
	return s.recorded && len(s.added) == 0 && len(s.removed) == 0 && s.changed == 0 && !s.crdsMissing && !s.lateWaiting
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
		names := s.removed
		if n > maxNamed {
			names = append(slices.Clone(names[:maxNamed]), fmt.Sprintf("and %d more", n-maxNamed))
		}
		parts = append(parts, plural(n, "object")+" to remove ("+strings.Join(names, ", ")+")")
	}
	if s.crdsMissing {
		parts = append(parts, "its CRDs to create")
	}
	if s.lateWaiting {
		parts = append(parts, "objects waiting for CRDs its operator creates")
	}
	if len(parts) == 0 {
		return "the release's record to finish"
	}
	return strings.Join(parts, ", ")
}

// maxNamed objects are named in a plan's line; more are counted.
const maxNamed = 5

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
// kind and namespace the cluster has (the others count as changes).
func (r *release) state(ctx context.Context, pr probe, master string) (releaseState, error) {
	var st releaseState
	rec, err := r.readRecord(ctx, pr, master)
	if err != nil {
		return st, err
	}
	hashes := r.hashes()
	st.recorded = rec != nil && !rec.Applying
	for _, k := range slices.Sorted(maps.Keys(hashes)) {
		if rec == nil || rec.Objects[k] == "" {
			st.added = append(st.added, k)
		}
	}
	if rec != nil {
		for _, k := range slices.Sorted(maps.Keys(rec.Objects)) {
			if _, ok := hashes[k]; !ok {
				st.removed = append(st.removed, k)
			}
		}
	}
	if len(r.crds) > 0 {
		ok, err := crdsExist(ctx, pr, master, crdNames(r.crds))
		if err != nil {
			return st, err
		}
		if !ok {
			st.crdsMissing = true
			return st, nil // the objects may need them: nothing to diff yet
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
	objs = slices.DeleteFunc(objs, func(o chart.Object) bool { return rec.ranOnce(o, o.Key(r.namespace)) })
	namespaces, err := existingNamespaces(ctx, pr, master)
	if err != nil {
		return st, err
	}
	diffs := 0
	for _, g := range byNamespace(objs, r.namespace) {
		if !namespaces[g.namespace] {
			diffs += len(g.objects) // all to create, with their namespace
			continue
		}
		// kubectl diff exits 0 for no difference, 1 for differences.
		cmd := kubectl("diff", "--server-side", "--force-conflicts", "--field-manager="+fieldManager, "-n", g.namespace, "-f", "-")
		res, err := pr.queryInput(ctx, master, cmd, chart.Join(g.objects))
		if err != nil && res.ExitCode != 1 {
			return st, fmt.Errorf("kubectl diff of %s: %w", r.name, err)
		}
		diffs += len(diffHeader.FindAllStringIndex(res.Stdout, -1))
	}
	st.changed = max(0, diffs-len(st.added))
	return st, nil
}

func existingNamespaces(ctx context.Context, pr probe, master string) (map[string]bool, error) {
	res, err := pr.query(ctx, master, kubectl("get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}"))
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	out := map[string]bool{}
	for _, ns := range strings.Fields(res.Stdout) {
		out[ns] = true
	}
	return out, nil
}

// apply brings the cluster to the release: namespaces, then its CRDs
// (waited for Established), then its objects, then the late objects once
// their CRDs exist; then deletes what the record has and the render no
// longer does. The record lists the union while objects are applied and
// the render after the prune, so a run cut anywhere leaves nothing
// unaccounted.
func (r *release) apply(ctx context.Context, rm remote, master string, lateTimeout time.Duration) error {
	rec, err := r.readRecord(ctx, rm.probe, master)
	if err != nil {
		return err
	}
	hashes := r.hashes()
	union := map[string]string{}
	for k := range hashes {
		union[k] = "" // not applied yet
	}
	if rec != nil {
		maps.Copy(union, rec.Objects)
	}
	if err := r.writeRecord(ctx, rm, master, record{Source: r.source, Applying: true, Objects: union}); err != nil {
		return err
	}
	isNamespace := func(o chart.Object) bool { return o.Kind == "Namespace" }
	namespaces := append(r.namespaceObject(), slices.DeleteFunc(slices.Clone(r.objects), func(o chart.Object) bool { return !isNamespace(o) })...)
	if err := r.applyObjects(ctx, rm, master, namespaces); err != nil {
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
	var objs []chart.Object
	for _, o := range r.objects {
		key := o.Key(r.namespace)
		switch {
		case isNamespace(o), rec.ranOnce(o, key):
			continue
		case rec.changedJob(o, key):
			if err := deleteObject(ctx, rm, master, key, true); err != nil {
				return err
			}
		}
		objs = append(objs, o)
	}
	if err := r.applyObjects(ctx, rm, master, objs); err != nil {
		return err
	}
	if len(r.late) > 0 {
		if ok, err := crdsExist(ctx, rm.probe, master, r.lateCRDs); err != nil {
			return err
		} else if !ok {
			rm.note(r.step(), master, fmt.Sprintf("%s: waiting for %s", r.source, strings.Join(r.lateCRDs, ", ")))
			if err := waitCRDs(ctx, rm, master, r.lateCRDs, lateTimeout); err != nil {
				return err
			}
		}
		if err := r.applyObjects(ctx, rm, master, r.late); err != nil {
			return err
		}
	}
	if rec != nil {
		for _, k := range slices.Sorted(maps.Keys(rec.Objects)) {
			if _, keep := hashes[k]; keep {
				continue
			}
			if strings.Contains(k, "/Namespace/") {
				rm.note(r.step(), master, fmt.Sprintf("kept %s: not in %s, but a namespace is never deleted for you (it may hold more than fleet put there)", k, r.source))
				continue
			}
			if err := deleteObject(ctx, rm, master, k, false); err != nil {
				return err
			}
			rm.note(r.step(), master, fmt.Sprintf("deleted %s: not in %s", k, r.source))
		}
	}
	return r.writeRecord(ctx, rm, master, record{Source: r.source, Objects: hashes})
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
	for _, g := range byNamespace(objs, r.namespace) {
		cmd := kubectl("apply", "--server-side", "--force-conflicts", "--field-manager="+fieldManager, "-n", g.namespace, "-f", "-")
		if _, err := rm.runInput(ctx, master, cmd, chart.Join(g.objects)); err != nil {
			return fmt.Errorf("apply %s (%s): %w", r.name, r.source, err)
		}
	}
	return nil
}

// byNamespace groups objects by the namespace kubectl gets them in (-n):
// their own, or the release's for those that name none (cluster-scoped
// objects among them: kubectl ignores -n for them); the release's
// namespace first, the others sorted, each group in the objects' order.
func byNamespace(objs []chart.Object, def string) []nsGroup {
	var groups []nsGroup
	for _, o := range objs {
		ns := o.Namespace
		if ns == "" {
			ns = def
		}
		i := slices.IndexFunc(groups, func(g nsGroup) bool { return g.namespace == ns })
		if i < 0 {
			groups = append(groups, nsGroup{namespace: ns})
			i = len(groups) - 1
		}
		groups[i].objects = append(groups[i].objects, o)
	}
	slices.SortStableFunc(groups, func(a, b nsGroup) int {
		switch {
		case a.namespace == def:
			return -1
		case b.namespace == def:
			return 1
		}
		return strings.Compare(a.namespace, b.namespace)
	})
	return groups
}

type nsGroup struct {
	namespace string
	objects   []chart.Object
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
	// custom-columns reads one object and a list alike (a jsonpath over
	// .items would see nothing when one CRD is named).
	args := []string{"get", "crd", "--ignore-not-found", "--no-headers", "-o", `custom-columns=NAME:.metadata.name,ESTABLISHED:.status.conditions[?(@.type=="Established")].status`}
	res, err := pr.query(ctx, master, kubectl(append(args, names...)...))
	if err != nil {
		return false, err
	}
	established := map[string]bool{}
	for _, line := range strings.Split(res.Stdout, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == "True" {
			established[f[0]] = true
		}
	}
	for _, n := range names {
		if !established[n] {
			return false, nil
		}
	}
	return true, nil
}

// waitCRDs waits for CRDs to exist and be Established (asked every two
// seconds: kubectl's own wait --for=create is 1.31 and later).
func waitCRDs(ctx context.Context, rm remote, master string, names []string, timeout time.Duration) error {
	err := pollUntil(ctx, 2*time.Second, timeout, func(ctx context.Context) (bool, error) {
		return crdsExist(ctx, rm.probe, master, names)
	})
	if errors.Is(err, errPollTimeout) {
		return fmt.Errorf("CRDs %s not Established within %s", strings.Join(names, ", "), timeout)
	}
	return err
}

// deleteObject deletes one recorded object ("ns/Kind.group/name"); a
// Namespace never (deleting one deletes everything in it). wait: until
// it is gone (to make it again).
func deleteObject(ctx context.Context, rm remote, master, key string, wait bool) error {
	ns, ref, ok := strings.Cut(key, "/")
	if !ok || strings.HasPrefix(ref, "Namespace/") {
		return nil
	}
	if _, err := rm.run(ctx, master, kubectl("delete", "--ignore-not-found", fmt.Sprintf("--wait=%t", wait), "-n", ns, ref)); err != nil {
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
