package playbooks

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/inventory"
)

// A join cut short (lost link, killed sshd, Ctrl-C) leaves kubeadm's files,
// a kubelet, for a master static pods and an etcd member (a learner, or a
// voting member once promoted), and maybe a Node. kubeadm's preflight
// refuses such a host and kubeadm join refuses a Ready Node of its name, so
// the next run clears all of it before it joins the host again.

// orphanJoinPattern matches the command line of a kubeadm join fleet
// started (pkill -f). Cut off from fleet by a lost link, such a join runs on
// until sshd notices, which can be minutes after the link is back, and
// would change the host under the next run.
const orphanJoinPattern = "^kubeadm join .*--config " + fleetDir + "/"

// joinConfigName is the file, in fleetDir, that a join's kubeadm reads its
// config from. The command that runs kubeadm join removes it once kubeadm
// has ended, so a kubeadm join fleet started can only still run while the
// file is there.
const joinConfigName = "kubeadm-join.yaml"

// joinConfigPath is where that file is on the host.
const joinConfigPath = fleetDir + "/" + joinConfigName

// startedJoinTest is a shell condition, true when a kubeadm join (or
// fleet's own kubelet start) began on the host: the kubelet's files from
// kubeadm's kubelet-start phase, or static-pod manifests. Preflight and the
// join step must agree on it: what one calls a join cut short, the other
// clears.
// The manifests folder is looked into by the shell's globs, not ls: one
// process less on every preflight and join.
const startedJoinTest = `[ -e ` + bootstrapKubeconfig + ` ] || [ -e ` + kubeletFlagsFile + ` ] || [ -e ` + kubeletConfigFile +
	` ] || { m=; for m in /etc/kubernetes/manifests/* /etc/kubernetes/manifests/.[!.]* /etc/kubernetes/manifests/..?*; do [ -e "$m" ] || [ -L "$m" ] && break; m=; done; [ -n "$m" ]; }`

// joinLeftoversScript stops a kubeadm join a lost run left running ($1:
// the pattern of its command line), then prints "left" when a join left
// anything on the host: kubeadm's kubelet files, the kubelet's credentials
// or static-pod manifests, and "clean" otherwise. Only processes in the
// shell's own network and mount namespaces are the host's: a kubeadm in a
// container (a kind-style node on the same machine) belongs to another node.
// The process scan reads every process's command line, so it runs only
// when a join's config file ($2) is there: without it no kubeadm join of
// fleet's is running.
const joinLeftoversScript = `p=$1
ours() { "$@" --ns $$ --nslist net,mnt -f "$p"; }
rc=1
if [ -e "$2" ]; then ours pkill -TERM; rc=$?; fi
if [ $rc -gt 1 ]; then echo "pkill failed ($rc)" >&2; exit 1; fi
if [ $rc -eq 0 ]; then
	i=0
	while [ $i -lt 100 ] && ours pgrep >/dev/null; do
		i=$((i+1)); [ $i -eq 50 ] && ours pkill -KILL
		sleep 0.1
	done
fi
if [ -e ` + kubeletConf + ` ] || ` + startedJoinTest + `; then echo left; else echo clean; fi`

// joinLeftovers runs joinLeftoversScript: one round trip, on the path of
// every join.
func joinLeftovers(ctx context.Context, r remote, host string) (bool, error) {
	res, err := r.run(ctx, host, exec.Command("sh", "-c", joinLeftoversScript, "fleet-rejoin", orphanJoinPattern, joinConfigPath))
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(res.Stdout) == "left", nil
}

// clearCutJoin makes a host whose join was cut short joinable again, and
// says whether there was anything to clear. A master's etcd member goes
// first, while the host's etcd still runs: removing a member that was
// already promoted keeps the quorum only while it answers. The user is
// told: kubeadm reset on a host is not something to do quietly.
func clearCutJoin(ctx context.Context, r remote, inv *inventory.Inventory, access *clusterAccess, host string) (bool, error) {
	// Preflight looked under the run's lock, and nothing but this run has
	// changed the host since: a host it found untouched has nothing to clear.
	if untouched, seen := r.probe.s.untouchedAt.take(host); seen && untouched {
		return false, nil
	}
	left, err := joinLeftovers(ctx, r, host)
	if err != nil || !left {
		return false, err
	}
	step, cleared := "join-workers", "kubeadm reset, Node deleted"
	if inv.Host(host).Role == inventory.RoleMaster {
		if _, err := removeEtcdMember(ctx, r, inv, access.master, host); err != nil {
			return false, fmt.Errorf("remove the etcd member of a control-plane join cut short: %w", err)
		}
		step, cleared = "join-masters", "etcd member removed, "+cleared
	}
	if err := resetUntilClean(ctx, r, inv, host); err != nil {
		return false, fmt.Errorf("clear the leftovers of a join cut short: %w", err)
	}
	if err := access.client.CoreV1().Nodes().Delete(ctx, host, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("delete the Node a join cut short registered: %w", err)
	}
	r.note(step, host, "an earlier join was cut short here; cleared what it left ("+cleared+"), joining anew")
	return true, nil
}

// resetUntilClean resets the host until nothing of the join is left and
// its kubelet has stopped: a kubelet still finishing its TLS bootstrap
// when kubeadm reset ran can write kubelet.conf again before it stops.
func resetUntilClean(ctx context.Context, r remote, inv *inventory.Inventory, host string) error {
	master := inv.Host(host).Role == inventory.RoleMaster
	for attempt := 1; ; attempt++ {
		if err := resetNode(ctx, r, inv.Host(host)); err != nil {
			return err
		}
		left, err := joinLeftovers(ctx, r, host)
		if err == nil && !left && master {
			// What an etcd still running during the reset wrote after it:
			// kubeadm join refuses a master whose etcd folder is not empty.
			left, err = etcdDataLeft(ctx, r, host)
		}
		if err != nil || !left {
			return err
		}
		if attempt == 3 {
			return fmt.Errorf("kubeadm reset -f left the join's files behind three times")
		}
	}
}

// etcdDataLeft reports whether kubeadm's etcd data folder has anything in it.
func etcdDataLeft(ctx context.Context, r remote, host string) (bool, error) {
	res, err := r.run(ctx, host, "ls -A "+exec.Quote(etcdDataDir)+" 2>/dev/null || :")
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(res.Stdout) != "", nil
}

// etcdDataDir is where kubeadm's local etcd keeps its data (kubeadm sets
// it; fleet does not change it).
const etcdDataDir = "/var/lib/etcd"

// joinError wraps a failed join; when the connection died under it, it
// says what to do, since the join may be half-done on the host.
func joinError(what, host string, err error) error {
	if errors.Is(err, exec.ErrConnectionLost) {
		return fmt.Errorf("%s: %w; once %s is reachable, run fleet apply again: it clears the half-done join and joins %s anew", what, err, host, host)
	}
	return fmt.Errorf("%s: %w", what, err)
}
