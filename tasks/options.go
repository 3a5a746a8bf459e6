// Package tasks defines Slipway's published Tekton Tasks and StepActions and
// Argo (Cluster)WorkflowTemplates as typed values of the upstream API types,
// and writes them, with their READMEs and samples, into the catalog layouts
// that Tekton's resolvers and Artifact Hub read.
//
// The step binaries receive every input as a command-line argument; the
// executor image has no shell. List inputs travel in the argument tail that
// package argv describes.
package tasks

import (
	"fmt"
	"strings"
)

// Option changes what the constructors in this package produce.
type Option func(*options)

type options struct {
	builderImage string
	version      string
}

// WithBuilderImage sets the executor image used as the BUILDER_IMAGE default
// and by the Argo templates. It must be pinned by digest to pass the catalog
// checks.
func WithBuilderImage(ref string) Option {
	return func(o *options) { o.builderImage = ref }
}

// WithVersion sets the published version (label and catalog directory).
func WithVersion(v string) Option {
	return func(o *options) { o.version = v }
}

func makeOptions(opts []Option) options {
	o := options{builderImage: BuilderImage, version: Version}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// Paths inside the executor image and its pod that the definitions rely on.
const (
	buildBinary = "/slipway/bin/slipway-build"
	warmBinary  = "/slipway/bin/slipway-warm"
	indexBinary = "/slipway/bin/slipway-index"
	// dockerConfigDir is the image's DOCKER_CONFIG. slipway-build reads
	// config.json or, failing that, .dockerconfigjson from it, so a Secret
	// made by `kubectl create secret docker-registry` mounts here as is.
	dockerConfigDir = "/slipway/.docker"
	// cacheDir is kaniko's default --cache-dir, kept so that a cache filled
	// by kaniko's warmer layout and Slipway's agree on the place.
	cacheDir = "/cache"
)

func pinnedError(ref string) error {
	return fmt.Errorf("image %q is not pinned by digest: give a reference ending in @sha256:<64 hex digits>", ref)
}

// CheckPinned reports whether ref names an image by digest.
func CheckPinned(ref string) error {
	_, digest, ok := strings.Cut(ref, "@sha256:")
	if !ok || len(digest) != 64 || strings.Trim(digest, "0123456789abcdef") != "" {
		return pinnedError(ref)
	}
	return nil
}
