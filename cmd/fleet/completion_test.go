package main

import (
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// completeLine asks fleet (this test binary as the CLI) for completions as
// bash's complete -C does: the line so far in COMP_LINE and COMP_POINT.
func completeLine(t *testing.T, line string) []string {
	t.Helper()
	cmd := osexec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), cliChildEnv+"=1", "COMP_LINE="+line, "COMP_POINT="+strconv.Itoa(len(line)))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("completing %q: %v", line, err)
	}
	return strings.Fields(string(out))
}

func TestShellCompletion(t *testing.T) {
	inv := filepath.Join(t.TempDir(), "inv.yaml")
	os.WriteFile(inv, []byte(`cluster: {name: c, kubernetesVersion: v1.34.4}
ssh: {connectTimeout: 1s}
loadbalancer: {name: lb, address: 127.0.0.91}
masters: [{name: m0, address: 127.0.0.92}]
workers: [{name: w0, address: 127.0.0.93}, {name: w1, address: 127.0.0.94}]
`), 0o600) // loopback addresses where no sshd listens: nobody answers, every node is offered
	tests := []struct {
		line string
		want []string
	}{
		{"fleet jo", []string{"join"}},
		{"fleet rot", []string{"rotate-tokens"}},
		{"fleet join -i " + inv + " ", []string{"m0", "w0", "w1"}},
		{"fleet cloud-init -i " + inv + " w", []string{"w0", "w1"}},
		{"fleet remove --inventory=" + inv + " w", []string{"w0", "w1"}},
		{"fleet apply --prog", []string{"--progress"}},
	}
	for _, tt := range tests {
		if got := completeLine(t, tt.line); !slices.Equal(got, tt.want) {
			t.Errorf("%q completes to %q, want %q", tt.line, got, tt.want)
		}
	}
	// The script is one bash accepts and registers for fleet.
	if _, err := osexec.LookPath("bash"); err != nil {
		t.Fatal(err)
	}
	code, script, errs := fleet("completion", "bash")
	if code != 0 {
		t.Fatalf("completion bash: %d %s", code, errs)
	}
	out, err := osexec.Command("bash", "-c", script+"\ncomplete -p fleet").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "-C '"+os.Args[0]+"' fleet") {
		t.Errorf("bash after the completion script: %v: %s", err, out)
	}
	for _, shell := range []string{"zsh", "fish"} {
		if code, script, _ := fleet("completion", shell); code != 0 || !strings.Contains(script, os.Args[0]) {
			t.Errorf("completion %s: exit %d: %s", shell, code, script)
		}
	}
}
