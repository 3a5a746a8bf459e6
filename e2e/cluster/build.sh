#!/usr/bin/env bash
# build.sh builds every binary the test cluster runs from Go modules, into
# $CLUSTER_CACHE/bin (see versions.sh). Each component is built in a
# throwaway module of its own so that Slipway's go.mod never grows Kubernetes
# server dependencies. A component whose binaries exist is skipped, so a
# warm run returns at once.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/versions.sh"

export CGO_ENABLED=0 GOFLAGS=-mod=mod
bin="$CLUSTER_CACHE/bin"
src="$CLUSTER_CACHE/src"
mkdir -p "$bin" "$src"

log() { echo "build.sh: $(date -u +%T) $*" >&2; }

have() { for f in "$@"; do [ -x "$bin/$f" ] || return 1; done; }

# newmod DIR MODULE@VERSION [replace lines...] writes a throwaway go.mod.
newmod() {
	local dir=$1 req=$2
	shift 2
	mkdir -p "$dir"
	{
		echo "module slipway.local/clusterbuild"
		echo "go 1.24"
		echo "require ${req%@*} ${req#*@}"
		if [ $# -gt 0 ]; then
			echo "replace ("
			printf '\t%s\n' "$@"
			echo ")"
		fi
	} >"$dir/go.mod"
	# A main package keeps `go mod download` from calling the module unused.
	[ -f "$dir/main.go" ] || echo 'package main; func main() {}' >"$dir/main.go"
}

build_kubernetes() {
	local k8s=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
	have "${k8s[@]}" && return
	log "kubernetes $K8S_VERSION (cold: ~15 min on 2 cores)"
	local dir="$src/kubernetes" modfile replaces=()
	# go install refuses k8s.io/kubernetes (its go.mod replaces the staging
	# modules with ./staging paths), so require it from a module of our own
	# that points each staging module at its published version instead.
	modfile=$(cd /tmp && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
	while read -r m; do
		replaces+=("$m => $m $K8S_STAGING_VERSION")
	done < <(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$modfile")
	newmod "$dir" "k8s.io/kubernetes@$K8S_VERSION" "${replaces[@]}"
	local minor=${K8S_VERSION#v1.}
	minor=${minor%%.*}
	# Tekton's webhook refuses a cluster whose version does not parse, so
	# stamp the version the way hack/lib/version.sh does.
	local ld="-s -w" p
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
		ld+=" -X $p.gitTreeState=clean -X $p.gitCommit=0000000000000000000000000000000000000000"
		ld+=" -X $p.buildDate=1970-01-01T00:00:00Z"
	done
	(cd "$dir" && go get "k8s.io/kubernetes@$K8S_VERSION" >/dev/null 2>&1 || true
		go build -trimpath -ldflags "$ld" -o "$bin/" \
			k8s.io/kubernetes/cmd/kube-apiserver \
			k8s.io/kubernetes/cmd/kube-controller-manager \
			k8s.io/kubernetes/cmd/kube-scheduler \
			k8s.io/kubernetes/cmd/kubelet \
			k8s.io/kubernetes/cmd/kube-proxy \
			k8s.io/kubernetes/cmd/kubectl)
}

build_etcd() {
	have etcd && return
	log "etcd $ETCD_VERSION"
	# Debian's etcd 3.4 lacks RequestWatchProgress, which makes Argo's
	# informers lag 10-40 s per event.
	local dir="$src/etcd"
	newmod "$dir" "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
	(cd "$dir" && go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 || true
		go build -trimpath -ldflags "-s -w" -o "$bin/etcd" go.etcd.io/etcd/server/v3)
}

build_tekton() {
	local cmds=(controller webhook entrypoint nop workingdirinit sidecarlogresults events)
	have "${cmds[@]/#/tekton-}" && return
	log "tekton $TEKTON_VERSION"
	local dir="$src/tekton" c
	# The same replace as tektoncd/pipeline's own go.mod.
	newmod "$dir" "github.com/tektoncd/pipeline@$TEKTON_VERSION" \
		"github.com/olekukonko/tablewriter => github.com/olekukonko/tablewriter v0.0.5"
	(cd "$dir" && go get "github.com/tektoncd/pipeline@$TEKTON_VERSION" >/dev/null 2>&1 || true
		go build -trimpath -ldflags "-s -w" -o "$dir/out/" "${cmds[@]/#/github.com/tektoncd/pipeline/cmd/}")
	for c in "${cmds[@]}"; do mv "$dir/out/$c" "$bin/tekton-$c"; done
}

build_argo() {
	have argo-workflow-controller argoexec && return
	log "argo $ARGO_VERSION"
	local dir="$src/argo" moddir copy
	newmod "$dir" "github.com/argoproj/argo-workflows/v3@$ARGO_VERSION"
	(cd "$dir" && go get "github.com/argoproj/argo-workflows/v3@$ARGO_VERSION" >/dev/null 2>&1 || true)
	moddir=$(cd "$dir" && go list -m -f '{{.Dir}}' github.com/argoproj/argo-workflows/v3)
	# Upstream's signal_linux.go is a symlink to signal_darwin.go and module
	# zips drop symlinks (argoexec then fails with "undefined: Setpgid").
	# go build -overlay may not replace files under GOMODCACHE, so build from
	# a pristine copy of the module zip in the cache, and supply each dropped
	# *_linux.go through the overlay, pointing at its darwin twin.
	copy="$dir/argo-workflows"
	if [ ! -f "$copy/go.mod" ]; then
		rm -rf "$copy.tmp" && cp -r "$moddir" "$copy.tmp" && chmod -R u+w "$copy.tmp" && mv "$copy.tmp" "$copy"
	fi
	newmod "$dir" "github.com/argoproj/argo-workflows/v3@$ARGO_VERSION" \
		"github.com/argoproj/argo-workflows/v3 => ./argo-workflows"
	local overlay="$dir/overlay.json" f linux missing=()
	for f in $(cd "$copy" && find . -name '*_darwin.go' -path '*osspecific*'); do
		linux="${f%_darwin.go}_linux.go"
		[ -e "$copy/$linux" ] || missing+=("\"$copy/${linux#./}\": \"$copy/${f#./}\"")
	done
	{ echo '{"Replace": {'; (IFS=,; echo "${missing[*]}"); echo '}}'; } >"$overlay"
	(cd "$dir" && go build -trimpath -overlay "$overlay" -ldflags "-s -w" -o "$dir/out/" \
		github.com/argoproj/argo-workflows/v3/cmd/workflow-controller \
		github.com/argoproj/argo-workflows/v3/cmd/argoexec)
	mv "$dir/out/workflow-controller" "$bin/argo-workflow-controller"
	mv "$dir/out/argoexec" "$bin/argoexec"
}

what=${1:-all}
case $what in
all) build_etcd; build_kubernetes; build_tekton; build_argo ;;
kubernetes | etcd | tekton | argo) "build_$what" ;;
*) echo "usage: $0 [all|kubernetes|etcd|tekton|argo]" >&2; exit 2 ;;
esac
log "done: $bin"
