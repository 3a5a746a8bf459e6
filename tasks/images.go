package tasks

// The release values below are the only place a published version, image
// or date is written down: `make release` rewrites this file and regenerates
// catalog/, so the catalog never names an image that was not pushed.
const (
	// Version is the version of the published Tasks, StepActions and
	// templates, used for catalog directories and the version label.
	Version = "0.1.0"

	// BuilderImage is the executor image, pinned by digest. The digest is a
	// placeholder until the first `make release`.
	BuilderImage = "ghcr.io/slipway-build/slipway:v0.1.0@sha256:0000000000000000000000000000000000000000000000000000000000000000"

	// Platforms lists the platforms BuilderImage is published for,
	// comma-separated as the tekton.dev/platforms annotation takes them:
	// the executor image is an index of these (the Makefile's
	// IMAGE_PLATFORMS, which `make image` and `make release` build).
	Platforms = "linux/amd64,linux/arm64,linux/ppc64le,linux/s390x"

	// ReleaseDate is the createdAt of the Artifact Hub packages. It is fixed
	// rather than taken from the clock so that regenerating is reproducible.
	ReleaseDate = "2026-11-26T00:00:00Z"

	// RepoURL is the git repository that the git resolver examples point at.
	RepoURL = "https://github.com/slipway-build/slipway.git"

	// License is the SPDX license of the published definitions.
	License = "Apache-2.0"

	// BundleRepo is where `make bundles` pushes one Tekton bundle per Task
	// and StepAction, tagged with Version.
	BundleRepo = "ghcr.io/slipway-build/catalog"
)
