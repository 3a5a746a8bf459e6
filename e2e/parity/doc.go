// Package parity holds Slipway's parity tests, with the Docker engine as the
// reference. Each case under testdata is built twice, by `docker build` (the
// legacy builder of Docker 20.10) and by Slipway's engine in chroot mode,
// from the same base image; the flattened filesystems and the image configs
// are then compared field by field.
//
// A difference fails the test unless the knownDiffs table names it: case,
// path, field and the reason it is tolerated for now. Entries there are
// reported bugs waiting for a fix; an entry that no longer matches anything
// fails the test, so that it is deleted once the bug is fixed. Where
// docker's legacy builder departs from BuildKit (the behaviour Slipway
// follows), the legacyDiffs table states the value Slipway must have
// instead, so those paths are still asserted.
//
// Features that Docker 20.10 cannot parse (heredocs, COPY --link, --parents,
// --exclude) are tested against BuildKit's Dockerfile reference instead.
//
// Run them with `go test ./e2e/parity/` (about 3–4 minutes on 2 busy
// cores; the Debian case dominates). They need root, dockerd, the distribution registry
// (docker-registry), busybox-static and debootstrap; they fail, not skip,
// when dockerd cannot be reached.
package parity
