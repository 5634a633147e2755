package staticpod

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Running is a started static pod.
type Running struct {
	Manifest   Manifest
	containers []*container
	cancel     context.CancelFunc
	done       sync.WaitGroup
}

// Statuses reports each container.
func (r *Running) Statuses() []ContainerStatus {
	out := make([]ContainerStatus, len(r.containers))
	for i, c := range r.containers {
		out[i] = c.snapshot()
	}
	return out
}

// Runner keeps the processes in line with a static pod folder.
type Runner struct {
	Dir     string // staticPodPath
	LogDir  string // /var/log/pods
	Backoff Backoff
	// MaxGrace caps terminationGracePeriodSeconds, so reset is quick.
	MaxGrace time.Duration
	// OnError sees manifests that do not parse.
	OnError func(error)
	// Images is where the images of other versions are unpacked, one
	// folder per tag (ImageBinary); empty: every command from PATH.
	Images string

	mu   sync.Mutex
	pods map[string]*Running
}

// Sync reads the folder once and starts, stops or restarts pods to match.
func (r *Runner) Sync(ctx context.Context) {
	manifests, errs := Load(r.Dir)
	for _, err := range errs {
		if r.OnError != nil {
			r.OnError(err)
		}
	}
	r.mu.Lock()
	if r.pods == nil {
		r.pods = map[string]*Running{}
	}
	hashes := map[string]string{}
	for k, p := range r.pods {
		hashes[k] = p.Manifest.Hash
	}
	stop, start := Diff(hashes, manifests)
	var stopping []*Running
	for _, k := range stop {
		stopping = append(stopping, r.pods[k])
		delete(r.pods, k)
	}
	r.mu.Unlock()
	for _, p := range stopping {
		p.stop() // before starting its successor: ports must be free
	}
	for _, m := range start {
		p := r.start(ctx, m)
		r.mu.Lock()
		r.pods[m.Key()] = p
		r.mu.Unlock()
	}
}

// Pods returns the running pods.
func (r *Runner) Pods() []*Running {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*Running, 0, len(r.pods))
	for _, p := range r.pods {
		out = append(out, p)
	}
	return out
}

// StopAll stops every pod and waits for their processes to end.
func (r *Runner) StopAll() {
	r.mu.Lock()
	pods := r.pods
	r.pods = nil
	r.mu.Unlock()
	for _, p := range pods {
		p.stop()
	}
}

func (r *Runner) start(ctx context.Context, m Manifest) *Running {
	ctx, cancel := context.WithCancel(ctx)
	p := &Running{Manifest: m, cancel: cancel}
	grace := r.MaxGrace
	if s := m.Pod.Spec.TerminationGracePeriodSeconds; s != nil && time.Duration(*s)*time.Second < grace {
		grace = time.Duration(*s) * time.Second
	}
	dir := filepath.Join(r.LogDir, m.Pod.Namespace+"_"+m.Pod.Name)
	_ = os.MkdirAll(dir, 0o755)
	for _, spec := range m.Pod.Spec.Containers {
		spec.Command = slices.Clone(spec.Command)
		spec.Command[0] = ImageBinary(r.Images, spec.Image, spec.Command[0])
		c := &container{spec: spec, log: filepath.Join(dir, spec.Name+".log"), backoff: r.Backoff}
		p.containers = append(p.containers, c)
		p.done.Add(1)
		go func() {
			defer p.done.Done()
			c.run(ctx, grace)
		}()
	}
	return p
}

func (p *Running) stop() {
	p.cancel()
	p.done.Wait()
}

// ImageBinary is the program a container of image runs for command: the
// image's own copy in images/TAG/ when the test bed has that tag unpacked
// (registry.k8s.io/kube-apiserver:v1.35.4 runs images/v1.35.4/kube-apiserver),
// else command from PATH, the version every host has. This is how a
// kubeadm upgrade that rewrites a manifest's image runs the new version.
func ImageBinary(images, image, command string) string {
	if images == "" || strings.Contains(command, "/") {
		return command
	}
	ref := image[strings.LastIndex(image, "/")+1:]
	_, tag, ok := strings.Cut(ref, ":")
	if !ok || tag == "" || tag == "." || tag == ".." {
		return command
	}
	path := filepath.Join(images, tag, command)
	if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
		return path
	}
	return command
}
