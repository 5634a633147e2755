#!/usr/bin/env bash
# Builds the binaries the simulated hosts run, from the published Go modules:
# kubeadm, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
# (k8s.io/kubernetes), etcd and etcdutl (go.etcd.io/etcd), cfssl and cfssljson
# (github.com/cloudflare/cfssl), and the emulated kubelet and engines.
#
#   testing/tools/build.sh OUTDIR
#
# Cached: a tool is rebuilt only when its module files or sources changed
# (a stamp beside each binary records what it was built from). Go's build
# cache makes a rebuild after a small change quick too.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR}
mkdir -p "$out"
export PATH="/usr/local/go/bin:$PATH" CGO_ENABLED=0 GOFLAGS=-mod=mod

k8s_version=$(awk '($1 == "require" && $2 == "k8s.io/kubernetes") {print $3} ($1 == "k8s.io/kubernetes" && $2 ~ /^v/) {print $2}' "$here/kubernetes/go.mod" | head -1)
if [ -z "$k8s_version" ]; then
	echo "build.sh: no k8s.io/kubernetes version in $here/kubernetes/go.mod" >&2
	exit 1
fi
minor=$(echo "$k8s_version" | cut -d. -f2)
k8s_ldflags="-s -w \
 -X k8s.io/component-base/version.gitVersion=$k8s_version \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$minor \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"

# stamp LDFLAGS FILES... prints a hash of the inputs a tool is built from.
stamp() { { echo "$1"; shift; cat "$@"; } | sha256sum | cut -c1-16; }

# build MODULE_DIR LDFLAGS NAME=PACKAGE... builds each package unless its
# stamp is current. An upstream package is pinned by go.mod and go.sum; one
# of ours (./...) also by this module's Go files.
build() {
	local dir=$1 ldflags=$2; shift 2
	for spec in "$@"; do
		local name=${spec%%=*} pkg=${spec#*=} want
		if [ "${pkg#./}" != "$pkg" ]; then
			want=$(cd "$dir" && stamp "$ldflags" go.mod go.sum $(find . -name '*.go' | sort))
		else
			want=$(cd "$dir" && stamp "$ldflags" go.mod go.sum)
		fi
		if [ -x "$out/$name" ] && [ "$(cat "$out/$name.stamp" 2>/dev/null)" = "$want" ]; then
			continue
		fi
		local start=$(date +%s)
		(cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$out/$name" "$pkg")
		echo "$want" > "$out/$name.stamp"
		echo "built $name in $(( $(date +%s) - start ))s"
	done
}

build "$here/kubernetes" "$k8s_ldflags" \
	kubeadm=k8s.io/kubernetes/cmd/kubeadm \
	kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
	kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
	kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
	kubectl=k8s.io/kubernetes/cmd/kubectl

# The simulated node's own pieces share the Kubernetes module (client-go at
# the same version) and its version ldflags, so `kubelet --version` is real.
build "$here/kubernetes" "$k8s_ldflags" \
	kubelet=./cmd/kubelet \
	sim-containerd=./cmd/sim-containerd \
	sim-dockerd=./cmd/sim-dockerd

build "$here/etcd" "-s -w" etcd=go.etcd.io/etcd/server/v3 etcdutl=go.etcd.io/etcd/etcdutl/v3

# cfssl keeps its certificate database in sqlite, which needs cgo.
CGO_ENABLED=1 build "$here/cfssl" "-s -w" \
	cfssl=github.com/cloudflare/cfssl/cmd/cfssl \
	cfssljson=github.com/cloudflare/cfssl/cmd/cfssljson
