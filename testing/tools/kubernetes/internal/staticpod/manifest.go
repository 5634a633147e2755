// Package staticpod runs the pods in a kubelet's static pod folder as host
// processes: each container's command and args, from PATH, restarted with
// back-off when it dies, stopped when its manifest goes, restarted when it
// changes. This is what the simulated hosts have instead of a container
// runtime.
package staticpod

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// Manifest is one static pod as read from disk.
type Manifest struct {
	File string
	Hash string // of the file's bytes: any edit is a change
	Pod  *corev1.Pod
}

// Key names a static pod the way the kubelet does: namespace/name.
func (m Manifest) Key() string { return m.Pod.Namespace + "/" + m.Pod.Name }

// Load reads every manifest in dir. A file that does not parse is reported
// and skipped, as the kubelet does; a missing dir is no pods.
func Load(dir string) ([]Manifest, []error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{err}
	}
	var out []Manifest
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") || strings.HasSuffix(name, ".json")) {
			continue
		}
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		m, err := Parse(path, data)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	return out, errs
}

// Parse reads one manifest.
func Parse(path string, data []byte) (Manifest, error) {
	pod := &corev1.Pod{}
	if err := yaml.UnmarshalStrict(data, pod); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", path, err)
	}
	if pod.Kind != "Pod" || pod.Name == "" || len(pod.Spec.Containers) == 0 {
		return Manifest{}, fmt.Errorf("%s: not a pod with a name and containers", path)
	}
	if pod.Namespace == "" {
		pod.Namespace = "default"
	}
	for _, c := range pod.Spec.Containers {
		if len(c.Command) == 0 {
			return Manifest{}, fmt.Errorf("%s: container %s has no command (the simulation runs commands, not images)", path, c.Name)
		}
	}
	sum := sha256.Sum256(data)
	return Manifest{File: path, Hash: hex.EncodeToString(sum[:8]), Pod: pod}, nil
}

// Diff compares running pods (key -> hash) with wanted manifests and says
// which to stop and which to start. A changed pod is in both.
func Diff(running map[string]string, wanted []Manifest) (stop []string, start []Manifest) {
	want := map[string]bool{}
	for _, m := range wanted {
		want[m.Key()] = true
		switch h, ok := running[m.Key()]; {
		case !ok:
			start = append(start, m)
		case h != m.Hash:
			stop = append(stop, m.Key())
			start = append(start, m)
		}
	}
	for key := range running {
		if !want[key] {
			stop = append(stop, key)
		}
	}
	sort.Strings(stop)
	return stop, start
}
