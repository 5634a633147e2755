package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetops/fleet/internal/lock"
	"github.com/fleetops/fleet/testing/sim"
)

// tokenShape matches a bootstrap token (id.secret) and a certificate key
// (64 hex digits).
var (
	tokenShape   = regexp.MustCompile(`[a-z0-9]{6}\.[a-z0-9]{16}`)
	certKeyShape = regexp.MustCompile(`\b[0-9a-f]{64}\b`)
)

// TestCommandsNeverPrintSecrets runs apply (first cut short by SIGINT, in a
// process of its own), status, a second apply and rotate-tokens through
// the CLI with every event printed (-v), and
// searches all they wrote for tokens, certificate keys and the cluster's
// private keys. The one exception is the join command that
// rotate-tokens --print-join-command puts on stdout, on purpose.
func TestCommandsNeverPrintSecrets(t *testing.T) {
	sim.Need(t, cluster)
	kubeconfig := filepath.Join(cluster.Dir, "cli.kubeconfig")
	var all bytes.Buffer
	runOK := func(args ...string) (string, string) {
		t.Helper()
		code, out, errs := fleet(args...)
		all.WriteString(out)
		all.WriteString(errs)
		if code != 0 {
			t.Fatalf("fleet %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
		}
		return out, errs
	}
	logFile := filepath.Join(t.TempDir(), "fleet.log") // every command's JSON events
	cutWorker, interrupted := testCtrlCDuringWorkerJoins(t, &all, logFile, kubeconfig)
	// The apply that converges runs in a real terminal (tmux): its live
	// view is what a user watches.
	report := filepath.Join(t.TempDir(), "apply.html")
	term := runInTerminal(t, 5*time.Minute, "--report", report, "apply", "-i", cluster.Inventory, "--kubeconfig", kubeconfig)
	all.WriteString(term.final)
	page, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("no report of the apply: %v", err)
	}
	all.Write(page)
	bars := checkReportInBrowser(t, report, "report-apply")
	for _, e := range term.events {
		if host := cmp.Or(e.Host, "(cluster)"); e.Kind != "note" && !hasBar(bars, e.Step, host) {
			t.Errorf("the report's timeline has no bar for %s on %s", e.Step, host)
		}
	}
	for _, e := range term.events {
		all.WriteString(e.Reason + "\n" + e.Error + "\n")
	}
	if term.exit != 0 {
		t.Fatalf("apply in a terminal: %s", term)
	}
	checkLiveView(t, term)
	converged := convergedAfterCut(t, term, cutWorker)
	// Through a pipe the view is plain lines, without escape codes.
	out, errs := runOK("--log-file", logFile, "apply", "-i", cluster.Inventory, "--kubeconfig", kubeconfig)
	if !strings.HasPrefix(out, "no changes") {
		t.Errorf("second apply: %q", out)
	}
	if strings.ContainsRune(errs, '\x1b') || !strings.Contains(errs, "▶ join-workers (2 hosts)") || !strings.Contains(errs, "✓ join-workers 2/2 ") {
		t.Errorf("the plain view of a piped apply:\n%q", errs)
	}
	out, _ = runOK("plan", "-i", cluster.Inventory, "--kubeconfig", kubeconfig)
	if !strings.Contains(out, "no changes: apply would do nothing") {
		t.Errorf("plan after apply:\n%s", out)
	}
	out, _ = runOK("status", "-i", cluster.Inventory)
	if joined := joinedInStatus(out); joined != 5 {
		t.Errorf("status shows %d nodes joined, want 5:\n%s", joined, out)
	}
	// certs check: kubeadm's certificates on each master (a year left),
	// the kubelets'; --fail-under past a year fails, naming them.
	out, _ = runOK("certs", "check", "-i", cluster.Inventory)
	if !strings.Contains(out, "apiserver") || !strings.Contains(out, "kubelet-client") || !strings.Contains(out, "ca (CA)") {
		t.Errorf("certs check:\n%s", out)
	}
	code, certsOut, certsErr := fleet("certs", "check", "-i", cluster.Inventory, "--fail-under", "400", "-o", "json")
	all.WriteString(certsOut + certsErr)
	if code != exitRefused || !strings.Contains(certsErr, "fewer than 400 days left") || !strings.Contains(certsOut, `"expires"`) {
		t.Errorf("certs check --fail-under 400: exit %d\n%s%s", code, certsOut, certsErr)
	}
	testJSONDocuments(t, &all, kubeconfig)
	testRestore(t, &all, testBackup(t, &all))
	// Completion asks the hosts: on the built cluster join has nothing to
	// offer, remove every node. A machine busy with other tests may miss
	// the 3 s (completion then offers every node): three tries.
	for _, tc := range []struct{ line, want string }{{"fleet join -i " + cluster.Inventory + " ", ""},
		{"fleet remove -i " + cluster.Inventory + " ", "master0 master1 master2 worker0 worker1"}} {
		var got string
		for range 3 {
			if got = strings.Join(completeLine(t, tc.line), " "); got == tc.want {
				break
			}
		}
		if got != tc.want {
			t.Errorf("%q<TAB> on a full cluster offers %q, want %q", tc.line, got, tc.want)
		}
	}
	recordCtrlC(t, interrupted, converged)
	testKubeconfigCommand(t, &all)
	runOK("-v", "--log-file", logFile, "join", "-i", cluster.Inventory, "worker1")
	// cloud-init's user-data holds a token by design: it goes to a 0600
	// file, and nothing fleet prints shows the token.
	userData := filepath.Join(t.TempDir(), "worker1.user-data")
	out, _ = runOK("--log-file", logFile, "cloud-init", "-i", cluster.Inventory, "worker1", "-o", userData)
	if st, err := os.Stat(userData); err != nil || st.Mode().Perm() != 0o600 || out != "" {
		t.Errorf("cloud-init -o: %v %v, stdout %q; want a 0600 file and nothing on stdout", st, err, out)
	}
	if doc, _ := os.ReadFile(userData); !strings.HasPrefix(string(doc), "#cloud-config\n") || !tokenShape.Match(doc) {
		t.Errorf("user-data without its header or token:\n%.200s", doc)
	}
	joinCmd, warning := runOK("-v", "--log-file", logFile, "rotate-tokens", "-i", cluster.Inventory, "--ttl", "5m", "--print-join-command", "--control-plane")
	if !tokenShape.MatchString(joinCmd) || !certKeyShape.MatchString(joinCmd) || !strings.Contains(joinCmd, "--discovery-token-ca-cert-hash sha256:") {
		t.Errorf("join command on stdout: %q", joinCmd)
	}
	if !strings.Contains(warning, "contains a secret") || tokenShape.MatchString(warning) {
		t.Errorf("stderr of --print-join-command: %q", warning)
	}
	testUnlock(t, &all)
	log, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(logFile); st.Mode().Perm() != 0o600 || bytes.Count(log, []byte("\n")) < 30 || !bytes.Contains(log, []byte(`"step":"join-workers"`)) {
		t.Errorf("log file mode %v, %d lines: want 0600 and every event of the runs", st.Mode().Perm(), bytes.Count(log, []byte("\n")))
	}
	// The log also holds every remote command: the workers' joins of the
	// interrupted apply among them (one cut short, one perhaps done).
	if !loggedJoin(t, log) {
		t.Errorf("the log file has no line for a worker's kubeadm join")
	}
	all.Write(log)
	// Everything but that one stdout: no secret.
	printed := strings.Replace(all.String(), joinCmd, "", 1)
	if m := tokenShape.FindString(printed); m != "" {
		t.Errorf("a bootstrap token was printed: %s…", m[:7])
	}
	if m := certKeyShape.FindString(printed); m != "" {
		t.Errorf("a certificate key was printed: %s…", m[:8])
	}
	for _, key := range []string{"pki/ca.key", "pki/sa.key", "pki/etcd/ca.key", "pki/apiserver-etcd-client.key"} {
		data, err := os.ReadFile(filepath.Join(cluster.Host("master0").Dir, "etc/kubernetes", key))
		if err != nil {
			t.Fatal(err)
		}
		body := keyBody(data)
		if len(body) < 40 || strings.Contains(printed, body) || strings.Contains(printed, "PRIVATE KEY") {
			t.Errorf("%s appears in the output (or could not be read: %d bytes)", key, len(body))
		}
	}
	if all.Len() < 2000 {
		t.Errorf("only %d bytes of output: the search proves little", all.Len())
	}
	st, err := os.Stat(kubeconfig)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig %v %v, want mode 0600", st, err)
	}
}

// joinedInStatus counts the rows of fleet status whose JOINED column says
// yes.
func joinedInStatus(table string) int {
	lines := strings.Split(strings.TrimSpace(table), "\n")
	col := slices.Index(strings.Fields(lines[0]), "JOINED")
	joined := 0
	for _, l := range lines[1:] {
		if f := strings.Fields(l); col >= 0 && col < len(f) && f[col] == "yes" {
			joined++
		}
	}
	return joined
}

// keyBody is the first base64 line of a PEM key: enough to recognise it.
func keyBody(pem []byte) string {
	lines := strings.Split(string(pem), "\n")
	if len(lines) < 2 {
		return ""
	}
	return lines[1]
}

// testUnlock: a lock left by a crashed run refuses apply with its holder;
// unlock shows the holder, asks, and breaks it; a second unlock finds none.
func testUnlock(t *testing.T, all *bytes.Buffer) {
	t.Helper()
	crashed := lock.NewHolder("ops@crashed-laptop", 31337, "join", time.Now().Add(-2*time.Hour))
	if err := os.WriteFile(filepath.Join(cluster.Host("master0").Dir, lock.Path), []byte(crashed.Encode()), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := fleet("apply", "-i", cluster.Inventory)
	all.WriteString(out + errs)
	if code != exitRefused || !strings.Contains(errs, "locked by ops@crashed-laptop (pid 31337), running join") || !strings.Contains(errs, "fleet unlock") {
		t.Errorf("apply over a stale lock: exit %d\n%s%s", code, out, errs)
	}
	var o, e bytes.Buffer
	code = runWithInput([]string{"unlock", "-i", cluster.Inventory}, strings.NewReader("no\n"), &o, &e)
	if code != 1 || !strings.Contains(e.String(), "ops@crashed-laptop") || !strings.Contains(e.String(), "not confirmed") {
		t.Errorf("unlock answered no: exit %d\n%s%s", code, o.String(), e.String())
	}
	o.Reset()
	e.Reset()
	code = runWithInput([]string{"unlock", "-i", cluster.Inventory}, strings.NewReader("unlock\n"), &o, &e)
	all.WriteString(o.String() + e.String())
	if code != 0 || !strings.Contains(o.String(), "broke the lock of ops@crashed-laptop") {
		t.Errorf("unlock: exit %d\n%s%s", code, o.String(), e.String())
	}
	if code, out, errs := fleet("unlock", "-i", cluster.Inventory, "--yes"); code != 0 || !strings.Contains(out, "no lock") {
		t.Errorf("second unlock: exit %d\n%s%s", code, out, errs)
	}
}

// loggedJoin reports whether a --log-file holds a command line for a
// worker's kubeadm join.
func loggedJoin(t *testing.T, log []byte) bool {
	t.Helper()
	for _, line := range bytes.Split(bytes.TrimSpace(log), []byte("\n")) {
		var c struct {
			Kind, Command, Host, Step string
			DurationMS                *int64 `json:"duration_ms"`
			ExitCode                  *int   `json:"exit_code"`
		}
		if err := json.Unmarshal(line, &c); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if c.Kind == "command" && strings.Contains(c.Command, "kubeadm join ") && strings.HasPrefix(c.Host, "worker") &&
			c.Step == "join-workers" && c.DurationMS != nil && c.ExitCode != nil {
			return true
		}
	}
	return false
}
