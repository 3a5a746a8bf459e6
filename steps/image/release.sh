#!/usr/bin/env bash
# release.sh makes a Slipway release. `make release REGISTRY=… VERSION=…`
# runs it, after building the step binaries stamped with VERSION and the
# supplychain tool.
#
#   steps/image/release.sh [-b BIN_DIR] REGISTRY VERSION [SLIPWAY-BUILD FLAGS...]
#
# In order, stopping at the first failure:
#  1. builds REGISTRY/slipway:VERSION and :VERSION-debug with slipway-build
#     itself (build.sh -p), each a multi-platform index over every platform
#     of IMAGE_PLATFORMS (the Makefile's; the step binaries for each are in
#     BIN_DIR/OS-ARCH, `make build-platforms`), joined and pushed by
#     slipway-index (extra flags, e.g. --insecure-registry for a local test
#     registry, go to slipway-index); the digests are the indexes';
#  2. attaches to each an SPDX 2.3 SBOM and a SLSA v1 provenance statement
#     as OCI 1.1 referrers (the referrers tag schema where the registry has
#     no referrers API);
#  3. signs both digests with cosign: SIGNING_KEY=FILE (password in
#     COSIGN_PASSWORD), or KEYLESS=1 in CI; with neither it says so in one
#     line and signs nothing. KEYLESS=1 uses Sigstore's public instance and
#     the ambient OIDC identity unless FULCIO_URL, REKOR_URL, OIDC_ISSUER,
#     IDENTITY_TOKEN (a file, or the token) or TRUSTED_ROOT (a
#     trusted_root.json) say otherwise (supplychain's flags of those names);
#  4. builds static binaries of every step for each of PLATFORMS (default
#     "linux/amd64 linux/arm64") into DIST (default BIN_DIR/release), as
#     slipway-STEP-OS-ARCH, writes SHA256SUMS and signs it the same way;
#  5. rewrites tasks/images.go, the one place the catalog takes its image
#     and version from (BuilderImage = "REGISTRY/slipway:VERSION@sha256:…",
#     Version = VERSION without a leading "v"), and regenerates catalog/, so
#     that the catalog never names an image that was not pushed;
#  6. writes DIST/RELEASE_NOTES.md, a skeleton to finish by hand;
#  7. unless TAG=0 (the default when CI=true), commits tasks/images.go and
#     catalog/ as "Release VERSION" and tags that commit VERSION, the tag
#     the catalog's git-resolver examples name. The binaries are stamped
#     with the last commit before the pins (see the Makefile), so a rebuild
#     at the tag gives the same digests.
# The digests are printed and written to BIN_DIR/release-digests.
#
# IMAGES_GO and CATALOG_DIR override tasks/images.go and catalog/; with
# either set nothing is committed or tagged. PLATFORMS (OS/ARCH, space- or
# comma-separated) chooses the binaries' platforms. Another architecture's
# binaries compile little here: build-platforms has compiled the same
# packages for each image platform already.
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
dist="${DIST:-$bin/release}"
supplychain="${SUPPLYCHAIN:-$bin/tools/supplychain}"
go="${GO:-go}"
platforms="$(echo "${PLATFORMS:-linux/amd64 linux/arm64}" | tr ',' ' ')"
[ -n "${platforms// /}" ] || { echo "$0: PLATFORMS is empty" >&2; exit 2; }
tag="${TAG:-}"
if [ -z "$tag" ]; then
	if [ "${CI:-}" = true ] || [ -n "${IMAGES_GO:-}${CATALOG_DIR:-}" ]; then tag=0; else tag=1; fi
fi
sign=()
if [ -n "${SIGNING_KEY:-}" ] && [ -n "${KEYLESS:-}" ]; then
	echo "$0: SIGNING_KEY and KEYLESS=1 exclude each other" >&2
	exit 2
elif [ -n "${SIGNING_KEY:-}" ]; then
	[ -r "$SIGNING_KEY" ] || { echo "$0: SIGNING_KEY=$SIGNING_KEY cannot be read" >&2; exit 2; }
	sign=(--key "$SIGNING_KEY")
elif [ -n "${KEYLESS:-}" ]; then
	sign=(--keyless)
fi
keyless_vars=(FULCIO_URL:fulcio-url REKOR_URL:rekor-url OIDC_ISSUER:oidc-issuer IDENTITY_TOKEN:identity-token TRUSTED_ROOT:trusted-root)
for v in "${keyless_vars[@]}"; do
	var="${v%%:*}"
	[ -n "${!var:-}" ] || continue
	if [ -z "${KEYLESS:-}" ]; then
		echo "$0: $var is for keyless signing: set KEYLESS=1 too" >&2
		exit 2
	fi
	sign+=("--${v#*:}" "${!var}")
done
[ -x "$supplychain" ] || { echo "$0: $supplychain is missing: run make supplychain" >&2; exit 1; }
image_platforms="${IMAGE_PLATFORMS:-}"
[ -n "$image_platforms" ] || { echo "$0: IMAGE_PLATFORMS is not set: run make release, which sets it and builds the step binaries for each" >&2; exit 2; }

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

if [ "$tag" = 1 ]; then
	# The tag goes on a commit holding exactly this tree plus the pins.
	if [ -n "$(git -C "$repo" status --porcelain)" ]; then
		echo "$0: the work tree has uncommitted changes: commit them, or release with TAG=0" >&2
		exit 1
	fi
	if git -C "$repo" rev-parse -q --verify "refs/tags/$version" >/dev/null; then
		echo "$0: tag $version exists already: release with TAG=0 to rebuild it" >&2
		exit 1
	fi
fi

out="$(mktemp -d "${TMPDIR:-/tmp}/slipway-release.XXXXXX")"
trap 'rm -rf "$out"' EXIT
started="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
commit="${COMMIT:-$(git -C "$repo" log -1 --format=%H -- . ':(exclude)catalog' ':(exclude)tasks/images.go' 2>/dev/null || true)}"

"$here/build.sh" -b "$bin" -t executor -p "$image_platforms" --destination "$registry/slipway:$version" \
	--digest-file "$out/executor" "$@"
"$here/build.sh" -b "$bin" -t debug -p "$image_platforms" --destination "$registry/slipway:$version-debug" \
	--digest-file "$out/debug" "$@"
executor="$(cat "$out/executor")"
debug="$(cat "$out/debug")"
finished="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
images=("$registry/slipway@$executor" "$registry/slipway@$debug")

# 2. SBOM and provenance, as referrers of each image.
"$supplychain" attest --image "${images[0]}" --target executor \
	--source-commit "$commit" --started "$started" --finished "$finished"
"$supplychain" attest --image "${images[1]}" --target debug \
	--source-commit "$commit" --started "$started" --finished "$finished"

# 3. Signatures of the digests.
if [ ${#sign[@]} -eq 0 ]; then
	echo "release: no SIGNING_KEY (or KEYLESS=1): the images and binaries are not signed"
else
	"$supplychain" sign "${sign[@]}" --image "${images[0]}" --image "${images[1]}"
fi

# 4. Static binaries and their checksums. The host platform's are the ones
# in BIN_DIR, which the images hold: `make build` built them with the flags
# used here (SLIPWAY_LDFLAGS, -trimpath, CGO_ENABLED=0), so building them
# again would give the same bytes. Every other platform is built here.
rm -rf "$dist"
mkdir -p "$dist"
host="$("$go" env GOHOSTOS)/$("$go" env GOHOSTARCH)"
for platform in $platforms; do
	IFS=/ read -r os arch variant <<<"$platform"
	goarm=
	case "$arch/$variant" in
	arm/v6 | arm/v7) goarm="${variant#v}" ;;
	*/) ;;
	*) echo "$0: PLATFORMS: $platform: binaries are made for OS/ARCH (and arm/v6, arm/v7)" >&2; exit 2 ;;
	esac
	for s in ${STEPS:-build warm}; do
		binary="$dist/slipway-$s-$os-$arch${variant:+-$variant}"
		if [ "$platform" = "$host" ] && [ -x "$bin/slipway-$s" ]; then
			install -m 0755 "$bin/slipway-$s" "$binary"
			continue
		fi
		(cd "$repo" && CGO_ENABLED=0 GOOS=$os GOARCH=$arch GOARM=$goarm "$go" build -trimpath \
			-ldflags="${SLIPWAY_LDFLAGS:--s -w}" -o "$binary" "./steps/$s")
	done
done
(cd "$dist" && sha256sum slipway-* >SHA256SUMS)
if [ ${#sign[@]} -gt 0 ]; then
	"$supplychain" sign-blob "${sign[@]}" --file "$dist/SHA256SUMS"
fi

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

# 6. The release notes' skeleton.
previous="$(git -C "$repo" describe --tags --abbrev=0 --match 'v*' 2>/dev/null || true)"
{
	echo "# Slipway $version"
	echo
	echo "<!-- Highlights, breaking changes and upgrade notes: write them here. -->"
	echo
	echo "## Images"
	echo
	echo "| image | digest |"
	echo "| --- | --- |"
	echo "| \`$registry/slipway:$version\` | \`$executor\` |"
	echo "| \`$registry/slipway:$version-debug\` | \`$debug\` |"
	echo
	echo "Both are multi-platform indexes for ${image_platforms//,/, }."
	echo
	echo "Each carries an SPDX 2.3 SBOM and a SLSA v1 provenance statement as OCI referrers."
	if [ ${#sign[@]} -gt 0 ]; then
		echo
		echo "## Verify"
		echo
		echo '```sh'
		if [ -n "${SIGNING_KEY:-}" ]; then
			echo "cosign verify --key cosign.pub --insecure-ignore-tlog $registry/slipway@$executor"
			echo "cosign verify-blob --key cosign.pub --insecure-ignore-tlog --signature SHA256SUMS.sig SHA256SUMS"
		else
			echo "cosign verify --certificate-identity-regexp 'https://github.com/slipway-build/slipway/' \\"
			echo "  --certificate-oidc-issuer https://token.actions.githubusercontent.com $registry/slipway@$executor"
			echo "cosign verify-blob --bundle SHA256SUMS.sigstore.json --certificate-identity-regexp 'https://github.com/slipway-build/slipway/' \\"
			echo "  --certificate-oidc-issuer https://token.actions.githubusercontent.com SHA256SUMS"
		fi
		echo '```'
	fi
	echo
	echo "## Binaries"
	echo
	echo '```'
	cat "$dist/SHA256SUMS"
	echo '```'
	echo
	echo "## Changes${previous:+ since $previous}"
	echo
	git -C "$repo" log --no-merges --format='- %s' ${previous:+"$previous"..}HEAD -- . ':(exclude)catalog' ':(exclude)tasks/images.go' 2>/dev/null | head -200 || true
} >"$dist/RELEASE_NOTES.md"

# 7. The release commit and tag.
if [ "$tag" = 1 ]; then
	git -C "$repo" add -- "$images_go" "$catalog"
	git -C "$repo" commit -q -m "Release $version: pin $registry/slipway:$version@$executor" -- "$images_go" "$catalog"
	git -C "$repo" tag -a "$version" -m "Slipway $version"
	echo "release: tagged $version; push it with: git push origin $version"
else
	echo "release: TAG=0: no release commit or tag"
fi

printf '%s/slipway:%s@%s\n%s/slipway:%s-debug@%s\n' \
	"$registry" "$version" "$executor" "$registry" "$version" "$debug" | tee "$bin/release-digests"
