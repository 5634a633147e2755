// Package chart renders a Helm chart on the operator's machine, the way
// `helm template` does (the Helm SDK's client-only install), into the
// Kubernetes objects fleet applies. Nothing here talks to a cluster.
package chart

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chartv2 "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/cli"
	"helm.sh/helm/v4/pkg/registry"
	release "helm.sh/helm/v4/pkg/release/v1"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	"sigs.k8s.io/yaml"
)

// Source names a chart: a local directory or .tgz, an oci:// reference,
// or a chart name in the repository at Repo.
type Source struct {
	Chart   string
	Repo    string
	Version string
}

// Request is one release to render.
type Request struct {
	Source
	Release     string // default: the chart's name
	Namespace   string
	Values      map[string]any
	KubeVersion string // the cluster's, for the chart's kubeVersion and Capabilities
}

// Object is one rendered Kubernetes object.
type Object struct {
	APIVersion string
	Kind       string
	Namespace  string // empty: cluster-scoped, or the release's namespace
	Name       string
	YAML       []byte
}

// Ref names the object the way `kubectl` does, e.g.
// "DaemonSet.apps/cilium" (the version left out: it does not change which
// object it is).
func (o Object) Ref() string {
	group := ""
	if i := strings.LastIndex(o.APIVersion, "/"); i >= 0 {
		group = "." + o.APIVersion[:i]
	}
	return o.Kind + group + "/" + o.Name
}

// Key tells objects apart across renders: the kind with its group, the
// namespace and the name.
func (o Object) Key(defaultNamespace string) string {
	ns := o.Namespace
	if ns == "" {
		ns = defaultNamespace
	}
	return ns + "/" + o.Ref()
}

// Rendered is what a chart produced.
type Rendered struct {
	Name, Version string   // the chart's, from Chart.yaml
	CRDs          []Object // the chart's crds/ folder: applied, and Established, first
	Objects       []Object // templates (and non-test hooks), in Helm's install order
}

// All is every object, CRDs first.
func (r *Rendered) All() []Object { return append(slices.Clone(r.CRDs), r.Objects...) }

// Render fetches the chart if it is remote and renders it with the
// request's values.
func Render(ctx context.Context, req Request) (*Rendered, error) {
	ch, err := load(req.Source)
	if err != nil {
		return nil, err
	}
	install := action.NewInstall(&action.Configuration{})
	install.DryRunStrategy = action.DryRunClient
	install.Replace = true // no release store to check the name against
	install.ReleaseName = req.Release
	if install.ReleaseName == "" {
		install.ReleaseName = ch.Metadata.Name
	}
	install.Namespace = req.Namespace
	install.IncludeCRDs = false // taken from the chart below, to order them first
	if req.KubeVersion != "" {
		kv, err := common.ParseKubeVersion(req.KubeVersion)
		if err != nil {
			return nil, fmt.Errorf("kubernetes version %q: %w", req.KubeVersion, err)
		}
		install.KubeVersion = kv
	}
	out, err := install.RunWithContext(ctx, ch, req.Values)
	if err != nil {
		return nil, fmt.Errorf("render chart %s %s: %w", ch.Metadata.Name, ch.Metadata.Version, err)
	}
	rel, ok := out.(*release.Release)
	if !ok {
		return nil, fmt.Errorf("render chart %s: the Helm SDK returned a %T", ch.Metadata.Name, out)
	}
	r := &Rendered{Name: ch.Metadata.Name, Version: ch.Metadata.Version}
	var crds bytes.Buffer
	for _, c := range ch.CRDObjects() {
		fmt.Fprintf(&crds, "---\n%s\n", c.File.Data)
	}
	if r.CRDs, err = Split(crds.String()); err != nil {
		return nil, fmt.Errorf("chart %s crds/: %w", ch.Metadata.Name, err)
	}
	manifest := rel.Manifest
	for _, h := range rel.Hooks {
		if !slices.Contains(h.Events, release.HookTest) {
			manifest += "\n---\n" + h.Manifest
		}
	}
	if r.Objects, err = Split(manifest); err != nil {
		return nil, fmt.Errorf("chart %s: %w", ch.Metadata.Name, err)
	}
	return r, nil
}

// Split parses a multi-document manifest into objects in Helm's install
// order (namespaces, CRDs and RBAC before the workloads that use them);
// empty documents are dropped, a document without kind or name is an error.
func Split(manifest string) ([]Object, error) {
	docs := releaseutil.SplitManifests(manifest)
	keys := make([]string, 0, len(docs))
	for k := range docs {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	var objs []Object
	for _, k := range keys {
		doc := strings.TrimSpace(docs[k])
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name      string `json:"name"`
				Namespace string `json:"namespace"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, fmt.Errorf("%s: %w", firstLine(doc), err)
		}
		if head.Kind == "" && head.APIVersion == "" && head.Metadata.Name == "" {
			continue // comments only
		}
		if head.Kind == "" || head.APIVersion == "" || head.Metadata.Name == "" {
			return nil, fmt.Errorf("an object without apiVersion, kind or name: %s", firstLine(doc))
		}
		objs = append(objs, Object{APIVersion: head.APIVersion, Kind: head.Kind,
			Namespace: head.Metadata.Namespace, Name: head.Metadata.Name, YAML: []byte(doc + "\n")})
	}
	sortByKind(objs)
	return objs, nil
}

// sortByKind puts objects in Helm's install order (a stable sort: objects
// of one kind keep the chart's order).
func sortByKind(objs []Object) {
	rank := func(kind string) int {
		if i := slices.Index(releaseutil.InstallOrder, kind); i >= 0 {
			return i
		}
		return len(releaseutil.InstallOrder)
	}
	slices.SortStableFunc(objs, func(a, b Object) int { return rank(a.Kind) - rank(b.Kind) })
}

// Join writes objects back as one multi-document manifest.
func Join(objs []Object) []byte {
	var b bytes.Buffer
	for _, o := range objs {
		b.WriteString("---\n")
		b.Write(o.YAML)
	}
	return b.Bytes()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// load reads a local chart, or downloads it (repository or OCI) into
// Helm's cache first.
func load(src Source) (*chartv2.Chart, error) {
	path := src.Chart
	if src.Repo != "" || registry.IsOCI(src.Chart) {
		if src.Version == "" {
			return nil, fmt.Errorf("chart %s: a chart fetched from a repository needs a version (fleet pins what it installs)", src.Chart)
		}
		// Install carries the registry client LocateChart needs for OCI.
		locate := action.NewInstall(&action.Configuration{})
		locate.RepoURL, locate.Version = src.Repo, src.Version
		settings := cli.New()
		if registry.IsOCI(src.Chart) {
			rc, err := registry.NewClient(registry.ClientOptCredentialsFile(settings.RegistryConfig))
			if err != nil {
				return nil, fmt.Errorf("chart %s: %w", src.Chart, err)
			}
			locate.SetRegistryClient(rc)
		}
		var err error
		if path, err = locate.LocateChart(src.Chart, settings); err != nil {
			return nil, fmt.Errorf("chart %s from %s: %w", src.Chart, orOCI(src.Repo), err)
		}
	} else if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("chart %s: %w", path, errors.Unwrap(err))
	}
	ch, err := loader.Load(path)
	if err != nil {
		return nil, fmt.Errorf("chart %s: %w", filepath.Base(path), err)
	}
	if src.Version != "" && ch.Metadata.Version != strings.TrimPrefix(src.Version, "v") {
		return nil, fmt.Errorf("chart %s is version %s, the inventory asks for %s", src.Chart, ch.Metadata.Version, src.Version)
	}
	if t := ch.Metadata.Type; t != "" && t != "application" {
		return nil, fmt.Errorf("chart %s is a %s chart: not installable", ch.Metadata.Name, t)
	}
	return ch, nil
}

func orOCI(repo string) string {
	if repo == "" {
		return "its OCI registry"
	}
	return repo
}
