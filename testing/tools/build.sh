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

# k8s_version MODULE_DIR prints the k8s.io/kubernetes version its go.mod pins.
k8s_version() {
	local v
	v=$(awk '($1 == "require" && $2 == "k8s.io/kubernetes") {print $3} ($1 == "k8s.io/kubernetes" && $2 ~ /^v/) {print $2}' "$1/go.mod" | head -1)
	if [ -z "$v" ]; then
		echo "build.sh: no k8s.io/kubernetes version in $1/go.mod" >&2
		exit 1
	fi
	echo "$v"
}

# k8s_ldflags VERSION prints the flags that stamp VERSION into a build, as
# Kubernetes' own release builds do (`kubeadm version` reads them).
k8s_ldflags() {
	echo "-s -w \
 -X k8s.io/component-base/version.gitVersion=$1 \
 -X k8s.io/component-base/version.gitMajor=1 \
 -X k8s.io/component-base/version.gitMinor=$(echo "$1" | cut -d. -f2) \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
}

k8s_version=$(k8s_version "$here/kubernetes")
k8s_ldflags=$(k8s_ldflags "$k8s_version")
next_version=$(k8s_version "$here/kubernetes-next")
next_ldflags=$(k8s_ldflags "$next_version")

# stamp LDFLAGS FILES... prints a hash of the inputs a tool is built from.
stamp() { { echo "$1"; shift; cat "$@"; } | sha256sum | cut -c1-16; }

# build MODULE_DIR LDFLAGS NAME=PACKAGE... builds each package unless its
# stamp is current. An upstream package is pinned by go.mod and go.sum; one
# of ours (./...) also by this module's Go files.
build() {
	local dir=$1 ldflags=$2; shift 2
	build_into "$out" "$dir" "$ldflags" "$@"
}

# build_into OUTDIR MODULE_DIR LDFLAGS NAME=PACKAGE... is build into OUTDIR.
build_into() {
	local out=$1 dir=$2 ldflags=$3; shift 3
	mkdir -p "$out"
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

# The next minor, for upgrade tests, in OUTDIR/VERSION: the upstream
# commands from their own module, and the emulated kubelet stamped with
# that version (what the emulation does on the API did not change).
build_into "$out/$next_version" "$here/kubernetes-next" "$next_ldflags" \
	kubeadm=k8s.io/kubernetes/cmd/kubeadm \
	kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
	kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
	kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler \
	kubectl=k8s.io/kubernetes/cmd/kubectl
build_into "$out/$next_version" "$here/kubernetes" "$next_ldflags" kubelet=./cmd/kubelet
