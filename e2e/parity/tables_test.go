package parity

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// knownDiff tolerates one reported difference between Slipway and BuildKit
// where Slipway is wrong, until the engine is fixed.
type knownDiff struct {
	Case, Path, Field string
	Reason            string
}

func (k knownDiff) matches(caseName string, d diff) bool {
	return k.Case == caseName && pathMatch(k.Path, d.Path) && k.Field == d.Field
}

// knownDiffs are open bugs in Slipway; delete an entry once its bug is
// fixed (the test says when). Path may be a path.Match pattern.
var knownDiffs = []knownDiff{}

// legacyDiffs are where docker's legacy builder (Docker 20.10, the second
// opinion) departs from BuildKit, whose behaviour Slipway follows: each
// entry says why. An entry that matches nothing fails the test.
var legacyDiffs = []knownDiff{
	// An ARG declared after an ENV of the same name sets RUN's value in
	// BuildKit (dispatchArg adds it to the state's env; kaniko's #3344 fix
	// follows it); the legacy builder keeps the ENV's.
	{"argenv", "/out/05-arg-after-env", "Digest", "BuildKit lets an ARG after an ENV of the same name set RUN's value"},
	{"argenv", "/out/07-env", "Digest", "BuildKit lets an ARG after an ENV of the same name set RUN's value"},

	// BuildKit sends the context with its xattrs (fsutil Stat.Xattrs) and
	// its copy keeps them; the legacy builder drops them.
	{"special", "/sp/xattr.txt", "Xattrs", "BuildKit keeps a context file's xattrs on COPY"},

	// BuildKit's dispatchWorkdir creates a missing WORKDIR with
	// llb.WithUser(the current USER); the legacy builder always as root.
	{"workdir", "/userwd", "UID", "BuildKit creates WORKDIR as the current USER"},
	{"workdir", "/userwd", "GID", "BuildKit creates WORKDIR as the current USER"},
	{"workdir", "/home/app/made-by-user", "UID", "BuildKit creates WORKDIR as the current USER"},
	{"workdir", "/home/app/made-by-user", "GID", "BuildKit creates WORKDIR as the current USER"},

	// BuildKit copies with fsutil, whose Copy creates the destination's
	// missing parents with MkdirAll(..., ci.Chown): the --chown owner.
	{"copy", "/deep", "UID", "BuildKit creates COPY --chown's missing parents with the --chown owner"},
	{"copy", "/deep", "GID", "BuildKit creates COPY --chown's missing parents with the --chown owner"},
	{"copy", "/deep/new", "UID", "BuildKit creates COPY --chown's missing parents with the --chown owner"},
	{"copy", "/deep/new", "GID", "BuildKit creates COPY --chown's missing parents with the --chown owner"},

	// The daemon's commit merges a HEALTHCHECK NONE with the parent's
	// healthcheck, keeping its timings (daemon/commit.go merge); BuildKit
	// writes the parsed HEALTHCHECK as it is: NONE with zero durations.
	// The legacy builder starts each image's author empty; BuildKit keeps
	// the base's (dockerfile2llb sets Author only for MAINTAINER, and a
	// stage starts from a copy of its base's image config).
	{"metadata-child", "config", "Author", "BuildKit inherits the base's author (MAINTAINER)"},
	{"metadata-child", "config", "Healthcheck", "BuildKit does not merge HEALTHCHECK NONE with the inherited timings"},
}

// knownSpecGaps are reported departures from BuildKit's Dockerfile
// reference in the features docker 20.10 cannot build (TestBuildKitSpec).
var knownSpecGaps = []knownDiff{}

// textDigest is how the comparison shows a small file's content.
func textDigest(text string) string {
	sum := sha256.Sum256([]byte(text))
	return fmt.Sprintf("%s %q", hex.EncodeToString(sum[:])[:16], text)
}
