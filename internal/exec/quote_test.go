package exec

import (
	osexec "os/exec"
	"strings"
	"testing"
)

// hostileWords are strings a shell would mangle if they were not quoted.
var hostileWords = []string{
	"",
	"plain",
	"two words",
	"it's",
	`"double"`,
	"$(touch /tmp/fleet-pwned)",
	"`id`",
	"a;b&&c||d|e",
	"new\nline",
	"tab\there",
	`back\slash\`,
	"glob*?[a]",
	"~root",
	"-n",
	"''",
	"'\\''",
	"ünïcødé ✓ 漢字",
	"$HOME ${PATH} $1",
	"#comment",
	"trailing space ",
	"{a,b}",
	"!history",
	"<in >out 2>&1",
}

func TestQuoteRoundTripsThroughRealShell(t *testing.T) {
	for _, word := range hostileWords {
		out, err := osexec.Command("/bin/sh", "-c", "printf %s "+Quote(word)).Output()
		if err != nil {
			t.Fatalf("sh failed on %q (quoted %s): %v", word, Quote(word), err)
		}
		if string(out) != word {
			t.Errorf("round trip of %q: got %q via %s", word, out, Quote(word))
		}
	}
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "''"},
		{"kubeadm", "kubeadm"},
		{"/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/ca.crt"},
		{"198.18.0.10:6443", "198.18.0.10:6443"},
		{"--token=abc", "--token=abc"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"$x", "'$x'"},
	}
	for _, tt := range tests {
		if got := Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestCommandKeepsArgumentBoundaries(t *testing.T) {
	argv := append([]string{"printf", "[%s]"}, hostileWords...)
	out, err := osexec.Command("/bin/sh", "-c", Command(argv...)).Output()
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for _, w := range hostileWords {
		want.WriteString("[" + w + "]")
	}
	if string(out) != want.String() {
		t.Errorf("got %q\nwant %q", out, want.String())
	}
}

func BenchmarkQuote(b *testing.B) {
	words := append([]string{}, hostileWords...)
	b.ReportAllocs()
	for b.Loop() {
		for _, w := range words {
			_ = Quote(w)
		}
	}
}
