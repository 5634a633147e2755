package playbooks

import (
	"reflect"
	"testing"

	"github.com/fleetops/fleet/internal/chart"
)

func obj(kind, ns, name, yaml string) chart.Object {
	return chart.Object{APIVersion: "v1", Kind: kind, Namespace: ns, Name: name, YAML: []byte(yaml)}
}

func TestByNamespace(t *testing.T) {
	objs := []chart.Object{
		obj("Role", "zeta", "a", ""), obj("ClusterRole", "", "b", ""), obj("ConfigMap", "kube-system", "c", ""),
		obj("Role", "alpha", "d", ""), obj("ConfigMap", "", "e", ""),
	}
	var got [][]string
	for _, g := range byNamespace(objs, "kube-system") {
		names := []string{g.namespace}
		for _, o := range g.objects {
			names = append(names, o.Name)
		}
		got = append(got, names)
	}
	// The release's namespace first (cluster-scoped objects ride in it),
	// the others sorted, each in the objects' order.
	want := [][]string{{"kube-system", "b", "c", "e"}, {"alpha", "d"}, {"zeta", "a"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("groups %v, want %v", got, want)
	}
}

func TestRecordJobs(t *testing.T) {
	job := obj("Job", "", "certs", "kind: Job\nv: 1\n")
	cm := obj("ConfigMap", "", "conf", "kind: ConfigMap\n")
	key := job.Key("kube-system")
	rec := &record{Objects: map[string]string{key: objectHash(job), cm.Key("kube-system"): objectHash(cm)}}
	changed := obj("Job", "", "certs", "kind: Job\nv: 2\n")
	tests := []struct {
		name             string
		rec              *record
		o                chart.Object
		ranOnce, changed bool
	}{
		{"a Job applied as rendered has run", rec, job, true, false},
		{"a Job rendered differently is made again", rec, changed, false, true},
		{"a Job never applied runs", &record{Objects: map[string]string{}}, job, false, false},
		{"a Job added by a cut-short apply runs", &record{Objects: map[string]string{key: ""}}, changed, false, false},
		{"no record at all", nil, job, false, false},
		{"other kinds are always applied", rec, cm, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k := tc.o.Key("kube-system")
			if got := tc.rec.ranOnce(tc.o, k); got != tc.ranOnce {
				t.Errorf("ranOnce = %v", got)
			}
			if got := tc.rec.changedJob(tc.o, k); got != tc.changed {
				t.Errorf("changedJob = %v", got)
			}
		})
	}
}

func TestReleaseStateSummary(t *testing.T) {
	tests := []struct {
		st   releaseState
		done bool
		want string
	}{
		{releaseState{recorded: true}, true, "the release's record to finish"},
		{releaseState{}, false, "the release's record to finish"},
		{releaseState{recorded: true, added: []string{"a", "b"}, changed: 1, removed: []string{"kube-system/ConfigMap/old"}}, false,
			"2 objects to add, 1 object to change, 1 object to remove (kube-system/ConfigMap/old)"},
		{releaseState{recorded: true, crdsMissing: true, lateWaiting: true}, false, "its CRDs to create, objects waiting for CRDs its operator creates"},
		{releaseState{recorded: true, removed: []string{"a", "b", "c", "d", "e", "f", "g"}}, false, "7 objects to remove (a, b, c, d, e, and 2 more)"},
	}
	for _, tc := range tests {
		if tc.st.done() != tc.done || tc.st.summary() != tc.want {
			t.Errorf("%+v: done %v %q, want %v %q", tc.st, tc.st.done(), tc.st.summary(), tc.done, tc.want)
		}
	}
}

func TestNamespaceObjectOnlyForNewNamespaces(t *testing.T) {
	if n := (&release{namespace: "kube-system"}).namespaceObject(); n != nil {
		t.Errorf("kube-system made: %v", n)
	}
	n := (&release{namespace: "apps"}).namespaceObject()
	if len(n) != 1 || n[0].Kind != "Namespace" || n[0].Name != "apps" {
		t.Errorf("apps: %v", n)
	}
}
