#!/usr/bin/env bash
# Makes kaniko's executor image available to dockerd for `make bench`, where
# kaniko is the peer Slipway replaces. It builds /kaniko/executor from the
# Go module proxy once (a few minutes on 2 cores), caches the binary under
# ~/.cache/slipway-kaniko/<version>/, and builds a docker image laid out like
# kaniko's (deploy/Dockerfile of that version): /kaniko/executor,
# /kaniko/ssl/certs/ca-certificates.crt, /kaniko/.docker, /etc/nsswitch.conf,
# the same ENV, WORKDIR /workspace and ENTRYPOINT. Idempotent; on stdout it
# prints SLIPWAY_KANIKO_IMAGE=<the image's name>.
#
#   kaniko.sh [VERSION]          default v1.24.0, the last upstream release
#   SLIPWAY_KANIKO_MODULE        the module to build it from (default
#                                github.com/GoogleContainerTools/kaniko). A
#                                fork that kept upstream's module path, such as
#                                github.com/osscontainertools/kaniko, is built
#                                through a replace directive. (On 2026-11-30
#                                the proxy refused osscontainertools/kaniko
#                                v1.28.3: "not available".)
#
# Left out of the image: the three credential helpers (the benchmark's
# registry needs none, and they change no build's speed) and the warmer.
# The CA bundle is the one the Slipway image ships (steps/image/cabundle),
# not this machine's trust store; kaniko takes Debian's, the same Mozilla set.
set -euo pipefail
version="${1:-v1.24.0}"
upstream=github.com/GoogleContainerTools/kaniko
module="${SLIPWAY_KANIKO_MODULE:-$upstream}"
slug=$(basename "$(dirname "$module")")-$version
cache="${SLIPWAY_KANIKO_CACHE:-$HOME/.cache/slipway-kaniko}/$slug"
image="slipway-bench-kaniko:$slug"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# is_built reports whether the Go binary $1 was built from $module $version
# (a fork shows as upstream's module replaced by it).
is_built() {
	[ -x "$1" ] || return 1
	if [ "$module" = "$upstream" ]; then
		go version -m "$1" 2>/dev/null | grep -Eq "(mod|dep)[[:space:]]+$upstream[[:space:]]+$version([[:space:]]|$)"
	else
		go version -m "$1" 2>/dev/null | grep -Eq "=>[[:space:]]+$module[[:space:]]+$version([[:space:]]|$)"
	fi
}

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if ! is_built "$cache/executor"; then
	echo "Building kaniko's executor $module@$version from the Go module proxy into $cache (a few minutes)" >&2
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	(
		cd "$work"
		# A throwaway module, as for buildkitd: upstream's go.mod has no
		# replace or exclude directives that a dependent would lose.
		go mod init slipway-bench-kaniko >/dev/null 2>&1
		if [ "$module" = "$upstream" ]; then
			go mod edit -require="$upstream@$version"
		else
			go mod edit -require="$upstream@v1.24.0" -replace="$upstream=$module@$version"
		fi
		printf '//go:build tools\npackage tools\nimport _ "%s/cmd/executor"\n' "$upstream" >tools.go
		GOFLAGS=-mod=mod go mod tidy
		# kaniko's Makefile: static, stripped, the version stamped in.
		CGO_ENABLED=0 go build -trimpath \
			-ldflags "-s -w -X $upstream/pkg/version.version=$version" \
			-o "$cache/executor.new" "$upstream/cmd/executor"
		go mod download -json "$module@$version" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p' >"$cache/srcdir"
	)
	mv "$cache/executor.new" "$cache/executor"
fi

sum=$(sha256sum "$cache/executor" | cut -d' ' -f1)
if [ "$(docker image inspect --format '{{index .Config.Labels "org.slipway.bench.executor"}}' "$image" 2>/dev/null)" != "$sum" ]; then
	echo "Building the docker image $image" >&2
	ctx=$(mktemp -d)
	trap 'rm -rf "$ctx"' EXIT
	mkdir -p "$ctx/rootfs/kaniko/ssl/certs" "$ctx/rootfs/kaniko/.docker" "$ctx/rootfs/etc" "$ctx/rootfs/workspace"
	# kaniko: `mkdir -p /kaniko && chmod 777 /kaniko`, for non-root runs.
	chmod 0777 "$ctx/rootfs/kaniko"
	cp "$cache/executor" "$ctx/rootfs/kaniko/executor"
	(cd "$here/../.." && go run ./steps/image/cabundle -o "$ctx/rootfs/kaniko/ssl/certs/ca-certificates.crt")
	src=$(cat "$cache/srcdir" 2>/dev/null || true)
	if [ -n "$src" ] && [ -f "$src/files/nsswitch.conf" ]; then
		cp "$src/files/nsswitch.conf" "$ctx/rootfs/etc/nsswitch.conf"
	else
		printf 'passwd: compat\ngroup: compat\nshadow: compat\nhosts: files dns\n' >"$ctx/rootfs/etc/nsswitch.conf"
	fi
	chmod -R u+w,go-w "$ctx/rootfs/etc" "$ctx/rootfs/kaniko/ssl"
	cat >"$ctx/Dockerfile" <<EOF
FROM scratch
COPY rootfs/ /
ENV HOME=/root USER=root PATH=/usr/local/bin:/kaniko SSL_CERT_DIR=/kaniko/ssl/certs
ENV DOCKER_CONFIG=/kaniko/.docker/ DOCKER_CREDENTIAL_GCR_CONFIG=/kaniko/.config/gcloud/docker_credential_gcr_config.json
WORKDIR /workspace
LABEL org.slipway.bench.executor=$sum org.slipway.bench.module=$module org.slipway.bench.version=$version
ENTRYPOINT ["/kaniko/executor"]
EOF
	DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >&2
fi
echo "SLIPWAY_KANIKO_IMAGE=$image"
