#!/usr/bin/env bash
# build.sh builds the Slipway executor image with slipway-build itself.
#
#   steps/image/build.sh [-b BIN_DIR] [-t executor|debug] [-p PLATFORMS] [FLAGS...]
#
# -b  the directory holding the static step binaries (default: bin).
#     bin/slipway-build goes into /slipway/bin, and so does every other
#     executable bin/slipway-*, so a new step binary needs no change here,
#     except the programs slipway-build runs itself when started under their
#     name (steps/build/multicall.go): those are symbolic links to it.
# -t  the Dockerfile target: executor (default) or debug (adds busybox).
# -p  the platforms, comma-separated (e.g. linux/amd64,linux/arm64): one
#     image for each, joined into one OCI image index by slipway-index.
#     Platform OS/ARCH[/VARIANT] takes its step binaries from
#     BIN_DIR/OS-ARCH[-VARIANT] (make build-platforms cross-compiles them),
#     and the -debug busybox is Debian's busybox-static of that architecture
#     (apt-get download; the architecture must be added with dpkg
#     --add-architecture, as .ci/deps does). Nothing runs under emulation:
#     the images are only files. Without -p: one image for this machine's
#     platform, from BIN_DIR itself and the installed /bin/busybox.
#
# Without -p the remaining arguments go to slipway-build unchanged: the
# outputs (--no-push --tar-path …, --oci-layout-path …, or --destination …)
# and any registry flags. With -p each platform is built into an OCI layout
# of its own and the remaining arguments go to slipway-index, which pushes
# the index with its images, or writes it with --oci-layout-path, and
# writes the digest files; except --tar-path FILE, which a docker tarball
# cannot honour for an index: it writes the image of this machine's
# platform (tagged with the --destination values), for docker load.
# The build is always --reproducible in chroot mode, so two runs over the
# same binaries give the same digest.
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
platforms=
# Not getopts: it would take slipway-build's --flags for its own.
while [ $# -ge 2 ]; do
	case "$1" in
	-b) bin="$2" ;;
	-t) target="$2" ;;
	-p) platforms="$2" ;;
	*) break ;;
	esac
	shift 2
done

case "$target" in
executor | debug) ;;
*) echo "$0: -t $target: the targets are executor and debug" >&2; exit 2 ;;
esac

builder="$bin/slipway-build"
if [ ! -x "$builder" ]; then
	echo "$0: $builder is missing: run make build first" >&2
	exit 1
fi
if [ "$target" = debug ] && [ ! -x /bin/busybox ]; then
	echo "$0: /bin/busybox is missing: apt-get install busybox-static" >&2
	exit 1
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/slipway-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The parts every platform's context shares.
shared="$work/shared"
mkdir -p "$shared/certs" "$shared/rootfs/tmp" "$shared/rootfs/slipway/work" "$shared/rootfs/workspace" \
	"$shared/rootfs/kaniko/.docker" "$shared/rootfs/kaniko/ssl/certs"
chmod 0755 "$shared/rootfs" "$shared/rootfs/slipway" "$shared/rootfs/slipway/work" "$shared/rootfs/workspace" \
	"$shared/rootfs/kaniko" "$shared/rootfs/kaniko/.docker" "$shared/rootfs/kaniko/ssl" "$shared/rootfs/kaniko/ssl/certs"
# kaniko's paths, for scripts and StepActions written for kaniko's image:
# its binaries (the same files as Slipway's, by symbolic link) and its CA
# bundle location. /kaniko/.docker is read for credentials.
ln -s /slipway/bin/slipway-build "$shared/rootfs/kaniko/executor"
ln -s /slipway/bin/slipway-warm "$shared/rootfs/kaniko/warmer"
ln -s /slipway/certs/ca-certificates.crt "$shared/rootfs/kaniko/ssl/certs/ca-certificates.crt"
chmod 1777 "$shared/rootfs/tmp"
(cd "$here/../.." && "${GO:-go}" run ./steps/image/cabundle -o "$shared/certs/ca-certificates.crt")
install -m 0644 "$here/Dockerfile" "$shared/Dockerfile"

# slipway-build is a multi-call binary (steps/build/multicall.go): started
# under one of these names it runs that program, so that the image holds
# the registry client and the cloud SDKs once. The credential helpers are
# kaniko's three, so that a config.json naming credsStore ecr-login, gcr or
# acr-env works as it did under kaniko; slipway-build links them from their
# Go modules at the versions go.mod pins.
multicall="slipway-warm slipway-index docker-credential-gcr docker-credential-ecr-login docker-credential-acr-env"

# stage makes in $1 the build context of the step binaries in $2 (and, for
# the debug target, busybox $3).
stage() {
	local ctx="$1" steps="$2" busybox="${3:-}" name f applet
	mkdir -p "$ctx/bin" "$ctx/busybox"
	cp -a "$shared/." "$ctx/"
	[ -x "$steps/slipway-build" ] || { echo "$0: $steps/slipway-build is missing" >&2; exit 1; }
	install -m 0755 "$steps/slipway-build" "$ctx/bin/slipway-build"
	for name in $multicall; do
		# Relative, so that the link resolves inside the image and in $ctx.
		ln -s slipway-build "$ctx/bin/$name"
	done
	# Tarballs and OCI layouts written to bin/ also match slipway-*: only
	# executables are step binaries.
	for f in "$steps"/slipway-*; do
		[ -f "$f" ] && [ -x "$f" ] || continue
		[ -e "$ctx/bin/$(basename "$f")" ] || install -m 0755 "$f" "$ctx/bin/"
	done
	if [ "$target" = debug ]; then
		install -m 0755 "$busybox" "$ctx/busybox/busybox"
		# Relative links, so that they resolve the same wherever /busybox
		# is looked at from (inside the image, or the staged context). The
		# applets are listed by the machine's own busybox-static, which runs
		# without emulation: Debian builds every architecture of one version
		# with the same configuration.
		for applet in $(/bin/busybox --list); do
			[ "$applet" = busybox ] || ln -s busybox "$ctx/busybox/$applet"
		done
	fi
}

# debian_busybox downloads Debian's busybox-static for platform $1 and
# prints the path of its /bin/busybox.
debian_busybox() {
	local arch deb dir="$work/busybox-deb/${1//\//-}"
	arch=$(echo "$1" | cut -d/ -f2)
	case "$arch" in
	ppc64le) arch=ppc64el ;;
	arm) arch=armhf ;;
	386) arch=i386 ;;
	esac
	mkdir -p "$dir"
	(cd "$dir" && apt-get download -q "busybox-static:$arch" >&2) || {
		echo "$0: apt-get download busybox-static:$arch failed: add the architecture with dpkg --add-architecture $arch && apt-get update (.ci/deps does)" >&2
		return 1
	}
	deb=$(echo "$dir"/busybox-static_*.deb)
	dpkg-deb -x "$deb" "$dir/root"
	[ -x "$dir/root/bin/busybox" ] || { echo "$0: $deb holds no /bin/busybox" >&2; return 1; }
	echo "$dir/root/bin/busybox"
}

build() {
	"$builder" \
		--mode chroot \
		--context "dir://$1" \
		--dockerfile Dockerfile \
		--target "$target" \
		--reproducible \
		"${@:2}"
}

if [ -z "$platforms" ]; then
	stage "$work/context" "$bin" /bin/busybox
	build "$work/context" "$@"
	exit 0
fi

indexer="$bin/slipway-index"
[ -x "$indexer" ] || { echo "$0: $indexer is missing: run make build first" >&2; exit 1; }

# --tar-path and the names it tags go to this machine's platform's build;
# everything else to slipway-index.
tar_path=
names=()
index_args=()
while [ $# -gt 0 ]; do
	case "$1" in
	--tar-path | --tarPath) tar_path="${2:?$0: $1 needs a value}"; shift ;;
	--tar-path=* | --tarPath=*) tar_path="${1#*=}" ;;
	--destination | -d) names+=(--destination "${2:?$0: $1 needs a value}"); index_args+=("$1" "$2"); shift ;;
	--destination=*) names+=("$1"); index_args+=("$1") ;;
	*) index_args+=("$1") ;;
	esac
	shift
done
native="linux/$("${GO:-go}" env GOHOSTARCH)"

images=()
tar_done=
IFS=, read -r -a platform_list <<<"$platforms"
for p in "${platform_list[@]}"; do
	dir="${p//\//-}"
	steps="$bin/$dir"
	[ -d "$steps" ] || { echo "$0: $steps is missing: cross-compile the step binaries for $p there (make build-platforms)" >&2; exit 1; }
	busybox=
	if [ "$target" = debug ]; then busybox="$(debian_busybox "$p")"; fi
	stage "$work/context-$dir" "$steps" "$busybox"
	outputs=(--no-push --oci-layout-path "$work/layout-$dir")
	if [ -n "$tar_path" ] && [ "$p" = "$native" ]; then
		outputs+=(--tar-path "$tar_path" "${names[@]}")
		tar_done=1
	fi
	build "$work/context-$dir" --custom-platform "$p" "${outputs[@]}"
	images+=(--image "oci-layout://$work/layout-$dir")
done
if [ -n "$tar_path" ] && [ -z "$tar_done" ]; then
	echo "$0: --tar-path writes this machine's platform ($native), which -p $platforms lacks" >&2
	exit 2
fi

"$indexer" "${images[@]}" --platform "$platforms" "${index_args[@]}"
