package playbooks

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/fleetops/fleet/internal/exec"
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

// runtimeView is what the runtime check saw of a host.
type runtimeView struct {
	want, have, pause string
	ok                bool
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

// runtimeRead is the runtime check's question: two files.
var runtimeRead = hostRead{":", []string{nodeprep.ContainerdConfigFile, pauseFile}}

// wantConfig is containerd's config for this host, from the pause image
// its kubeadm names, and the config it has; ok is false while kubeadm is
// not installed (a plan on a bare host).
func (p *runtimePhase) wantConfig(ctx context.Context, pr probe, host string) (want, have, pause string, ok bool, err error) {
	files, seen := pr.s.prep.runtime.take(host)
	if !seen {
		if files, err = pr.readFiles(ctx, host, runtimeRead.files...); err != nil {
			return "", "", "", false, err
		}
	}
	have = string(files[nodeprep.ContainerdConfigFile])
	if v, image, _ := strings.Cut(strings.TrimSpace(string(files[pauseFile])), " "); v == p.version && image != "" {
		return nodeprep.ContainerdConfig(image, p.mirrors), have, image, true, nil
	}
	pause, ok, err = p.askPause(ctx, pr, host)
	if err != nil || !ok {
		return "", have, "", false, err
	}
	return nodeprep.ContainerdConfig(pause, p.mirrors), have, pause, true, nil
}

func (p *runtimePhase) check(ctx context.Context, pr probe, host string) (bool, string, error) {
	want, have, pause, ok, err := p.wantConfig(ctx, pr, host)
	if err == nil {
		p.seen.keep(host, runtimeView{want, have, pause, ok})
	}
	if err != nil || !ok {
		return false, "write " + nodeprep.ContainerdConfigFile + " (the pause image of kubeadm " + p.version + ", SystemdCgroup)", err
	}
	if have != want {
		return false, "write " + nodeprep.ContainerdConfigFile + " (SystemdCgroup, pause image), restart containerd", nil
	}
	return true, "containerd configured (SystemdCgroup, the pause image of " + p.version + ")", nil
}

func (p *runtimePhase) run(ctx context.Context, r remote, host string) error {
	v, seen := p.seen.take(host)
	if !seen {
		var err error
		if v.want, v.have, v.pause, v.ok, err = p.wantConfig(ctx, r.probe, host); err != nil {
			return err
		}
	}
	want, have, pause := v.want, v.have, v.pause
	if !v.ok {
		return fmt.Errorf("kubeadm is not installed: cannot tell containerd's pause image")
	}
	files := []remoteFile{{pauseFile, []byte(p.version + " " + pause + "\n"), 0o644}}
	if have != want {
		files = append(files, remoteFile{nodeprep.ContainerdConfigFile, []byte(want), 0o644})
	}
	if err := r.uploadAll(ctx, host, files); err != nil {
		return err
	}
	if have == want || !r.s.runsSystemd(host) {
		return nil
	}
	_, err := r.run(ctx, host, "systemctl restart containerd")
	return err
}
