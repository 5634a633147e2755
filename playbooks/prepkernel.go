package playbooks

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/nodeprep"
)

// kernelPhase loads overlay and br_netfilter, sets the networking sysctls
// and turns swap off, now and after a reboot (the kubelet refuses swap).
type kernelPhase struct {
	allowSwap bool // the inventory lets the kubelets run with swap: left alone
	seen      seen[kernelState]
}

// kernelStateScript prints module.NAME=0|1, sysctl.KEY=VALUE and swaps=N.
// br_netfilter counts as loaded when its sysctls exist (built in).
var kernelStateScript = func() string {
	var b strings.Builder
	for _, m := range nodeprep.Modules {
		test := exec.Command("test", "-d", "/sys/module/"+m)
		if m == "br_netfilter" {
			test += " || " + exec.Command("test", "-d", "/proc/sys/net/bridge")
		}
		fmt.Fprintf(&b, "if %s; then echo module.%s=1; else echo module.%s=0; fi\n", test, m, m)
	}
	// Builtins only (read, not cat; a loop, not tail | wc): every process
	// started costs, times every host.
	for _, s := range nodeprep.Sysctls {
		fmt.Fprintf(&b, "v=; read -r v < %s 2>/dev/null; echo \"sysctl.%s=$v\"\n", exec.Quote(nodeprep.SysctlPath(s.Key)), s.Key)
	}
	b.WriteString("n=-1; while read -r _; do n=$((n+1)); done < /proc/swaps; echo swaps=$((n < 0 ? 0 : n))\n")
	return b.String()
}()

// kernelState is what kernelStateScript saw, and the files it persists in.
type kernelState struct {
	modules map[string]bool
	sysctls map[string]string
	swaps   int
	files   map[string][]byte // ModulesFile, SysctlFile, /etc/fstab; absent if missing
}

const fstab = "/etc/fstab"

// kernelRead is the kernel check's question: the values, and the files
// they are persisted in.
var kernelRead = hostRead{kernelStateScript, []string{nodeprep.ModulesFile, nodeprep.SysctlFile, fstab}}

func readKernelState(ctx context.Context, p probe, host string) (kernelState, error) {
	values, files, err := p.queryWithFiles(ctx, host, kernelRead.script, kernelRead.files...)
	if err != nil {
		return kernelState{}, err
	}
	return parseKernelState(values, files), nil
}

// parseKernelState reads kernelStateScript's answer; files may hold more
// than kernelRead's.
func parseKernelState(values string, files map[string][]byte) kernelState {
	st := kernelState{modules: map[string]bool{}, sysctls: map[string]string{}, files: map[string][]byte{}}
	for _, line := range strings.Split(strings.TrimSpace(values), "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch {
		case strings.HasPrefix(k, "module."):
			st.modules[strings.TrimPrefix(k, "module.")] = v == "1"
		case strings.HasPrefix(k, "sysctl."):
			st.sysctls[strings.TrimPrefix(k, "sysctl.")] = strings.TrimSpace(v)
		case k == "swaps":
			st.swaps, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	for _, f := range kernelRead.files {
		if data, ok := files[f]; ok {
			st.files[f] = data
		}
	}
	return st
}

// kernelTodo lists what is left to do, in the order run does it; swap is
// left as it is when allowSwap.
func kernelTodo(st kernelState, allowSwap bool) []string {
	var todo []string
	for _, m := range nodeprep.Modules {
		if !st.modules[m] {
			todo = append(todo, "load "+m)
		}
	}
	if string(st.files[nodeprep.ModulesFile]) != nodeprep.ModulesConf() {
		todo = append(todo, "write "+nodeprep.ModulesFile)
	}
	for _, s := range nodeprep.Sysctls {
		if st.sysctls[s.Key] != s.Value {
			todo = append(todo, "set "+s.Key+"="+s.Value)
		}
	}
	if string(st.files[nodeprep.SysctlFile]) != nodeprep.SysctlConf() {
		todo = append(todo, "write "+nodeprep.SysctlFile)
	}
	if allowSwap {
		return todo
	}
	if st.swaps > 0 {
		todo = append(todo, fmt.Sprintf("turn swap off (%d devices)", st.swaps))
	}
	if _, changed := nodeprep.CommentSwap(string(st.files[fstab])); changed {
		todo = append(todo, "comment swap out of "+fstab)
	}
	return todo
}

func (k *kernelPhase) check(ctx context.Context, p probe, host string) (bool, string, error) {
	st, ok := p.s.prep.kernel.take(host)
	if !ok {
		var err error
		if st, err = readKernelState(ctx, p, host); err != nil {
			return false, "", err
		}
	}
	k.seen.keep(host, st)
	if todo := kernelTodo(st, k.allowSwap); len(todo) > 0 {
		return false, strings.Join(todo, "; "), nil
	}
	if k.allowSwap {
		return true, "overlay and br_netfilter loaded, forwarding and bridge sysctls set and persisted (swap allowed)", nil
	}
	return true, "overlay and br_netfilter loaded, forwarding and bridge sysctls set and persisted, swap off", nil
}

func (k *kernelPhase) run(ctx context.Context, r remote, host string) error {
	st, ok := k.seen.take(host)
	if !ok {
		var err error
		if st, err = readKernelState(ctx, r.probe, host); err != nil {
			return err
		}
	}
	var script []string
	for _, m := range nodeprep.Modules {
		if !st.modules[m] {
			script = append(script, exec.Command("modprobe", m))
		}
	}
	for _, s := range nodeprep.Sysctls {
		if st.sysctls[s.Key] != s.Value {
			script = append(script, "echo "+s.Value+" > "+exec.Quote(nodeprep.SysctlPath(s.Key)))
		}
	}
	if st.swaps > 0 && !k.allowSwap {
		script = append(script, "swapoff -a")
	}
	files := []remoteFile{
		{nodeprep.ModulesFile, []byte(nodeprep.ModulesConf()), 0o644},
		{nodeprep.SysctlFile, []byte(nodeprep.SysctlConf()), 0o644},
	}
	if newTab, changed := nodeprep.CommentSwap(string(st.files[fstab])); changed && !k.allowSwap {
		// The original stays beside it, as the user had it.
		script = append(script, exec.Command("cp", "-p", fstab, fstab+".fleet-bak"))
		files = append(files, remoteFile{fstab, []byte(newTab), 0o644})
	}
	if len(script) > 0 {
		if _, err := r.run(ctx, host, "set -e\n"+strings.Join(script, "\n")); err != nil {
			return fmt.Errorf("kernel: %w", err)
		}
	}
	var changed []remoteFile
	for _, f := range files {
		if string(st.files[f.path]) != string(f.data) {
			changed = append(changed, f)
		}
	}
	return r.uploadAll(ctx, host, changed)
}
