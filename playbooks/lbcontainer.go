package playbooks

import (
	"context"
	"fmt"
	"net"
	"path"
	"strings"

	"github.com/fleetops/fleet/internal/exec"
	"github.com/fleetops/fleet/internal/lb"
	"github.com/fleetops/fleet/inventory"
)

// The load balancer as a container (runAs: container): docker runs the
// image's nginx with fleet's whole configuration bound in read-only. The
// folder is bound, not the files: a file replaced by rename on the host
// would not reach a single-file bind, and fleet always writes by rename.
const (
	lbContainerName    = "fleet-lb"
	lbContainerDir     = "/etc/fleet/lb"    // on the host
	lbContainerMount   = "/etc/nginx/fleet" // where the container sees it
	lbContainerStream  = "kube-apiserver.conf"
	lbContainerStaging = lbContainerDir + "/.staging"
)

// lbContainerFiles are the files the container's folder holds, the stream
// block first: the main file includes it, so it must be in place before.
func lbContainerFiles(stream []byte) ([][2]string, error) {
	main, err := lb.ContainerMain(lbContainerStream)
	if err != nil {
		return nil, err
	}
	return [][2]string{{lbContainerStream, string(stream)}, {"nginx.conf", string(main)}}, nil
}

// lbContainerUpToDate: both files are what fleet would write and the
// container runs the inventory's image.
func lbContainerUpToDate(ctx context.Context, p probe, inv *inventory.Inventory, host string, stream []byte) (bool, string, error) {
	files, err := lbContainerFiles(stream)
	if err != nil {
		return false, "", err
	}
	var want strings.Builder
	script := ""
	for _, f := range files {
		script += fmt.Sprintf("cat %s 2>/dev/null; echo; ", exec.Quote(path.Join(lbContainerDir, f[0])))
		want.WriteString(f[1] + "\n")
	}
	image := inv.NginxImage()
	script += "docker container inspect -f '{{.State.Running}} {{.Config.Image}}' " + lbContainerName + " 2>/dev/null || echo missing"
	res, err := p.query(ctx, host, script)
	if err != nil {
		return false, "", err
	}
	want.WriteString("true " + image + "\n")
	if res.Stdout != want.String() {
		return false, "", nil
	}
	return true, "the " + lbContainerName + " container (" + image + ") serves the current upstream", nil
}

// applyLBContainer stages both files, has nginx -t check them in a
// throwaway container of the same image, and only then makes them live:
// a running container reloads (SIGHUP), a missing, stopped or other-image
// one is (re)created. One upload of two files, one script.
func applyLBContainer(ctx context.Context, r remote, inv *inventory.Inventory, host string, stream []byte) error {
	files, err := lbContainerFiles(stream)
	if err != nil {
		return err
	}
	if err := r.ensureDir(ctx, host, lbContainerStaging, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		if err := r.upload(ctx, host, path.Join(lbContainerStaging, f[0]), []byte(f[1]), 0o644); err != nil {
			return err
		}
	}
	_, port, err := net.SplitHostPort(inv.Cluster.ControlPlaneEndpoint)
	if err != nil {
		return err
	}
	res, err := r.run(ctx, host, exec.Command("sh", "-c", lbContainerScript, "fleet-lb",
		lbContainerDir, inv.NginxImage(), lbContainerName, port, lbContainerMount, lbContainerStream,
		nginxLive, nginxConf))
	switch {
	case err != nil && res.ExitCode == lbRejected:
		return fmt.Errorf("nginx -t in a %s container rejected the new config (the live one is untouched): %w", inv.NginxImage(), err)
	case err != nil:
		return fmt.Errorf("install the config and start or reload the %s container: %w", lbContainerName, err)
	}
	return nil
}

// lbContainerScript: $1 the host folder, $2 the image, $3 the container
// name, $4 the API port, $5 the folder in the container, $6 the stream
// file, $7 and $8 the host-service files of an earlier runAs: service.
//
// The check container runs with no network (nginx -t binds nothing) and is
// removed whatever it said; a leftover of an interrupted run is removed
// first. The live files are replaced by rename, stream block first. A host
// nginx that served fleet's config before gives the port up.
const lbContainerScript = `set -e
dir=$1 image=$2 name=$3 port=$4 mnt=$5 stream=$6
check="$name-check"
docker rm -f "$check" >/dev/null 2>&1 || true
docker create --name "$check" --network none -v "$dir:$mnt:ro" "$image" nginx -t -c "$mnt/.staging/nginx.conf" >/dev/null
docker start "$check" >/dev/null
code=$(docker wait "$check")
if [ "$code" != 0 ]; then
	docker logs "$check" 2>&1 | tail -n 20 >&2
	docker rm -f "$check" >/dev/null 2>&1 || true
	exit 3
fi
docker rm -f "$check" >/dev/null
for f in "$stream" nginx.conf; do
	cp "$dir/.staging/$f" "$dir/$f.fleet-tmp" && mv -f "$dir/$f.fleet-tmp" "$dir/$f"
done
if [ -e "$7" ]; then
	rm -f "$7"
	cp -p "$8" "$8.fleet-tmp"
	sed -i -e '\#^include /etc/nginx/fleet.d/\*.conf;$#d' -e '/^# fleet: the Kubernetes API load balancer$/d' "$8.fleet-tmp"
	mv -f "$8.fleet-tmp" "$8"
	if [ -s /run/nginx.pid ] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
		nginx -s reload
		i=0; while [ $i -lt 100 ] && ss -Hltn "sport = :$port" | grep -q .; do sleep 0.1; i=$((i+1)); done
	fi
fi
state=$(docker container inspect -f '{{.State.Running}} {{.Config.Image}}' "$name" 2>/dev/null) || state=missing
if [ "$state" = "true $image" ]; then
	docker kill -s HUP "$name" >/dev/null
else
	docker rm -f "$name" >/dev/null 2>&1 || true
	docker create --name "$name" --restart unless-stopped -p "$port:$port" -v "$dir:$mnt:ro" \
		--label io.fleet.role=loadbalancer "$image" nginx -c "$mnt/nginx.conf" -g 'daemon off;' >/dev/null
	docker start "$name" >/dev/null
fi`

// lbContainerGone: no fleet container and no fleet folder on the host.
func lbContainerGone(ctx context.Context, p probe, host string) (bool, string, error) {
	res, err := p.query(ctx, host, "if [ -e "+lbContainerDir+" ] || docker container inspect "+lbContainerName+" >/dev/null 2>&1; then echo present; else echo gone; fi")
	if err != nil {
		return false, "", err
	}
	if res.Stdout == "gone\n" {
		return true, "no " + lbContainerName + " container and no fleet config on the load balancer", nil
	}
	return false, "", nil
}

// removeLBContainer removes the container (and a check container an
// interrupted run left), then the folder: nothing of fleet's stays.
func removeLBContainer(ctx context.Context, r remote, host string) error {
	script := exec.Command("docker", "rm", "-f", lbContainerName, lbContainerName+"-check") + " >/dev/null 2>&1 || true\n" +
		exec.Command("rm", "-rf", lbContainerDir)
	if _, err := r.run(ctx, host, script); err != nil {
		return fmt.Errorf("remove the %s container: %w", lbContainerName, err)
	}
	return nil
}

// lbLiveStream is where the live stream block is on the load balancer.
func lbLiveStream(inv *inventory.Inventory) string {
	if inv.NginxRunAs() == inventory.NginxContainer {
		return path.Join(lbContainerDir, lbContainerStream)
	}
	return nginxLive
}
