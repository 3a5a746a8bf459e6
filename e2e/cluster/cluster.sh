#!/usr/bin/env bash
# cluster.sh builds, starts and stops Slipway's test cluster: one Kubernetes
# node with Tekton and Argo, built from Go modules (build.sh), on Debian's
# containerd, runc and CNI plugins, plus a CNCF distribution registry with
# htpasswd auth. Everything runs inside a network namespace this script makes,
# so no traffic leaves it: not to the machine's own address, not outside.
#
#	cluster.sh up      build what is missing, start, install Tekton and Argo,
#	                   push the executor image, render the catalog
#	cluster.sh down    stop every process, remove the netns, cgroups and state
#	cluster.sh status  say what runs
#	cluster.sh exec CMD...  run CMD inside the cluster's netns (kubectl, tests)
#
# The node's processes all start from one `unshare --mount` inside the netns,
# so they share one private mount namespace: kubelet's volume mounts are where containerd's runc
# sees them, and none of those mounts reach the machine's own namespace.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
. "$here/versions.sh"

STATE=${SLIPWAY_CLUSTER_STATE:-/var/lib/slipway-cluster}
NS=slipway-cluster
NODE=slipway-node
NODE_IP=10.200.0.1
SVC_CIDR=10.96.0.0/16
API_SVC_IP=10.96.0.1
POD_CIDR=10.244.0.0/24
REGISTRY=$NODE_IP:5000
# The sandbox and helper images are never pulled: they are imported into
# containerd, with fixed tags so no pull policy ever resolves them remotely.
IMG_PREFIX=slipway.local
PAUSE_IMAGE=$IMG_PREFIX/pause:1
BUSYBOX_IMAGE=$IMG_PREFIX/busybox:1
# Kernel tunables the kubelet sets machine-wide; down puts them back.
KUBELET_SYSCTLS="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes"
CGROUP_ROOT=slipway-cluster

bin=$CLUSTER_CACHE/bin
images=$CLUSTER_CACHE/images
pki=$STATE/pki
logs=$STATE/logs
pids=$STATE/pids
cfg=$STATE/config
ctrd=$STATE/containerd
kubeconfig=$STATE/kubeconfig
KUBECTL=$bin/kubectl

log() { echo "cluster.sh: $(date -u +%T) $*" >&2; }
die() { log "error: $*"; exit 1; }
in_ns() { ip netns exec "$NS" "$@"; }
k() { in_ns "$KUBECTL" --kubeconfig "$kubeconfig" "$@"; }
ctr_() { ctr --address "$ctrd/containerd.sock" --namespace k8s.io "$@"; }

# wait_for DESC SECONDS CMD...: poll CMD until it succeeds.
wait_for() {
	local desc=$1 secs=$2 i
	shift 2
	for ((i = 0; i < secs * 2; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	die "$desc did not come up within ${secs}s; see $logs/"
}

tools() {
	"$here/build.sh" all
	(cd "$repo" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$bin/pause" ./e2e/cluster/pause &&
		CGO_ENABLED=0 go build -trimpath -o "$bin/clusterimg" ./e2e/cluster/clusterimg)
}

# image NAME ARGS...: make $images/NAME.tar with clusterimg unless present.
image() {
	local n=$1 kind=$2
	shift 2
	[ -s "$images/$n.tar" ] && return
	"$bin/clusterimg" "$kind" -o "$images/$n.tar.tmp" "$@" && mv "$images/$n.tar.tmp" "$images/$n.tar"
}

make_images() {
	mkdir -p "$images"
	local c
	image pause scratch -tag "$PAUSE_IMAGE" -entrypoint /pause "$bin/pause=/pause"
	image busybox busybox -tag "$BUSYBOX_IMAGE"
	# The multi-platform tests' base is an index of that busybox and
	# Debian's busybox-static:arm64 (the dpkg architecture .ci/deps adds).
	if [ ! -s "$images/busybox-arm64.tar" ]; then
		local deb
		deb=$(mktemp -d)
		(cd "$deb" && apt-get download -q busybox-static:arm64 >&2) || { rm -rf "$deb"; die "apt-get download busybox-static:arm64 (dpkg --add-architecture arm64 && apt-get update; .ci/deps does)"; }
		dpkg-deb -x "$deb"/busybox-static_*.deb "$deb/root"
		image busybox-arm64 busybox -tag "$IMG_PREFIX/busybox-arm64:1" -busybox "$deb/root/bin/busybox" -arch arm64
		rm -rf "$deb"
	fi
	# ko's layout: Tekton's controller finds its helpers at /ko-app/<name>;
	# 65532 is the nonroot user Tekton's deployments expect.
	for c in controller webhook entrypoint nop workingdirinit sidecarlogresults events; do
		image "tekton-$c" scratch -tag "$IMG_PREFIX/tekton/$c:$TEKTON_VERSION" -user 65532 \
			-entrypoint "/ko-app/$c" -env PATH=/ko-app -env KO_DATA_PATH=/var/run/ko "$bin/tekton-$c=/ko-app/$c"
	done
	# Argo runs both by name from PATH; 8737 is Argo's own nonroot user.
	image argo-workflow-controller scratch -tag "$IMG_PREFIX/argo/workflow-controller:$ARGO_VERSION" -user 8737 \
		-entrypoint /bin/workflow-controller -env PATH=/bin "$bin/argo-workflow-controller=/bin/workflow-controller"
	image argoexec scratch -tag "$IMG_PREFIX/argo/argoexec:$ARGO_VERSION" -user 8737 \
		-entrypoint /bin/argoexec -env PATH=/bin "$bin/argoexec=/bin/argoexec"
}

make_pki() {
	[ -s "$pki/admin.crt" ] && return
	mkdir -p "$pki"
	(
		cd "$pki"
		openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj /CN=slipway-cluster-ca 2>/dev/null
		cat >apiserver.ext <<-EOF
			subjectAltName=IP:$NODE_IP,IP:$API_SVC_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
			extendedKeyUsage=serverAuth
		EOF
		openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj /CN=kube-apiserver 2>/dev/null
		openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile apiserver.ext -out apiserver.crt 2>/dev/null
		# One client identity for the control plane, the node and the tests:
		# this cluster exists for one test run and trusts only itself.
		echo extendedKeyUsage=clientAuth >client.ext
		openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=system:node:$NODE" 2>/dev/null
		openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile client.ext -out admin.crt 2>/dev/null
		openssl genrsa -out sa.key 2048 2>/dev/null
		openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
	)
	"$KUBECTL" config --kubeconfig "$kubeconfig" set-cluster c --server "https://$NODE_IP:6443" --certificate-authority "$pki/ca.crt" --embed-certs >/dev/null
	"$KUBECTL" config --kubeconfig "$kubeconfig" set-credentials admin --client-certificate "$pki/admin.crt" --client-key "$pki/admin.key" --embed-certs >/dev/null
	"$KUBECTL" config --kubeconfig "$kubeconfig" set-context c --cluster c --user admin >/dev/null
	"$KUBECTL" config --kubeconfig "$kubeconfig" use-context c >/dev/null
}

make_netns() {
	ip netns list | grep -qx "$NS\( .*\)\?" && die "netns $NS exists: run '$0 down' first"
	ip netns add "$NS"
	in_ns ip link set lo up
	# No dummy devices on this kernel: the node's address lives on an empty
	# bridge, and the service CIDR is routed to it so ClusterIP traffic from
	# the node's own processes stays here for kube-proxy's DNAT. There is no
	# default route, so nothing can leave the namespace.
	in_ns ip link add slw-node type bridge
	in_ns ip addr add "$NODE_IP/24" dev slw-node
	in_ns ip link set slw-node up
	in_ns ip route add "$SVC_CIDR" dev slw-node
	in_ns sysctl -qw net.ipv4.ip_forward=1
}

write_configs() {
	mkdir -p "$cfg" "$logs" "$pids" "$ctrd" "$STATE/pod-logs" "$STATE/cni/net.d" "$STATE/registry/data" "$STATE/kubelet"
	local pw
	if [ ! -s "$STATE/registry/password" ]; then
		head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$STATE/registry/password"
	fi
	pw=$(cat "$STATE/registry/password")
	htpasswd -Bbn slipway "$pw" >"$STATE/registry/htpasswd"
	cat >"$cfg/registry.yml" <<-EOF
		version: 0.1
		log: {level: info}
		storage:
		  filesystem: {rootdirectory: $STATE/registry/data}
		  delete: {enabled: true}
		http: {addr: "$REGISTRY"}
		auth:
		  htpasswd: {realm: slipway-cluster, path: $STATE/registry/htpasswd}
	EOF
	cat >"$cfg/containerd.toml" <<-EOF
		version = 2
		root = "$ctrd/root"
		state = "$ctrd/state"
		[grpc]
		  address = "$ctrd/containerd.sock"
		[ttrpc]
		  address = "$ctrd/containerd.sock.ttrpc"
		[plugins."io.containerd.internal.v1.opt"]
		  path = "$ctrd/opt"
		[plugins."io.containerd.grpc.v1.cri"]
		  sandbox_image = "$PAUSE_IMAGE"
		  # Root here lacks CAP_SYS_RESOURCE: without this runc fails every
		  # pod with "can't get final child's PID from pipe: EOF".
		  restrict_oom_score_adj = true
		  netns_mounts_under_state_dir = true
		  enable_selinux = false
		  [plugins."io.containerd.grpc.v1.cri".cni]
		    bin_dir = "/usr/lib/cni"
		    conf_dir = "$STATE/cni/net.d"
		  [plugins."io.containerd.grpc.v1.cri".containerd]
		    snapshotter = "overlayfs"
		    default_runtime_name = "runc"
		    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
		      runtime_type = "io.containerd.runc.v2"
		      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
		        BinaryName = "/usr/sbin/runc"
		        Root = "$ctrd/runc"
		  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$REGISTRY"]
		    endpoint = ["http://$REGISTRY"]
		  [plugins."io.containerd.grpc.v1.cri".registry.configs."$REGISTRY".auth]
		    username = "slipway"
		    password = "$pw"
	EOF
	cat >"$STATE/cni/net.d/10-slipway.conflist" <<-EOF
		{"cniVersion": "0.4.0", "name": "slipway", "plugins": [
		  {"type": "bridge", "bridge": "slw-cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
		   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
		            "dataDir": "$STATE/cni/ipam"}},
		  {"type": "portmap", "capabilities": {"portMappings": true}}
		]}
	EOF
	: >"$cfg/resolv.conf"
	cat >"$cfg/kubelet.yaml" <<-EOF
		apiVersion: kubelet.config.k8s.io/v1beta1
		kind: KubeletConfiguration
		failCgroupV1: false
		cgroupDriver: cgroupfs
		cgroupRoot: /$CGROUP_ROOT
		containerRuntimeEndpoint: unix://$ctrd/containerd.sock
		address: $NODE_IP
		healthzBindAddress: 127.0.0.1
		readOnlyPort: 0
		failSwapOn: false
		resolvConf: $cfg/resolv.conf
		serializeImagePulls: false
		authentication:
		  anonymous: {enabled: false}
		  webhook: {enabled: false}
		  x509: {clientCAFile: $pki/ca.crt}
		authorization: {mode: AlwaysAllow}
		tlsCertFile: $pki/apiserver.crt
		tlsPrivateKeyFile: $pki/apiserver.key
		evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
		imageGCHighThresholdPercent: 100
		imageGCLowThresholdPercent: 99
		enforceNodeAllocatable: []
		localStorageCapacityIsolation: false
		registerNode: true
		podLogsDir: $STATE/pod-logs
	EOF
	cat >"$cfg/kube-proxy.yaml" <<-EOF
		apiVersion: kubeproxy.config.k8s.io/v1alpha1
		kind: KubeProxyConfiguration
		mode: iptables
		clientConnection: {kubeconfig: $kubeconfig}
		hostnameOverride: $NODE
		clusterCIDR: $POD_CIDR
		bindAddress: $NODE_IP
		healthzBindAddress: 127.0.0.1:10256
		metricsBindAddress: 127.0.0.1:10249
		# Zero leaves the machine-wide conntrack table alone.
		conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
	EOF
}

make_cgroups() {
	local c d
	for c in /sys/fs/cgroup/*/; do
		d="$c$CGROUP_ROOT"
		[ -d "$d" ] && continue
		mkdir "$d"
		# A new cpuset starts empty, and its children could run nowhere.
		if [ -f "$c/cpuset.cpus" ]; then
			cat "$c/cpuset.cpus" >"$d/cpuset.cpus"
			cat "$c/cpuset.mems" >"$d/cpuset.mems"
		fi
	done
}

save_sysctls() {
	[ -s "$STATE/sysctl.saved" ] && return
	local s
	for s in $KUBELET_SYSCTLS; do echo "$s=$(sysctl -n "$s")"; done >"$STATE/sysctl.saved"
}

# start_node is run inside the netns (see `up`): it starts the node's
# daemons as children of this one mount namespace and returns once they run.
start_node() {
	# daemon NAME CMD...: start CMD in its own session, logging and
	# recording its PID for `down`.
	daemon() {
		local n=$1
		shift
		setsid "$@" >"$logs/$n.log" 2>&1 </dev/null &
		echo $! >"$pids/$n.pid"
	}
	daemon etcd "$bin/etcd" --data-dir "$STATE/etcd" --name "$NODE" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster "$NODE=http://127.0.0.1:2380" --listen-metrics-urls http://127.0.0.1:2381 \
		--quota-backend-bytes 2147483648
	daemon registry /usr/bin/docker-registry serve "$cfg/registry.yml"
	daemon containerd /usr/bin/containerd --config "$cfg/containerd.toml"
	wait_for etcd 60 curl -sf http://127.0.0.1:2379/health
	daemon kube-apiserver "$bin/kube-apiserver" --etcd-servers http://127.0.0.1:2379 \
		--advertise-address "$NODE_IP" --bind-address "$NODE_IP" --secure-port 6443 \
		--service-cluster-ip-range "$SVC_CIDR" --allow-privileged=false \
		--authorization-mode Node,RBAC --client-ca-file "$pki/ca.crt" \
		--tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
		--kubelet-client-certificate "$pki/admin.crt" --kubelet-client-key "$pki/admin.key" \
		--kubelet-preferred-address-types InternalIP,Hostname \
		--service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
		--service-account-issuer https://kubernetes.default.svc \
		--enable-aggregator-routing=true --endpoint-reconciler-type lease \
		--profiling=false --event-ttl 30m
	wait_for kube-apiserver 120 "$KUBECTL" --kubeconfig "$kubeconfig" get --raw /readyz
	daemon kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$kubeconfig" \
		--authentication-kubeconfig "$kubeconfig" --authorization-kubeconfig "$kubeconfig" \
		--service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
		--use-service-account-credentials --leader-elect=false --bind-address 127.0.0.1
	daemon kube-scheduler "$bin/kube-scheduler" --kubeconfig "$kubeconfig" \
		--authentication-kubeconfig "$kubeconfig" --authorization-kubeconfig "$kubeconfig" \
		--leader-elect=false --bind-address 127.0.0.1
	wait_for containerd 60 ctr_ version
	local t
	for t in "$images"/*.tar; do
		ctr_ images import --all-platforms "$t" >/dev/null || die "importing $t into containerd"
	done
	daemon kubelet "$bin/kubelet" --config "$cfg/kubelet.yaml" --kubeconfig "$kubeconfig" \
		--root-dir "$STATE/kubelet" --hostname-override "$NODE" --node-ip "$NODE_IP"
	daemon kube-proxy "$bin/kube-proxy" --config "$cfg/kube-proxy.yaml"
}

install_tekton() {
	local src out=$STATE/manifests/tekton
	src=$(cd "$CLUSTER_CACHE/src/tekton" && go list -m -f '{{.Dir}}' github.com/tektoncd/pipeline)
	rm -rf "$out" && mkdir -p "$out"
	local f
	# Render Tekton's own config/ with our image references: its ko:// paths
	# become the imported images, and the script shell image our busybox.
	for f in "$src"/config/*.yaml "$src"/config/100-namespace/*.yaml "$src"/config/300-crds/*.yaml; do
		case $(basename "$f") in webhook-hpa.yaml) continue ;; esac
		sed -e "s#ko://github.com/tektoncd/pipeline/cmd/\([a-z]*\)#$IMG_PREFIX/tekton/\1:$TEKTON_VERSION#g" \
			-e "s#cgr.dev/chainguard/busybox@sha256:[0-9a-f]*#$BUSYBOX_IMAGE#g" "$f" >"$out/$(basename "$(dirname "$f")")-$(basename "$f")"
	done
	k apply --server-side -f "$out" >"$logs/tekton-apply.log" 2>&1 || { cat "$logs/tekton-apply.log" >&2; die "applying Tekton"; }
}

install_argo() {
	local src out=$STATE/manifests/argo
	src=$(cd "$CLUSTER_CACHE/src/argo" && go list -m -f '{{.Dir}}' github.com/argoproj/argo-workflows/v3)
	rm -rf "$out" && mkdir -p "$out"
	# kustomize takes bases only by relative path.
	src=$(realpath --relative-to="$out" "$src")
	# Upstream's cluster install less argo-server (its UI image is not built
	# here), with our images; kustomize's namespace also fixes the bindings.
	cat >"$out/kustomization.yaml" <<-EOF
		apiVersion: kustomize.config.k8s.io/v1beta1
		kind: Kustomization
		namespace: argo
		resources:
		- $src/manifests/base/crds/minimal
		- $src/manifests/base/workflow-controller
		- $src/manifests/cluster-install-no-crds/workflow-controller-rbac
		images:
		- name: quay.io/argoproj/workflow-controller
		  newName: $IMG_PREFIX/argo/workflow-controller
		  newTag: $ARGO_VERSION
		patches:
		- target: {kind: Deployment, name: workflow-controller}
		  patch: |-
		    - op: replace
		      path: /spec/template/spec/containers/0/args
		      value: [--executor-image, $IMG_PREFIX/argo/argoexec:$ARGO_VERSION]
	EOF
	"$KUBECTL" kustomize "$out" >"$out/argo.yaml" || die "rendering Argo's manifests from $src"
	k create namespace argo --dry-run=client -o yaml | k apply -f - >/dev/null
	k apply --server-side -f "$out/argo.yaml" >"$logs/argo-apply.log" 2>&1 || { cat "$logs/argo-apply.log" >&2; die "applying Argo"; }
}

# publish pushes the executor and busybox images to the cluster registry and
# renders the catalog with the executor's digest, the way `make release` does.
# The executor is the multi-platform index `make image` writes as an OCI
# layout, so the catalog pins an index digest as a release's does.
publish() {
	local pw exe=${SLIPWAY_EXECUTOR_LAYOUT:-$repo/bin/slipway-executor}
	pw=$(cat "$STATE/registry/password")
	[ -s "$exe/index.json" ] || die "$exe is missing: run 'make image' first"
	local exe_ref bb_ref bbm_ref
	exe_ref=$(in_ns "$bin/clusterimg" push -user slipway -password "$pw" "$exe" "$REGISTRY/slipway/executor:dev")
	bb_ref=$(in_ns "$bin/clusterimg" push -user slipway -password "$pw" "$images/busybox.tar" "$REGISTRY/library/busybox:1")
	bbm_ref=$(in_ns "$bin/clusterimg" push-index -user slipway -password "$pw" "$REGISTRY/library/busybox-multi:1" \
		"$images/busybox.tar" "$images/busybox-arm64.tar")
	rm -rf "$STATE/catalog"
	(cd "$repo" && go run ./tasks/cmd/generate -out "$STATE/catalog" -builder-image "$exe_ref")
	cat >"$STATE/env" <<-EOF
		SLIPWAY_CLUSTER_KUBECTL=$KUBECTL
		SLIPWAY_CLUSTER_KUBECONFIG=$kubeconfig
		SLIPWAY_CLUSTER_REGISTRY=$REGISTRY
		SLIPWAY_CLUSTER_REGISTRY_USER=slipway
		SLIPWAY_CLUSTER_REGISTRY_PASSWORD_FILE=$STATE/registry/password
		SLIPWAY_CLUSTER_EXECUTOR=$exe_ref
		SLIPWAY_CLUSTER_BUSYBOX=$bb_ref
		SLIPWAY_CLUSTER_BUSYBOX_MULTI=$bbm_ref
		SLIPWAY_CLUSTER_BUSYBOX_LOCAL=$BUSYBOX_IMAGE
		SLIPWAY_CLUSTER_CATALOG=$STATE/catalog
	EOF
}

up() {
	local t0=$SECONDS
	[ "$(id -u)" = 0 ] || die "needs root (network namespace, containerd, kubelet)"
	[ -e "$pids/kubelet.pid" ] && die "a cluster runs already (state $STATE): run '$0 down' first"
	tools
	make_images
	log "tools and images ready after $((SECONDS - t0))s"
	mkdir -p "$STATE"
	make_pki
	write_configs
	save_sysctls
	make_cgroups
	# CNI caches its results in /var/lib/cni; remember whether that is ours.
	[ -e /var/lib/cni ] || touch "$STATE/made-var-lib-cni"
	make_netns
	# nsenter rather than ip netns exec: the latter remounts /sys for the
	# netns, which hides the cgroup hierarchies kubelet and runc need. The
	# private, slave mount namespace keeps the node's mounts off the machine.
	nsenter --net="/run/netns/$NS" -- unshare --mount --propagation slave env -u NOTIFY_SOCKET "$0" _start_node
	wait_for "node $NODE" 120 k wait --for=condition=Ready "node/$NODE" --timeout=1s
	log "node ready after $((SECONDS - t0))s"
	install_tekton
	install_argo
	wait_for "Tekton CRDs" 60 k wait --for condition=established crd/tasks.tekton.dev --timeout=1s
	local d
	for d in tekton-pipelines/tekton-pipelines-controller tekton-pipelines/tekton-pipelines-webhook argo/workflow-controller; do
		k -n "${d%/*}" rollout status "deployment/${d#*/}" --timeout=240s >/dev/null || {
			k -n "${d%/*}" describe pods >"$logs/${d#*/}-describe.log" 2>&1
			die "deployment $d is not ready; see $logs/${d#*/}-describe.log"
		}
	done
	publish
	log "cluster up after $((SECONDS - t0))s; env in $STATE/env"
}

down() {
	local f p
	# The kubelet first, so that it restarts nothing we stop next.
	stop_pidfile "$pids/kubelet.pid"
	# Every container's init and every shim, found by the PID files
	# containerd writes into our own state directory.
	if [ -d "$ctrd/state" ]; then
		while read -r f; do stop_pidfile "$f" KILL; done < <(find "$ctrd/state" -name init.pid 2>/dev/null)
		while read -r f; do stop_pidfile "$f"; done < <(find "$ctrd/state" -name shim.pid 2>/dev/null)
	fi
	for p in kube-proxy kube-scheduler kube-controller-manager kube-apiserver containerd registry etcd; do
		stop_pidfile "$pids/$p.pid"
	done
	if ip netns list | grep -q "^$NS\b"; then ip netns delete "$NS"; fi
	# Mounts only escape the node's private mount namespace if something went
	# wrong; undo any that did, deepest first.
	while read -r p; do umount -l "$p" 2>/dev/null || true; done < <(awk -v s="$STATE" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sort -r)
	remove_cgroups
	# What the kubelet and CNI write outside the state directory: container
	# log links in /var/log/containers pointing into our pod logs, and CNI's
	# result cache for our network.
	find /var/log/containers -maxdepth 1 -type l -lname "$STATE/*" -delete 2>/dev/null || true
	rm -f /var/lib/cni/results/slipway-* 2>/dev/null || true
	if [ -e "$STATE/made-var-lib-cni" ]; then rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null || true; fi
	if [ -s "$STATE/sysctl.saved" ]; then
		while IFS= read -r p; do sysctl -qw "$p" 2>/dev/null || true; done <"$STATE/sysctl.saved"
	fi
	# Logs stay for a post-mortem; the state that holds images and volumes goes.
	if [ -d "$STATE" ]; then
		find "$STATE" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
	fi
	log "cluster down"
}

# stop_pidfile FILE [SIGNAL]: end the process FILE names, if it still runs
# and is not a later process that reused the PID: the process must have
# started no later than its PID file was written.
stop_pidfile() {
	local f=$1 sig=${2:-TERM} pid i
	[ -s "$f" ] || return 0
	pid=$(cat "$f")
	if [ -d "/proc/$pid" ] && [ "$(started "$pid")" -le $(($(stat -c %Y "$f") + 1)) ]; then
		kill "-$sig" "$pid" 2>/dev/null || true
		for ((i = 0; i < 40; i++)); do [ -d "/proc/$pid" ] || break; sleep 0.25; done
		[ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

# started PID prints when PID started, in seconds since the epoch.
started() {
	local st btime
	# Field 22 of /proc/PID/stat, counted after the parenthesised command
	# name, which may hold spaces.
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}')
	[ -n "$st" ] || { echo 0; return; }
	btime=$(awk '/^btime/ {print $2}' /proc/stat)
	echo $((btime + st / $(getconf CLK_TCK)))
}

remove_cgroups() {
	local c d
	for c in /sys/fs/cgroup/*/; do
		d="$c$CGROUP_ROOT"
		[ -d "$d" ] || continue
		# Depth first: a cgroup directory goes only once it has no children.
		find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	done
}

status() {
	local f n
	for f in "$pids"/*.pid; do
		[ -e "$f" ] || { echo "not running"; return; }
		n=$(basename "$f" .pid)
		if [ -d "/proc/$(cat "$f")" ]; then echo "$n: running ($(cat "$f"))"; else echo "$n: dead"; fi
	done
}

case ${1:-} in
up) up ;;
down) down ;;
status) status ;;
exec) shift; in_ns "$@" ;;
_start_node) start_node ;;
# For debugging the script itself: run one of its steps.
_step) shift; "$@" ;;
*) echo "usage: $0 up|down|status|exec CMD..." >&2; exit 2 ;;
esac
