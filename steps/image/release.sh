#!/usr/bin/env bash
# release.sh pushes both executor images and pins the released one into the
# catalog. `make release REGISTRY=… VERSION=…` runs it.
#
#   steps/image/release.sh [-b BIN_DIR] REGISTRY VERSION [SLIPWAY-BUILD FLAGS...]
#
# It pushes REGISTRY/slipway:VERSION and REGISTRY/slipway:VERSION-debug
# (extra flags, e.g. --insecure-registry for a local test registry, go to
# slipway-build), then rewrites tasks/images.go, the one place the catalog
# takes its image and version from:
#   BuilderImage = "REGISTRY/slipway:VERSION@sha256:…"
#   Version      = VERSION without a leading "v"
# and regenerates catalog/ from it, so that the catalog never names an image
# that was not pushed. Both digests are printed and written to
# BIN_DIR/release-digests.
#
# IMAGES_GO and CATALOG_DIR override tasks/images.go and catalog/, for the
# test that runs this script against a throw-away copy.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin=bin
if [ "${1:-}" = -b ] && [ $# -ge 2 ]; then
	bin="$2"
	shift 2
fi
if [ $# -lt 2 ] || [ -z "$1" ] || [ -z "$2" ]; then
	echo "usage: make release REGISTRY=ghcr.io/slipway-build VERSION=v0.1.0" >&2
	exit 2
fi
registry="${1%/}"
version="$2"
shift 2
images_go="${IMAGES_GO:-$repo/tasks/images.go}"
catalog="${CATALOG_DIR:-$repo/catalog}"

case "$version" in
*[!A-Za-z0-9._-]* | [.-]*)
	echo "$0: VERSION=$version is not a valid image tag: use letters, digits, '.', '_' and '-'" >&2
	exit 2
	;;
esac
# The file's form is checked before anything is pushed, so that a release
# never pushes images it then cannot pin.
for const in BuilderImage Version; do
	if ! grep -Eq "^[[:space:]]*$const[[:space:]]*=[[:space:]]*\"[^\"]*\"" "$images_go"; then
		echo "$0: $images_go has no line '$const = \"…\"' to rewrite: update this script to the file's new form" >&2
		exit 1
	fi
done

out="$(mktemp -d "${TMPDIR:-/tmp}/slipway-release.XXXXXX")"
trap 'rm -rf "$out"' EXIT

"$here/build.sh" -b "$bin" -t executor --destination "$registry/slipway:$version" \
	--digest-file "$out/executor" "$@"
"$here/build.sh" -b "$bin" -t debug --destination "$registry/slipway:$version-debug" \
	--digest-file "$out/debug" "$@"
executor="$(cat "$out/executor")"
debug="$(cat "$out/debug")"

pinned="$registry/slipway:$version@$executor"
# '|' cannot occur in an image reference, so it is a safe sed delimiter.
sed -i -E \
	-e "s|^([[:space:]]*BuilderImage[[:space:]]*=[[:space:]]*)\"[^\"]*\"|\1\"$pinned\"|" \
	-e "s|^([[:space:]]*Version[[:space:]]*=[[:space:]]*)\"[^\"]*\"|\1\"${version#v}\"|" \
	"$images_go"
grep -Fq "\"$pinned\"" "$images_go" || { echo "$0: rewriting $images_go failed" >&2; exit 1; }

# The values are passed, not re-read from the file: with IMAGES_GO set, the
# compiled constants are still the repository's.
(cd "$repo" && go run ./tasks/cmd/generate -out "$catalog" -builder-image "$pinned" -version "${version#v}")

printf '%s/slipway:%s@%s\n%s/slipway:%s-debug@%s\n' \
	"$registry" "$version" "$executor" "$registry" "$version" "$debug" | tee "$bin/release-digests"
