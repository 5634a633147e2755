package playbooks

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/fleetops/fleet/internal/binaries"
	"github.com/fleetops/fleet/internal/certs"
	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/inventory"
)

// hostRead is a state check's question to a host: a script whose output
// the check parses, and the files it reads. Preflight puts every prepare
// phase's question in its own command, so a host that is prepared already
// costs that one command for the whole prepare.
type hostRead struct {
	script string
	files  []string
}

// prepViews hands what preflight read for each prepare phase to that
// phase's check, once per host. Only the first check of a run uses it;
// a phase whose state an earlier phase may change on the host drops its
// view when that phase runs (apt may write containerd's config).
type prepViews struct {
	kernel   seen[kernelState]
	binaries seen[binariesState]
	packages seen[packagesState]
	runtime  seen[runtimeState]
}

// prepReads are the prepare phases' questions, in the order keepViews
// takes the answers: kernel, the install source's, runtime.
// b is the binaries folder, nil for install: packages.
func prepReads(b *binaries.Bundle, mirrors map[string][]string) []hostRead {
	install := packagesRead
	if b != nil {
		install = binariesRead(nodeKit("")(b))
	}
	return []hostRead{kernelRead, install, runtimeRead(mirrors)}
}

// keepViews parses preflight's answers to prepReads and keeps each for
// its phase's check.
// manager is the host's package manager (apt, dnf).
func (v *prepViews) keepViews(host string, b *binaries.Bundle, manager string, answers []string, files map[string][]byte) error {
	if len(answers) != 3 {
		return fmt.Errorf("%d prepare answers, want 3", len(answers))
	}
	v.kernel.keep(host, parseKernelState(answers[0], files))
	if b != nil {
		v.binaries.keep(host, parseBinariesState(answers[1], files))
	} else {
		st, err := parsePackagesState(answers[1], files, manager)
		if err != nil {
			return err
		}
		v.packages.keep(host, st)
	}
	v.runtime.keep(host, parseRuntimeState(answers[2], files))
	return nil
}

// prepares reports whether fleet prepares host (a node, with install:
// binaries or packages).
func prepares(inv *inventory.Inventory, h *inventory.Host) bool {
	return inv.Installs() && (h.Role == inventory.RoleMaster || h.Role == inventory.RoleWorker)
}

// sectionMarker separates the answers of querySections.
const sectionMarker = "--- fleet section ---"

// querySections runs head, then each read's script, then reads every file
// they name, in one remote command. It returns head's output, each read's
// output in order, and the files that could be read.
func (p probe) querySections(ctx context.Context, host, head string, reads []hostRead) (string, []string, map[string][]byte, error) {
	var script strings.Builder
	script.WriteString(head)
	var files []string
	seenFile := map[string]bool{}
	for _, r := range reads {
		script.WriteString("\necho " + exec.Quote(sectionMarker) + "\n" + r.script)
		for _, f := range r.files {
			if !seenFile[f] {
				seenFile[f] = true
				files = append(files, f)
			}
		}
	}
	out, read, err := p.queryWithFiles(ctx, host, script.String(), files...)
	if err != nil {
		return "", nil, nil, err
	}
	parts := strings.Split(out, sectionMarker+"\n")
	if len(parts) != len(reads)+1 {
		return "", nil, nil, fmt.Errorf("%s: %d answers to %d questions: %q", host, len(parts)-1, len(reads), out)
	}
	return parts[0], parts[1:], read, nil
}

// masterCertFiles are the leaf certificates kubeadm makes on a master (its
// kubeconfigs' client certificates are made and renewed with them, and
// hold keys: fleet does not read those).
var masterCertFiles = []string{
	"/etc/kubernetes/pki/apiserver.crt", "/etc/kubernetes/pki/apiserver-kubelet-client.crt",
	"/etc/kubernetes/pki/apiserver-etcd-client.crt", "/etc/kubernetes/pki/front-proxy-client.crt",
	"/etc/kubernetes/pki/etcd/server.crt", "/etc/kubernetes/pki/etcd/peer.crt", "/etc/kubernetes/pki/etcd/healthcheck-client.crt",
}

// certWarnDays: apply and plan warn when a master's certificate has fewer
// days left.
const certWarnDays = 30

// expiringSoon is preflight's warning for a master whose certificates
// (among files) run out within certWarnDays, "" when none does.
func expiringSoon(host string, files map[string][]byte, now time.Time) string {
	var soon []string
	for _, path := range masterCertFiles {
		data, ok := files[path]
		if !ok {
			continue // not initialised yet, or not kubeadm's layout
		}
		c, err := certs.FromPEM(host, strings.TrimSuffix(strings.TrimPrefix(path, "/etc/kubernetes/pki/"), ".crt"), path, data)
		if err != nil || c.Missing {
			continue
		}
		if d := c.DaysLeft(now); d < certWarnDays {
			soon = append(soon, fmt.Sprintf("%s (%d days)", c.Name, d))
		}
	}
	if len(soon) == 0 {
		return ""
	}
	return fmt.Sprintf("certificates expire within %d days: %s: run fleet certs renew", certWarnDays, strings.Join(soon, ", "))
}
