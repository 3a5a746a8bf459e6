#!/usr/bin/env bash
# Makes BuildKit v0.34.2, the parity tests' reference builder, available and
# running. It builds buildkitd and buildctl from the Go module proxy once
# (about 5 minutes on 2 cores), caches them under
# ~/.cache/slipway-buildkit/<version>/, and starts the daemon on its own
# socket and root when none answers there. Idempotent; on stdout it prints
# SLIPWAY_BUILDKIT_ADDR=<the daemon's address> and SLIPWAY_BUILDCTL=<path>.
#
#   SLIPWAY_BUILDKIT_ADDR   the daemon's address (default: unix:///run/slipway-buildkit/buildkitd.sock)
#   SLIPWAY_BUILDKIT_ROOT   its state directory (default: /var/lib/slipway-buildkit)
set -euo pipefail
version=v0.34.2
cache="${SLIPWAY_BUILDKIT_CACHE:-$HOME/.cache/slipway-buildkit}/$version"
addr="${SLIPWAY_BUILDKIT_ADDR:-unix:///run/slipway-buildkit/buildkitd.sock}"
root="${SLIPWAY_BUILDKIT_ROOT:-/var/lib/slipway-buildkit}"
log=/var/log/slipway-buildkitd.log

# is_version reports whether the Go binary $1 was built from buildkit $version.
is_version() {
	[ -x "$1" ] && go version -m "$1" 2>/dev/null | grep -Eq "(mod|dep)[[:space:]]+github.com/moby/buildkit[[:space:]]+$version([[:space:]]|$)"
}

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if ! is_version "$cache/buildkitd" || ! is_version "$cache/buildctl"; then
	# A machine-wide build of the same version (the project's tool script
	# puts one in /usr/local/bin) saves the five minutes.
	if is_version /usr/local/bin/buildkitd && is_version /usr/local/bin/buildctl; then
		cp /usr/local/bin/buildkitd /usr/local/bin/buildctl "$cache/"
	else
		echo "Building buildkitd and buildctl $version from the Go module proxy into $cache (about 5 minutes)" >&2
		work=$(mktemp -d)
		trap 'rm -rf "$work"' EXIT
		(
			cd "$work"
			go mod init slipway-buildkit >/dev/null 2>&1
			# buildkit's own go.mod has these two excludes and no replaces.
			go mod edit -require=github.com/moby/buildkit@$version \
				-exclude=github.com/davecgh/go-spew@v1.1.2-0.20180830191138-d8f796af33cc \
				-exclude=github.com/pmezard/go-difflib@v1.0.1-0.20181226105442-5d4384ee4fb2
			printf '//go:build tools\npackage tools\nimport (\n\t_ "github.com/moby/buildkit/cmd/buildkitd"\n\t_ "github.com/moby/buildkit/cmd/buildctl"\n)\n' >tools.go
			GOFLAGS=-mod=mod go mod tidy
			CGO_ENABLED=0 go build -o "$cache/buildkitd.new" github.com/moby/buildkit/cmd/buildkitd
			CGO_ENABLED=0 go build -o "$cache/buildctl.new" github.com/moby/buildkit/cmd/buildctl
		)
		mv "$cache/buildkitd.new" "$cache/buildkitd"
		mv "$cache/buildctl.new" "$cache/buildctl"
	fi
fi

if ! "$cache/buildctl" --addr "$addr" debug workers >/dev/null 2>&1; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "BuildKit's daemon must run as root: sudo $0" >&2
		exit 1
	fi
	command -v runc >/dev/null || { echo "buildkitd's OCI worker needs runc: apt-get install runc" >&2; exit 1; }
	case "$addr" in unix://*) mkdir -p "$(dirname "${addr#unix://}")" ;; esac
	echo "Starting buildkitd $version on $addr (log: $log)" >&2
	# Host networking: the test registry listens on the host's loopback.
	# The daemon must not inherit the lock (fd 9), or it would hold it.
	setsid nohup "$cache/buildkitd" --oci-worker-net=host --addr "$addr" --root "$root" \
		>"$log" 2>&1 </dev/null 9>&- &
	for _ in $(seq 100); do
		"$cache/buildctl" --addr "$addr" debug workers >/dev/null 2>&1 && break
		sleep 0.3
	done
	"$cache/buildctl" --addr "$addr" debug workers >/dev/null 2>&1 || { echo "buildkitd did not start; see $log" >&2; exit 1; }
fi
echo "SLIPWAY_BUILDKIT_ADDR=$addr"
echo "SLIPWAY_BUILDCTL=$cache/buildctl"
