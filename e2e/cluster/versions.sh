# shellcheck shell=bash disable=SC2034
# Versions of everything the cluster is built from. Sourced by the cluster
# scripts; the cache directory is keyed on all of them, so bumping one
# rebuilds only what it names.
K8S_VERSION=v1.34.4
# The k8s.io/* staging modules are published as v0.<minor>.<patch>.
K8S_STAGING_VERSION=v0.34.4
ETCD_VERSION=v3.6.16
TEKTON_VERSION=v1.15.0
ARGO_VERSION=v3.7.18

CLUSTER_KEY="k8s-${K8S_VERSION}_etcd-${ETCD_VERSION}_tekton-${TEKTON_VERSION}_argo-${ARGO_VERSION}"
CLUSTER_CACHE="${SLIPWAY_CLUSTER_CACHE:-${HOME}/.cache/slipway-cluster}/${CLUSTER_KEY}"
