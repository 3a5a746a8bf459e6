// Package cluster is Slipway's end-to-end suite on a real Kubernetes cluster:
// the published Tekton Tasks and StepActions and the Argo templates from
// catalog/, applied to a single-node cluster with the real Tekton and Argo
// controllers, building with the executor image and pushing to a registry
// with htpasswd auth.
//
// cluster.sh builds (from Go modules, cached under ~/.cache/slipway-cluster)
// and starts the cluster inside a network namespace of its own; the tests
// carry the "cluster" build tag and run inside that namespace:
//
//	make e2e-cluster
//
// See README.md for the layout, the timings and how to debug a run.
package cluster
