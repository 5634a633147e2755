#!/usr/bin/env bash
# Prepares a Debian 12 machine to build fleet and run its tests and demo:
# OpenSSH server, nginx and keepalived binaries for the simulated hosts (their services
# are not used; every simulated host runs its own), iproute2 and util-linux
# for the namespaces, a docker CLI, tmux and chromium for the tests of the
# terminal view and the HTML run report, and the Go modules. Idempotent; needs root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "setup: run as root (it installs Debian packages)" >&2
	exit 1
fi

packages=(openssh-server openssh-client nginx libnginx-mod-stream keepalived iproute2 util-linux mount sudo curl ca-certificates make git gcc libc6-dev conntrack socat ethtool sqlite3 tmux chromium dpkg-dev apt-utils gnupg python3
	# dnf, rpm and createrepo_c: simulated Rocky hosts install with the real
	# dnf from rpm repositories the tests build (testing/rpmrepo).
	dnf rpm createrepo-c dnf-plugins-core)
# The docker CLI drives the load balancer's nginx container (runAs:
# container) against the simulated hosts' emulated engine; Debian's
# docker.io brings it (its daemon is kept from starting, below).
command -v docker >/dev/null || packages+=(docker.io)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# policy-rc.d keeps the packages from starting their own sshd, nginx,
	# keepalived and dockerd on the machine: the simulated hosts run their own.
	printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
	rm -f /usr/sbin/policy-rc.d
fi

# Debian's own containerd, runc and nginx, as .deb files: the distribution
# mirror of bare simulated hosts serves them (testing/sim/mirror.go).
debs=/var/cache/fleet-sim/debs
if ! ls "$debs"/containerd_*.deb "$debs"/runc_*.deb "$debs"/nginx_*.deb "$debs"/nginx-common_*.deb "$debs"/libnginx-mod-stream_*.deb >/dev/null 2>&1; then
	mkdir -p "$debs"
	[ -n "$(find /var/lib/apt/lists -name '*Packages*' -print -quit)" ] || apt-get update -qq
	(cd "$debs" && apt-get download -qq containerd runc nginx nginx-common libnginx-mod-stream)
fi

# Go: the version go.mod asks for, from /usr/local/go as our machines have it.
export PATH="/usr/local/go/bin:$PATH"
want=$(awk '/^go /{print $2}' go.mod)
if ! command -v go >/dev/null; then
	echo "setup: Go $want or newer is needed at /usr/local/go or on PATH (Debian 12's golang-go is 1.19)" >&2
	exit 1
fi
have=$(go env GOVERSION | sed 's/^go//')
if [ "$(printf '%s\n%s\n' "$want" "$have" | sort -V | head -1)" != "$want" ]; then
	echo "setup: Go $have is older than go.mod's $want" >&2
	exit 1
fi
go mod download
echo "setup: ready (Go $have, $(sshd -V 2>&1 | head -1), $(nginx -v 2>&1))"
