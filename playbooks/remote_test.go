package playbooks

import (
	"strings"
	"testing"
)

func TestParseFiles(t *testing.T) {
	paths := []string{"/a", "/b", "/c"}
	for _, tc := range []struct {
		name, out string
		want      map[string]string // nil: an error
	}{
		{"three files", "2\nhi3\nx\ny0\n", map[string]string{"/a": "hi", "/b": "x\ny", "/c": ""}},
		{"content that looks like the protocol", "3\n-1\n-1\n      4\n1\n2\n", map[string]string{"/a": "-1\n", "/c": "1\n2\n"}},
		{"missing files", "-1\n-1\n-1\n", map[string]string{}},
		{"binary", "2\n\x00\xff-1\n1\n\n", map[string]string{"/a": "\x00\xff", "/c": "\n"}},
		{"cut short", "5\nabc", nil},
		{"a path without an answer", "1\na-1\n", nil},
		{"bytes after the last file", "-1\n-1\n1\nab", nil},
		{"not a size", "x\n", nil},
	} {
		got, err := parseFiles(tc.out, paths)
		if tc.want == nil {
			if err == nil {
				t.Errorf("%s: accepted: %q", tc.name, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		var diff []string
		for _, p := range paths {
			w, wok := tc.want[p]
			g, gok := got[p]
			if wok != gok || w != string(g) {
				diff = append(diff, p)
			}
		}
		if len(diff) > 0 {
			t.Errorf("%s: %s differ: got %q, want %q", tc.name, strings.Join(diff, ","), got, tc.want)
		}
	}
}
