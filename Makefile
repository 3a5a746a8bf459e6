# Slipway's build, test and demo targets. `make demo` and `make test` are
# the two commands a fresh Debian 12 machine needs; both install the Debian
# packages they use when they are missing (as root).

GO       ?= go
BIN      := bin
STEPS    := build
PKGS     := ./...
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# The Go test timeout; the whole suite stays well under 30 minutes on 2 cores.
TEST_TIMEOUT ?= 25m

export CGO_ENABLED = 0

.PHONY: all build test unit lint demo bench deps clean

all: build

build:
	@mkdir -p $(BIN)
	@for s in $(STEPS); do \
		$(GO) build -trimpath -ldflags='-s -w' -o $(BIN)/slipway-$$s ./steps/$$s || exit 1; \
	done

# deps installs the Debian packages the tests and the demo run for real.
deps:
	@./.ci/deps

test: deps build
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

# unit runs the tests that need nothing but Go.
unit:
	$(GO) test -short -count=1 $(PKGS)

lint:
	@test -z "$$(gofmt -l engine steps e2e $(wildcard tasks))" || (gofmt -l engine steps e2e; echo 'gofmt: run gofmt -w on the files above'; exit 1)
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)

demo: deps build
	$(GO) run ./e2e/demo -bin $(BIN)/slipway-build -context examples/hello

bench: deps build
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./e2e/bench/...

clean:
	rm -rf $(BIN)
