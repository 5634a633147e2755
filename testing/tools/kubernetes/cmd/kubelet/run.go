package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/version"
	taintutil "k8s.io/kubernetes/pkg/util/taints"

	"github.com/fleetops/fleet/testing/tools/kubernetes/internal/node"
	"github.com/fleetops/fleet/testing/tools/kubernetes/internal/staticpod"
	"github.com/fleetops/fleet/testing/tools/kubernetes/internal/tlsboot"
)

// errRestart asks the service wrapper to start the kubelet again, with the
// flags kubeadm has since written (kubeadm-flags.env).
var errRestart = errors.New("configuration changed, restarting")

// imagesDir holds the control-plane images of other Kubernetes versions,
// one folder per tag, as the test bed's layer unpacks them (sim.ImagesDir).
const imagesDir = "/usr/local/lib/fleet-sim/images"

// The files the service wrapper reads the kubelet's flags from.
const (
	flagsEnv     = "/var/lib/kubelet/kubeadm-flags.env"
	extraArgsEnv = "/etc/default/kubelet"
)

func run(ctx context.Context, f flags) error {
	configPath := f.get("config", "/var/lib/kubelet/config.yaml")
	cfg, cfgData, err := loadConfig(configPath)
	if err != nil {
		return err // the service wrapper retries, like systemd's Restart=always
	}
	name, err := nodeName(f)
	if err != nil {
		return err
	}
	ip, err := nodeIP(f)
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05.000")+" kubelet: "+format+"\n", args...)
	}
	logf("node %s (%s), static pods from %s", name, ip, cfg.StaticPodPath)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := serveHealthz(ctx, cfg); err != nil {
		return err
	}
	runner := &staticpod.Runner{
		Dir: cfg.StaticPodPath, LogDir: "/var/log/pods",
		Backoff: staticpod.DefaultBackoff, MaxGrace: 5 * time.Second,
		OnError: func(err error) { logf("static pod: %v", err) },
		Images:  imagesDir,
	}
	// Every static pod process ends with the kubelet: a restarted kubelet
	// starts them again rather than adopting strangers.
	defer runner.StopAll()

	cfgStamp := string(cfgData)
	api := make(chan error, 1)
	go func() { api <- apiLoop(ctx, f, name, ip, runner, logf) }()

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if cfg.StaticPodPath != "" {
			runner.Sync(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case err := <-api:
			return err
		case <-tick.C:
		}
		// kubeadm reset removes the config: stop everything, as a stopped
		// kubelet would be. kubeadm join rewrites flags: restart with them.
		data, err := os.ReadFile(configPath)
		if err != nil {
			return fmt.Errorf("kubelet config %s is gone: stopping", configPath)
		}
		if string(data) != cfgStamp || staleFlags(f, flagsEnv, extraArgsEnv) {
			return errRestart
		}
	}
}

// apiLoop gets credentials (TLS bootstrap if needed), registers the node,
// then heartbeats and keeps mirror pods in line until ctx ends.
func apiLoop(ctx context.Context, f flags, name, ip string, runner *staticpod.Runner, logf func(string, ...any)) error {
	kubeconfig := f.get("kubeconfig", "/etc/kubernetes/kubelet.conf")
	bootstrap := f.get("bootstrap-kubeconfig", "")
	for {
		if _, err := os.Stat(kubeconfig); err == nil {
			break
		}
		if bootstrap != "" {
			if _, err := os.Stat(bootstrap); err == nil {
				err := tlsboot.Run(ctx, tlsboot.Request{NodeName: name, Bootstrap: bootstrap, Kubeconfig: kubeconfig,
					CertDir: filepath.Join(f.get("root-dir", "/var/lib/kubelet"), "pki"), Logf: logf})
				if err != nil {
					return err
				}
				logf("tls bootstrap done: %s written", kubeconfig)
				break
			}
		}
		select { // standalone until kubeadm writes a kubeconfig
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	// kubeadm join writes the flags, then restarts the kubelet: the Node
	// registers with the flags of that start (labels, taints), never with
	// those of the standalone kubelet before it.
	if staleFlags(f, flagsEnv, extraArgsEnv) {
		return errRestart
	}
	rest, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
	}
	rest.Timeout = 10 * time.Second
	client, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return err
	}
	labels, taints, err := registration(f)
	if err != nil {
		return err
	}
	agent := &node.Agent{Client: client, Name: name, IP: ip, Version: version.Get().GitVersion,
		Runtime: "sim-containerd://1.7.0", LeaseSeconds: 40, Labels: labels, Taints: taints}
	for ctx.Err() == nil {
		if err := agent.Register(ctx); err == nil {
			logf("registered node %s", name)
			break
		} else {
			logf("%v", err)
		}
		sleep(ctx, time.Second)
	}
	if err := agent.WatchPods(ctx, 30*time.Second); err != nil {
		logf("%v: listing pods at each sync instead", err)
	}
	lastBeat := time.Now()
	for ctx.Err() == nil {
		if time.Since(lastBeat) >= 10*time.Second {
			if err := agent.Heartbeat(ctx); err != nil {
				logf("heartbeat: %v", err)
			} else {
				lastBeat = time.Now()
			}
		}
		if err := agent.SyncMirrors(ctx, staticPods(runner)); err != nil {
			logf("%v", err)
		}
		if err := agent.FinishDeletions(ctx); err != nil {
			logf("%v", err)
		}
		if err := agent.RunPauseVersions(ctx); err != nil {
			logf("%v", err)
		}
		sleep(ctx, 2*time.Second)
	}
	return nil
}

func staticPods(r *staticpod.Runner) []node.StaticPod {
	var out []node.StaticPod
	for _, p := range r.Pods() {
		sp := node.StaticPod{Pod: p.Manifest.Pod, Hash: p.Manifest.Hash}
		for _, s := range p.Statuses() {
			sp.Containers = append(sp.Containers, node.ContainerState{Name: s.Name, Running: s.Running, StartedAt: s.StartedAt, RestartCount: s.RestartCount})
		}
		out = append(out, sp)
	}
	return out
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// registration reads what the Node registers with, as the kubelet's
// --node-labels (key=value,...) and --register-with-taints
// (key=value:Effect,...) say.
func registration(f flags) (map[string]string, []corev1.Taint, error) {
	labels := map[string]string{}
	if spec := f.get("node-labels", ""); spec != "" {
		for _, kv := range strings.Split(spec, ",") {
			k, v, _ := strings.Cut(kv, "=")
			labels[k] = v
		}
	}
	var taints []corev1.Taint
	if spec := f.get("register-with-taints", ""); spec != "" {
		var err error
		if taints, _, err = taintutil.ParseTaints(strings.Split(spec, ",")); err != nil {
			return nil, nil, fmt.Errorf("--register-with-taints: %w", err)
		}
	}
	return labels, taints, nil
}

// staleFlags reports whether the flags files, as the service wrapper
// sources them (KUBELET_KUBEADM_ARGS="..." from kubeadm-flags.env, then
// KUBELET_EXTRA_ARGS from /etc/default/kubelet, which wins), hold a flag
// whose value differs from the one this kubelet started with. Values, not
// the files' times: kubeadm may write its file between the wrapper
// reading it and the kubelet starting.
func staleFlags(started flags, paths ...string) bool {
	var kubeadmArgs, extraArgs string
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if v, ok := strings.CutPrefix(line, "KUBELET_KUBEADM_ARGS="); ok {
				kubeadmArgs = strings.Trim(v, `"'`)
			}
			if v, ok := strings.CutPrefix(line, "KUBELET_EXTRA_ARGS="); ok {
				extraArgs = strings.Trim(v, `"'`)
			}
		}
	}
	for k, v := range parseFlags(strings.Fields(kubeadmArgs + " " + extraArgs)) {
		if started[k] != v {
			return true
		}
	}
	return false
}
