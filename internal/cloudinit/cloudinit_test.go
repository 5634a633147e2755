package cloudinit

import (
	"reflect"
	"strings"
	"testing"
)

func TestRenderParseRoundTrip(t *testing.T) {
	c := Config{
		WriteFiles: []File{
			{Path: "/etc/kubernetes/pki/ca.crt", Content: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", Permissions: "0644", Owner: "root:root"},
			{Path: "/etc/x y/quote's \"file\"", Content: "a: 'b'\n# not a comment\n$(not run)\n", Permissions: "0600", Owner: "root:root"},
		},
		RunCmd: [][]string{{"kubeadm", "join", "--config", "/etc/kubernetes/fleet-join.yaml"}, {"sh", "-c", "echo 'a b' && rm -f /x"}},
	}
	out, err := Render(c, "holds a token valid until 12:00", "two\nlines")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "#cloud-config\n# holds a token valid until 12:00\n# two\n# lines\n") {
		t.Errorf("header:\n%s", out)
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip:\n%+v\nwant\n%+v\n%s", back, c, out)
	}
}

func TestRenderRefuses(t *testing.T) {
	for name, c := range map[string]Config{
		"relative path":   {WriteFiles: []File{{Path: "etc/x", Permissions: "0600"}}},
		"unclean path":    {WriteFiles: []File{{Path: "/etc/../x", Permissions: "0600"}}},
		"bad permissions": {WriteFiles: []File{{Path: "/x", Permissions: "600"}}},
		"non-octal":       {WriteFiles: []File{{Path: "/x", Permissions: "0689"}}},
		"empty command":   {RunCmd: [][]string{{}}},
	} {
		if _, err := Render(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := Parse([]byte("write_files: []\n")); err == nil {
		t.Error("user-data without #cloud-config accepted")
	}
}
