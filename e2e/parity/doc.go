// Package parity holds Slipway's parity tests, with BuildKit v0.34.2 as the
// reference. A case is built by BuildKit (buildctl and buildkitd, made and
// started by buildkit.sh, pushing into the test registry on loopback) and by
// Slipway's engine in chroot mode, from the same base image; the flattened
// filesystems (type, mode, owner, content, links, xattrs, devices) and the
// image configs are then compared field by field.
//
//   - TestParity builds the contexts under testdata; Docker 20.10's legacy
//     builder builds them too, as a second opinion: where it departs from
//     BuildKit, the legacyDiffs table says why.
//   - TestCorpus builds over a hundred Dockerfiles ported from BuildKit's
//     own frontend tests (frontend/dockerfile/*_test.go).
//   - TestDefects builds the defects of issue 12, each a few lines.
//   - TestBuildKitSpec checks the features of BuildKit's Dockerfile
//     reference (heredocs, COPY --link/--parents/--exclude, --chmod)
//     against the reference's own examples.
//
// A difference from BuildKit fails the test unless the knownDiffs table
// names it: case, path, field and the reason it is tolerated for now.
// Entries there are reported bugs waiting for a fix; an entry that no
// longer matches anything fails the test, so that it is deleted once the
// bug is fixed. TestCorpus and TestDefects log how many cases are
// identical to BuildKit.
//
// Run them with `go test ./e2e/parity/`. They need root, the distribution
// registry (docker-registry), busybox-static, debootstrap, runc, dockerd
// and buildkitd (the first run of buildkit.sh builds it from the Go module
// proxy, about 5 minutes); they fail, not skip, when a builder cannot be
// reached.
package parity
