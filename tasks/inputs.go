package tasks

import "strings"

// input is one build input, declared once so that the Tekton Task, the
// StepAction and the Argo templates cannot drift apart.
type input struct {
	name        string // Tekton param name; Argo uses its kebab-case form
	description string
	array       bool
	required    bool // no default
	def         string
}

func (in input) argoName() string {
	return strings.ToLower(strings.ReplaceAll(in.name, "_", "-"))
}

func buildInputs(builderImage string) []input {
	return []input{
		{name: "IMAGE", required: true,
			description: "Reference of the image to build and push, e.g. registry.example.com/team/app:1.2."},
		{name: "DOCKERFILE", def: "./Dockerfile",
			description: "Path to the Dockerfile, relative to the source; a relative path not found there is looked up in CONTEXT, as kaniko does."},
		{name: "CONTEXT", def: "./",
			description: "Build context directory, relative to the source."},
		{name: "BUILD_ARGS", array: true,
			description: "Build arguments as NAME=VALUE, one per element; a bare NAME takes its value from the step's environment."},
		{name: "EXTRA_ARGS", array: true,
			description: "Further slipway-build flags (kaniko executor flags), one per element, e.g. --reproducible."},
		{name: "ADDITIONAL_TAGS", array: true,
			description: "Further full references to push the same image to; all of them appear in IMAGES."},
		{name: "TARGET",
			description: "Dockerfile stage to build; empty builds the last stage."},
		{name: "CACHE", def: "false",
			description: `"true" to reuse and store RUN layers in CACHE_REPO.`},
		{name: "CACHE_REPO",
			description: "Repository for cached layers; empty means <IMAGE repository>/cache."},
		{name: "SBOM", def: "true",
			description: `"true" attaches an SPDX 2.3 SBOM of the image (dpkg, apk and rpm packages, Go modules) to it as an OCI referrer; "false" attaches none, as kaniko.`},
		{name: "PROVENANCE", def: "true",
			description: `"true" attaches a SLSA v1 provenance statement (base images by digest, Dockerfile digest, source commit, build-arg names, times) as an OCI referrer.`},
		{name: "TLSVERIFY", def: "true",
			description: `"false" verifies no registry's TLS certificate, for the push, the cache and the base images, as buildah's TLSVERIFY.`},
		{name: "SKIP_PUSH", def: "false",
			description: `"true" builds without pushing (kaniko's --no-push): the digest and URL are still written, IMAGES stays empty.`},
		{name: "PLATFORM",
			description: "Platform to build for, e.g. linux/arm64; empty means the node's platform."},
		{name: "BUILDER_IMAGE", def: builderImage,
			description: "The Slipway executor image, pinned by digest."},
	}
}

func warmInputs(builderImage string) []input {
	return []input{
		{name: "IMAGES", array: true,
			description: "Base images to fetch into the cache, one full reference per element."},
		{name: "DOCKERFILE",
			description: "Optional Dockerfile, relative to the source workspace, whose base images are fetched too."},
		{name: "BUILD_ARGS", array: true,
			description: "Build arguments (NAME=VALUE) used to resolve ARGs in the FROM lines of DOCKERFILE."},
		{name: "EXTRA_ARGS", array: true,
			description: "Further slipway-warm flags (kaniko warmer flags), e.g. --cache-ttl=24h."},
		{name: "BUILDER_IMAGE", def: builderImage,
			description: "The Slipway executor image, pinned by digest."},
	}
}
