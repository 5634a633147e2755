package main

import (
	"strings"
	"testing"

	"github.com/fleetops/fleet/internal/exec"
)

// A command's error is printed once, in main, through every session the
// command opened: a secret one session made and another's error quotes
// does not get out.
func TestErrorsPrintThroughEverySessionsRedactor(t *testing.T) {
	token, key := "abcdef.0123456789abcdef", strings.Repeat("9f", 32)
	first, second := exec.NewRedactor(), exec.NewRedactor()
	first.Add(token)
	second.Add(key)
	g := &globals{redactors: []func(string) string{first.String, second.String}}
	got := g.redacted("join failed: kubeadm join --token " + token + " --certificate-key " + key)
	if strings.Contains(got, token) || strings.Contains(got, key) || !strings.HasPrefix(got, "join failed: kubeadm join --token ") {
		t.Errorf("printed %q", got)
	}
}
