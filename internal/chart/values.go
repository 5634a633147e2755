package chart

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"

	"helm.sh/helm/v4/pkg/strvals"
	"sigs.k8s.io/yaml"
)

// ReadValues reads a values file (YAML); an empty path gives no values.
func ReadValues(path string) (map[string]any, error) {
	vals := map[string]any{}
	if path == "" {
		return vals, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	if err := yaml.Unmarshal(data, &vals); err != nil {
		return nil, fmt.Errorf("values %s: %w", path, err)
	}
	if vals == nil { // an empty file
		vals = map[string]any{}
	}
	return vals, nil
}

// Set applies key: value pairs the way `helm --set-json` does: a key is a
// dotted path ("hubble.relay.enabled", "list[0].name"), a value any YAML
// value. Keys are applied in sorted order, so the result does not depend
// on map order.
func Set(dst map[string]any, set map[string]any) error {
	for _, key := range slices.Sorted(maps.Keys(set)) {
		v, err := json.Marshal(set[key])
		if err != nil {
			return fmt.Errorf("set %s: %w", key, err)
		}
		if err := strvals.ParseJSON(key+"="+string(v), dst); err != nil {
			return fmt.Errorf("set %s: %w", key, err)
		}
	}
	return nil
}

// Merge lays over on top of base (over wins, maps merge key by key) and
// returns the result with the dotted paths of base's values that over
// replaced with something else, sorted. Neither input is changed.
func Merge(base, over map[string]any) (map[string]any, []string) {
	var overridden []string
	out := merge(base, over, "", &overridden)
	slices.Sort(overridden)
	return out, overridden
}

func merge(base, over map[string]any, prefix string, overridden *[]string) map[string]any {
	out := make(map[string]any, len(base)+len(over))
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		b, inBase := base[k]
		bm, bIsMap := b.(map[string]any)
		om, oIsMap := v.(map[string]any)
		switch {
		case bIsMap && oIsMap:
			out[k] = merge(bm, om, prefix+k+".", overridden)
		case inBase && !sameValue(b, v):
			*overridden = append(*overridden, prefix+k)
			out[k] = v
		default:
			out[k] = v
		}
	}
	return out
}

// sameValue compares as JSON, so 6443 from Go code and 6443 read from YAML
// (a float64) are the same value.
func sameValue(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}
