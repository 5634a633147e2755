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
		{"three files", "y\ny\ny\n2 /a\n3 /b\n0 /c\n5 total\nhix\ny", map[string]string{"/a": "hi", "/b": "x\ny", "/c": ""}},
		{"content that looks like the protocol", "y\nn\ny\n      4 /a\n      4 /c\n      8 total\nn\ny\n1\n2\n", map[string]string{"/a": "n\ny\n", "/c": "1\n2\n"}},
		{"missing files", "n\nn\nn\n", map[string]string{}},
		{"one file: no total line", "n\ny\nn\n2 /b\n\x00\xff", map[string]string{"/b": "\x00\xff"}},
		{"cut short", "y\nn\nn\n5 /a\nabc", nil},
		{"a path without an answer", "y\nn\n", nil},
		{"bytes after the last file", "n\nn\ny\n1 /c\nab", nil},
		{"not a size", "y\nn\nn\nx /a\n", nil},
		{"not y or n", "-1\nn\nn\n", nil},
		{"a total that does not add up", "y\ny\nn\n1 /a\n1 /b\n3 total\nab", nil},
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
