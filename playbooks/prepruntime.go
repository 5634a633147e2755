package playbooks

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/kubeadm"
	"github.com/fleetops/fleet/internal/nodeprep"
)

// runtimePhase writes containerd's configuration for the kubelet and
// restarts containerd when it changed.
type runtimePhase struct {
	version string
	mirrors map[string][]string
	asked   sync.Map // version -> *pauseOnce
	seen    seen[runtimeView]
}

// askPause asks the host's kubeadm which pause image the cluster's
// version uses, once per run: every node's kubeadm is the one fleet
// installed at that version, and starting kubeadm on every host would
// cost more than the rest of the step. prepare-binaries may have asked
// already, with the version check.
func (p *runtimePhase) askPause(ctx context.Context, pr probe, host string) (string, bool, error) {
	key := p.version
	if image, ok := pr.s.pauses.Load(key); ok {
		return image.(string), true, nil
	}
	v, _ := p.asked.LoadOrStore(key, &pauseOnce{})
	po := v.(*pauseOnce)
	po.once.Do(func() {
		res, err := pr.query(ctx, host, "command -v kubeadm >/dev/null && "+exec.Command("kubeadm", "config", "images", "list", "--kubernetes-version", p.version)+" || :")
		if err != nil {
			po.err = err
			return
		}
		if strings.TrimSpace(res.Stdout) == "" {
			return // no kubeadm yet (a plan on a bare host)
		}
		po.image, po.err = nodeprep.PauseImage(res.Stdout)
	})
	if po.image == "" && po.err == nil {
		p.asked.Delete(key) // ask again once kubeadm is there
	}
	return po.image, po.image != "", po.err
}

// pauseOnce is one kubeadm's answer.
type pauseOnce struct {
	once  sync.Once
	image string
	err   error
}

// pauseFile remembers the pause image kubeadm named for a version
// ("<version> <image>"): asking kubeadm starts a large program.
const pauseFile = "/var/lib/fleet/pause-image"

// runtimeRead is the runtime check's question: containerd's config, the
// pause image fleet noted, the hosts.toml of every mirrored registry, and
// which hosts.toml files fleet wrote (shell builtins only: it runs in
// preflight on every node).
func runtimeRead(mirrors map[string][]string) hostRead {
	files := []string{nodeprep.ContainerdConfigFile, pauseFile}
	for path := range nodeprep.RegistryFiles(mirrors) {
		files = append(files, path)
	}
	slices.Sort(files[2:])
	return hostRead{`for f in ` + nodeprep.RegistryHostsDir + `/*/hosts.toml; do
	[ -f "$f" ] || continue
	IFS= read -r first < "$f" || :
	case $first in ` + exec.Quote(nodeprep.WrittenByFleet) + `*) echo "$f";; esac
done; :`, files}
}

// runtimeState is what the runtime check reads of a host.
type runtimeState struct {
	files map[string][]byte
	owned []string // hosts.toml files fleet wrote
}

func parseRuntimeState(answer string, files map[string][]byte) runtimeState {
	return runtimeState{files: files, owned: strings.Fields(answer)}
}

// runtimeView is what the runtime check saw of a host and what it wants.
type runtimeView struct {
	want, have, pause string
	ok                bool
	registry          []remoteFile // hosts.toml files to write
	stale             []string     // hosts.toml files fleet wrote that no mirror wants now
}

// todo lists the view's changes, for the check's answer.
func (v runtimeView) todo(version string) []string {
	var todo []string
	switch {
	case !v.ok:
		todo = append(todo, "write "+nodeprep.ContainerdConfigFile+" (the pause image of kubeadm "+version+", SystemdCgroup)")
	case v.have != v.want:
		todo = append(todo, "write "+nodeprep.ContainerdConfigFile+" (SystemdCgroup, pause image, registry hosts), restart containerd")
	}
	for _, f := range v.registry {
		todo = append(todo, "write "+f.path)
	}
	for _, f := range v.stale {
		todo = append(todo, "remove "+f)
	}
	return todo
}

// registryChanges are the hosts.toml files to write (missing or
// different) and those fleet wrote that no mirror wants any more.
func registryChanges(mirrors map[string][]string, st runtimeState) (write []remoteFile, stale []string) {
	want := nodeprep.RegistryFiles(mirrors)
	paths := slices.Sorted(maps.Keys(want))
	for _, path := range paths {
		if string(st.files[path]) != want[path] {
			write = append(write, remoteFile{path, []byte(want[path]), 0o644})
		}
	}
	for _, path := range st.owned {
		if _, wanted := want[path]; !wanted {
			stale = append(stale, path)
		}
	}
	return write, stale
}

// view reads the host (unless preflight did) and works out what it
// wants: containerd's config from the pause image its kubeadm names, and
// the registries' files. ok is false while kubeadm is not installed (a
// plan on a bare host).
func (p *runtimePhase) view(ctx context.Context, pr probe, host string) (runtimeView, error) {
	st, seen := pr.s.prep.runtime.take(host)
	if !seen {
		read := runtimeRead(p.mirrors)
		answer, files, err := pr.queryWithFiles(ctx, host, read.script, read.files...)
		if err != nil {
			return runtimeView{}, err
		}
		st = parseRuntimeState(answer, files)
	}
	var v runtimeView
	v.registry, v.stale = registryChanges(p.mirrors, st)
	v.have = string(st.files[nodeprep.ContainerdConfigFile])
	if ver, image, _ := strings.Cut(strings.TrimSpace(string(st.files[pauseFile])), " "); ver == p.version && image != "" {
		v.pause, v.ok = image, true
	} else {
		var err error
		if v.pause, v.ok, err = p.askPause(ctx, pr, host); err != nil {
			return v, err
		}
	}
	if v.ok {
		v.want = nodeprep.ContainerdConfig(v.pause)
	}
	return v, nil
}

func (p *runtimePhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	v, err := p.view(ctx, pr, host)
	if err != nil {
		return false, "", err
	}
	p.seen.keep(host, v)
	if todo := v.todo(p.version); len(todo) > 0 {
		return false, strings.Join(todo, "; "), nil
	}
	return true, "containerd configured (SystemdCgroup, the pause image of " + p.version + ", registry hosts)", nil
}

func (p *runtimePhase) run(ctx context.Context, r remote, host string) error {
	v, seen := p.seen.take(host)
	if !seen {
		var err error
		if v, err = p.view(ctx, r.probe, host); err != nil {
			return err
		}
	}
	if !v.ok {
		return fmt.Errorf("kubeadm is not installed: cannot tell containerd's pause image")
	}
	files := append([]remoteFile{{pauseFile, []byte(p.version + " " + v.pause + "\n"), 0o644}}, v.registry...)
	if v.have != v.want {
		files = append(files, remoteFile{nodeprep.ContainerdConfigFile, []byte(v.want), 0o644})
	}
	if len(v.stale) > 0 {
		// containerd reads the folder at each pull: no restart for these.
		if _, err := r.run(ctx, host, exec.Command(append([]string{"rm", "-f"}, v.stale...)...)); err != nil {
			return err
		}
	}
	if err := r.uploadAll(ctx, host, files); err != nil {
		return err
	}
	if v.have != v.want && r.s.runsSystemd(host) {
		if _, err := r.run(ctx, host, "systemctl restart containerd"); err != nil {
			return err
		}
	}
	// kubeadm fails at once on a runtime that does not answer yet: a
	// containerd just installed or restarted gets a moment to listen.
	_, err := r.run(ctx, host, exec.Command("sh", "-c", waitSocketScript, "fleet-runtime", strings.TrimPrefix(kubeadm.CRISocket, "unix://")))
	return err
}

// waitSocketScript waits up to 30 s for the Unix socket $1.
const waitSocketScript = `i=0
while [ ! -S "$1" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
[ -S "$1" ] || { echo "containerd does not listen at $1 after 30 s" >&2; exit 1; }`
