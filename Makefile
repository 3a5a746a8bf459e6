# Slipway's build, test and demo targets. `make demo` and `make test` are
# the two commands a fresh Debian 12 machine needs; both install the Debian
# packages they use when they are missing (as root).

GO       ?= go
BIN      := bin
STEPS    := build warm index
PKGS     := ./...
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# The Go test timeout; the whole suite stays well under 30 minutes on 2 cores.
TEST_TIMEOUT ?= 25m

export CGO_ENABLED = 0

# The version and commit stamped into the binaries (engine/version). The
# commit is the last one that changed anything but the release pins
# (tasks/images.go, catalog/), so that the release commit `make release`
# adds does not change the binaries: a rebuild at the tag gives the same
# bytes, hence the same image digests as the ones the tag's catalog pins.
VERSION_PKG := github.com/slipway-build/slipway/engine/version
COMMIT  ?= $(shell git log -1 --format=%H -- . ':(exclude)catalog' ':(exclude)tasks/images.go' 2>/dev/null)
SLIPWAY_LDFLAGS := -s -w -X $(VERSION_PKG).Version=$(or $(VERSION),dev) $(if $(COMMIT),-X $(VERSION_PKG).Commit=$(COMMIT))
export SLIPWAY_LDFLAGS STEPS

.PHONY: all build test unit race lint demo bench deps catalog bundles clean

all: build

build:
	@mkdir -p $(BIN)
	@for s in $(STEPS); do \
		$(GO) build -trimpath -ldflags='$(SLIPWAY_LDFLAGS)' -o $(BIN)/slipway-$$s ./steps/$$s || exit 1; \
	done

# IMAGE_PLATFORMS are the platforms of the executor image: the same list
# as tasks.Platforms, which the catalog's annotations name (a test in
# tasks/ compares them).
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64,linux/ppc64le,linux/s390x
export IMAGE_PLATFORMS

# build-platforms cross-compiles the static step binaries the image holds
# (IMAGE_STEPS: slipway-build, which runs the other steps by name) for each
# of IMAGE_PLATFORMS into $(BIN)/OS-ARCH[-VARIANT], where
# steps/image/build.sh -p takes them from. Static Go binaries: no
# emulation, no C toolchain.
IMAGE_STEPS ?= build
.PHONY: build-platforms
build-platforms:
	@for p in $$(echo '$(IMAGE_PLATFORMS)' | tr , ' '); do \
		os=$$(echo "$$p" | cut -d/ -f1); arch=$$(echo "$$p" | cut -d/ -f2); variant=$$(echo "$$p" | cut -s -d/ -f3); \
		goarm=; [ "$$arch" != arm ] || goarm=$${variant#v}; \
		for s in $(IMAGE_STEPS); do \
			GOOS=$$os GOARCH=$$arch GOARM=$$goarm $(GO) build -trimpath -ldflags='$(SLIPWAY_LDFLAGS)' \
				-o $(BIN)/$$(echo "$$p" | tr / -)/slipway-$$s ./steps/$$s || exit 1; \
		done; \
	done

# fuzz runs every Go fuzz target for FUZZTIME each; CI gives each 20s. Go
# fuzzes one target per `go test`, so FUZZ_TARGETS lists them all as
# package:Function, and the loop fails when a Fuzz function is missing from
# it. A crasher is written to the package's testdata/fuzz; commit it, and it
# runs with the package's tests from then on. .ci/fuzz-one runs a target
# again once when Go's -fuzztime deadline race alone failed it.
FUZZTIME ?= 1m
# Minimizing every new interesting input for the default minute would
# take most of a short run.
FUZZMINIMIZETIME ?= 1s
FUZZ_TARGETS := \
	./engine/dockerfile:FuzzParsePlan \
	./engine/dockerfile:FuzzExpandWord \
	./engine/dockerfile:FuzzIgnore \
	./engine/rootfs:FuzzExtract \
	./engine/rootfs:FuzzLower \
	./engine/buildcontext:FuzzExtract \
	./engine/buildcontext:FuzzParseGitOptions \
	./engine/job:FuzzSecretValues \
	./engine/flagvalue:FuzzFlagValues \
	./engine/layertoc:FuzzUnmarshal \
	./engine/layertoc:FuzzFromEStargz \
	./engine/layertoc:FuzzFromZstdChunked \
	./steps/internal/stepflags:FuzzRegistryMap

.PHONY: fuzz
fuzz:
	@for f in $$(grep -rl --include='*_test.go' '^func Fuzz' engine steps e2e $(wildcard tasks)); do \
		for fn in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' $$f); do \
			echo " $(FUZZ_TARGETS) " | grep -q " ./$$(dirname $$f):$$fn " || { echo "fuzz: $$fn in $$f is not in FUZZ_TARGETS"; exit 1; }; \
		done; \
	done
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz: $${t##*:} in $${t%%:*} for $(FUZZTIME)"; \
		GO='$(GO)' FUZZTIME='$(FUZZTIME)' FUZZMINIMIZETIME='$(FUZZMINIMIZETIME)' FUZZFLAGS='$(FUZZFLAGS)' ./.ci/fuzz-one $${t%%:*} $${t##*:} || exit 1; \
	done

# deps installs the Debian packages the tests and the demo run for real.
deps:
	@./.ci/deps

test: deps build
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

# unit runs the tests that need nothing but Go: the suites that need root,
# the registry, Debian packages or dockerd skip with -short (see
# e2e/harness.SkipIfShort), and e2e/cluster sits behind its build tag.
unit:
	$(GO) test -short -count=1 $(PKGS)

# race runs the engine's tests under the race detector: stages, the
# snapshot walker and cache writes run concurrently. The detector needs
# cgo; the binaries stay static, because the in-place tests run the test
# binary inside a busybox image.
race: deps
	CGO_ENABLED=1 $(GO) test -race -tags osusergo,netgo -ldflags='-linkmode=external -extldflags=-static' \
		-count=1 -timeout $(TEST_TIMEOUT) ./engine/...

lint:
	@test -z "$$(gofmt -l engine steps e2e $(wildcard tasks))" || (gofmt -l engine steps e2e; echo 'gofmt: run gofmt -w on the files above'; exit 1)
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

demo: deps build
	$(GO) run ./e2e/demo -bin $(BIN)/slipway-build -context examples/hello

# bench builds every context SLIPWAY_BENCH_REPS times (2) with each tool,
# the tools taking turns, and keeps each tool's fastest run.
bench: deps build
	SLIPWAY_BENCH_REPS=$${SLIPWAY_BENCH_REPS:-2} $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 180m ./e2e/bench/...

# image and image-debug build the executor image with slipway-build itself
# (steps/image/build.sh), reproducibly, for every platform of
# IMAGE_PLATFORMS: an OCI layout in bin/ holding the multi-platform index
# (joined by slipway-index), and a docker-loadable tarball of this
# machine's platform's image, tagged slipway:dev and slipway:dev-debug.
.PHONY: image image-debug release
image: build build-platforms
	./steps/image/build.sh -b $(BIN) -t executor -p $(IMAGE_PLATFORMS) --no-push --destination slipway:dev \
		--tar-path $(BIN)/slipway-executor.tar --oci-layout-path $(BIN)/slipway-executor

image-debug: build build-platforms
	./steps/image/build.sh -b $(BIN) -t debug -p $(IMAGE_PLATFORMS) --no-push --destination slipway:dev-debug \
		--tar-path $(BIN)/slipway-executor-debug.tar --oci-layout-path $(BIN)/slipway-executor-debug

# release makes the whole release (steps/image/release.sh says what, in
# order): images built by Slipway and pushed, their SBOM and provenance
# attached as referrers, digests signed, static binaries for linux/amd64
# and linux/arm64 with SHA256SUMS, catalog/ pinned, release notes, git tag.
#   SIGNING_KEY=FILE  cosign private key (password in COSIGN_PASSWORD);
#                     without it (and without KEYLESS=1) nothing is signed
#   KEYLESS=1         keyless signing with the ambient OIDC identity (CI),
#                     through Sigstore's public instance unless one of:
#     FULCIO_URL, REKOR_URL, OIDC_ISSUER   another Fulcio, Rekor, OIDC issuer
#     IDENTITY_TOKEN=FILE|TOKEN            a token instead of the ambient one
#     TRUSTED_ROOT=FILE                    the trusted_root.json for them
#   DIST=DIR          where binaries, SHA256SUMS and notes go (bin/release)
#   PLATFORMS=…       the binaries' platforms (linux/amd64 linux/arm64)
#   TAG=0             no release commit and tag (the default when CI=true)
#   RELEASE_FLAGS     more slipway-build flags (e.g. --insecure-registry)
DIST ?= $(BIN)/release
SUPPLYCHAIN := $(BIN)/tools/supplychain
export SIGNING_KEY KEYLESS DIST TAG SUPPLYCHAIN PLATFORMS
export FULCIO_URL REKOR_URL OIDC_ISSUER IDENTITY_TOKEN TRUSTED_ROOT

release:
	@test -n "$(REGISTRY)" -a -n "$(VERSION)" || { echo 'usage: make release REGISTRY=ghcr.io/slipway-build VERSION=v0.1.0 [SIGNING_KEY=cosign.key]' >&2; exit 2; }
	@$(MAKE) --no-print-directory build build-platforms supplychain VERSION=$(VERSION)
	./steps/image/release.sh -b $(BIN) $(REGISTRY) $(VERSION) $(RELEASE_FLAGS)

# supplychain is the release's attesting and signing tool; it is never put
# into the executor image (bin/tools is not a step binary). It is built
# without -trimpath, as go test builds: it ships nowhere, and so the cosign
# and Kubernetes packages it shares with the tests (e2e/release, tasks) are
# compiled once, not once per flavour.
.PHONY: supplychain
supplychain:
	@mkdir -p $(BIN)/tools
	$(GO) build -ldflags='$(SLIPWAY_LDFLAGS)' -o $(SUPPLYCHAIN) ./tasks/cmd/supplychain

# catalog regenerates the published Tekton and Argo YAML from tasks/.
catalog:
	$(GO) run ./tasks/cmd/generate -out catalog

# bundles pushes each Task and StepAction as a Tekton bundle under
# BUNDLE_REPO (tasks.BundleRepo by default), for `resolver: bundles`.
bundles:
	$(GO) run ./tasks/cmd/bundles $(if $(BUNDLE_REPO),-repo $(BUNDLE_REPO))

clean:
	rm -rf $(BIN)

# e2e-cluster runs the published Tekton and Argo YAML on a real single-node
# cluster (e2e/cluster/README.md): it builds what the cache lacks, starts the
# cluster in a network namespace of its own, runs the tests inside it and
# tears it all down again, also on failure. KEEP_CLUSTER=1 leaves it up.
.PHONY: e2e-cluster cluster-up cluster-down
CLUSTER := ./e2e/cluster/cluster.sh
e2e-cluster: image
	@trap '[ -n "$(KEEP_CLUSTER)" ] || $(CLUSTER) down' EXIT; set -e; \
	$(CLUSTER) up; \
	$(GO) test -c -tags cluster -o $(BIN)/cluster-e2e.test ./e2e/cluster; \
	$(CLUSTER) exec $(BIN)/cluster-e2e.test -test.v -test.count=1 -test.timeout 30m

cluster-up: image
	$(CLUSTER) up

cluster-down:
	$(CLUSTER) down

# test-release runs `make release` end to end in a copy of the repository,
# against the loopback registry with a throw-away key (e2e/release); it is
# part of make test too.
.PHONY: test-release
test-release: deps
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -run TestMakeRelease ./e2e/release/
