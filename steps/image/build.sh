#!/usr/bin/env bash
# build.sh builds the Slipway executor image with slipway-build itself.
#
#   steps/image/build.sh [-b BIN_DIR] [-t executor|debug] [SLIPWAY-BUILD FLAGS...]
#
# -b  the directory holding the static step binaries (default: bin).
#     bin/slipway-build goes into /slipway/bin, and so does every other
#     executable bin/slipway-*, so a new step binary needs no change here,
#     except the programs slipway-build runs itself when started under their
#     name (steps/build/multicall.go): those are symbolic links to it.
# -t  the Dockerfile target: executor (default) or debug (adds busybox).
#
# The remaining arguments go to slipway-build unchanged: the outputs
# (--no-push --tar-path …, --oci-layout-path …, or --destination …) and any
# registry flags. The build is always --reproducible in chroot mode, so two
# runs over the same binaries give the same digest.
#
# The build context is staged in a temporary directory because the image
# holds files from outside the repository (the CA bundle, busybox from
# busybox-static) and directories whose mode matters (/tmp is 1777).
#
# The CA bundle is the Mozilla root set of the Go module pinned in go.mod
# (steps/image/cabundle), never this machine's trust store, which may hold a
# local or proxy CA that would then ship to every user.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bin=bin
target=executor
# Not getopts: it would take slipway-build's --flags for its own.
while [ $# -ge 2 ]; do
	case "$1" in
	-b) bin="$2" ;;
	-t) target="$2" ;;
	*) break ;;
	esac
	shift 2
done

case "$target" in
executor | debug) ;;
*) echo "$0: -t $target: the targets are executor and debug" >&2; exit 2 ;;
esac

busybox=/bin/busybox
builder="$bin/slipway-build"
if [ ! -x "$builder" ]; then
	echo "$0: $builder is missing: run make build first" >&2
	exit 1
fi

ctx="$(mktemp -d "${TMPDIR:-/tmp}/slipway-image-context.XXXXXX")"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/bin" "$ctx/certs" "$ctx/busybox" \
	"$ctx/rootfs/tmp" "$ctx/rootfs/slipway/work" "$ctx/rootfs/workspace" \
	"$ctx/rootfs/kaniko/.docker" "$ctx/rootfs/kaniko/ssl/certs"
chmod 0755 "$ctx/rootfs" "$ctx/rootfs/slipway" "$ctx/rootfs/slipway/work" "$ctx/rootfs/workspace" \
	"$ctx/rootfs/kaniko" "$ctx/rootfs/kaniko/.docker" "$ctx/rootfs/kaniko/ssl" "$ctx/rootfs/kaniko/ssl/certs"
# kaniko's paths, for scripts and StepActions written for kaniko's image:
# its binaries (the same files as Slipway's, by symbolic link) and its CA
# bundle location. /kaniko/.docker is read for credentials.
ln -s /slipway/bin/slipway-build "$ctx/rootfs/kaniko/executor"
ln -s /slipway/bin/slipway-warm "$ctx/rootfs/kaniko/warmer"
ln -s /slipway/certs/ca-certificates.crt "$ctx/rootfs/kaniko/ssl/certs/ca-certificates.crt"
chmod 1777 "$ctx/rootfs/tmp"

# slipway-build is a multi-call binary (steps/build/multicall.go): started
# under one of these names it runs that program, so that the image holds
# the registry client and the cloud SDKs once. The credential helpers are
# kaniko's three, so that a config.json naming credsStore ecr-login, gcr or
# acr-env works as it did under kaniko; slipway-build links them from their
# Go modules at the versions go.mod pins.
multicall="slipway-warm slipway-index docker-credential-gcr docker-credential-ecr-login docker-credential-acr-env"
install -m 0755 "$builder" "$ctx/bin/slipway-build"
for name in $multicall; do
	# Relative, so that the link resolves inside the image and in $ctx.
	ln -s slipway-build "$ctx/bin/$name"
done
# Tarballs and OCI layouts written to bin/ also match slipway-*: only
# executables are step binaries.
for f in "$bin"/slipway-*; do
	[ -f "$f" ] && [ -x "$f" ] || continue
	[ -e "$ctx/bin/$(basename "$f")" ] || install -m 0755 "$f" "$ctx/bin/"
done
(cd "$here/../.." && "${GO:-go}" run ./steps/image/cabundle -o "$ctx/certs/ca-certificates.crt")
install -m 0644 "$here/Dockerfile" "$ctx/Dockerfile"

if [ "$target" = debug ]; then
	if [ ! -x "$busybox" ]; then
		echo "$0: $busybox is missing: apt-get install busybox-static" >&2
		exit 1
	fi
	install -m 0755 "$busybox" "$ctx/busybox/busybox"
	# Relative links, so that they resolve the same wherever /busybox is
	# looked at from (inside the image, or the staged context).
	for applet in $("$busybox" --list); do
		[ "$applet" = busybox ] || ln -s busybox "$ctx/busybox/$applet"
	done
fi

# Not exec: the trap removes the staged context afterwards.
"$builder" \
	--mode chroot \
	--context "dir://$ctx" \
	--dockerfile Dockerfile \
	--target "$target" \
	--reproducible \
	"$@"
