package exec

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRedactorString(t *testing.T) {
	r := NewRedactor()
	r.Add("abcdef.0123456789abcdef", "0123456789abcdef", "short", "")
	tests := []struct{ in, want string }{
		{"no secrets here", "no secrets here"},
		{"--token abcdef.0123456789abcdef --x", "--token " + Mask + " --x"},
		{"key=0123456789abcdef", "key=" + Mask},
		{"twice 0123456789abcdef 0123456789abcdef", "twice " + Mask + " " + Mask},
		{"short is too short to be a secret", "short is too short to be a secret"},
	}
	for _, tt := range tests {
		if got := r.String(tt.in); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNilRedactorPassesThrough(t *testing.T) {
	var r *Redactor
	if got := r.String("x"); got != "x" {
		t.Fatalf("got %q", got)
	}
}

func TestRedactingWriterCatchesSecretSplitAcrossWrites(t *testing.T) {
	r := NewRedactor()
	r.Add("supersecretvalue")
	var out bytes.Buffer
	w := r.Writer(&out)
	for _, chunk := range []string{"line one supers", "ecretval", "ue end\nsecond supersecret", "value"} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "supersecretvalue") {
		t.Fatalf("secret leaked: %q", out.String())
	}
	want := "line one " + Mask + " end\nsecond " + Mask
	if out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
}

func BenchmarkRedactLargeOutput(b *testing.B) {
	r := NewRedactor()
	for i := 0; i < 20; i++ {
		r.Add(strings.Repeat(string(rune('a'+i)), 23))
	}
	text := strings.Repeat("I1124 16:20:00 kubeadm phase certs: generating key and certificate\n", 16<<10) // ~1 MiB
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		_ = r.String(text)
	}
}

func TestLastLinesIsBounded(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"a\nb\nc\nd\ne\nf\ng\n", "c\nd\ne\nf\ng"},
		{"  only  \n", "only"},
		{"", ""},
	} {
		if got := lastLines(tc.in, 5); got != tc.want {
			t.Errorf("lastLines(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	huge := strings.Repeat("é", 3<<20) + "END" // one 6 MiB line of 2-byte runes
	got := lastLines(huge, 5)
	if len(got) > maxErrorTail+len("…") || !strings.HasSuffix(got, "END") || !strings.HasPrefix(got, "…") || !utf8.ValidString(got) {
		t.Errorf("tail of a huge line: %d bytes, valid UTF-8 %v, suffix END %v", len(got), utf8.ValidString(got), strings.HasSuffix(got, "END"))
	}
}
