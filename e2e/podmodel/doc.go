// Package podmodel tests Slipway as users run it in Kubernetes: the
// executor image, built by Slipway itself with steps/image/build.sh, under
// `docker run` with no --privileged, the default capabilities and seccomp
// profile, the build context and the docker config mounted as volumes, as a
// Tekton or Argo pod mounts its workspace and Secret. Every build runs in
// in-place mode, the image's default, and pushes to a distribution
// registry with htpasswd auth on loopback.
//
// The tests need Docker and the packages .ci/deps installs; with -short
// they skip.
package podmodel
