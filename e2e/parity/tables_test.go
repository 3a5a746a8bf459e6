package parity

import (
	"testing"
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

// knownDiffs are open bugs in Slipway, found against BuildKit v0.34.2;
// delete an entry once its bug is fixed (the test says when). Path may be
// a path.Match pattern. Path "build" is the build's outcome: Field
// "outcome" (one builder built it, the other refused it) or "error names
// line N" (both refused it, one error does not name the Dockerfile line).
var knownDiffs = []knownDiff{
	// Found by the ported corpus.
	{"copy-chmod-non-octal", "build", "outcome", "--chmod takes only octal modes; BuildKit v0.34 also takes symbolic ones (go-w, u=rw,g=r, a+X)"},
	{"copy-chown", "build", "outcome", "--chown=user: (empty group) is refused; BuildKit takes the user's primary group"},
	{"copy-chown-image", "build", "outcome", "--chown=user: (empty group) is refused; BuildKit takes the user's primary group"},
	{"copy-socket", "build", "outcome", "a unix socket in the context fails COPY; BuildKit leaves sockets out"},
	{"add-checksum-local", "build", "outcome", "ADD --checksum of a context file is accepted; BuildKit refuses it (checksum requires HTTP(S) or Git sources)"},
	{"parents-relative-doublewildcard", "/out/test/**", "presence", "COPY --parents with a wildcard before the /./ pivot keeps the whole path"},
	{"parents-relative-doublewildcard", "/out/c/**", "presence", "COPY --parents with a wildcard before the /./ pivot keeps the whole path"},
	{"mount-tmpfs-size", "/size", "Digest", "RUN --mount=type=tmpfs,size= is not applied; BuildKit mounts a tmpfs of that size"},
	{"run-security-default-caps", "/capbnd", "Digest", "RUN keeps the executor's full capability bounding set; BuildKit gives a container's default set (00000000a80425fb)"},
	{"run-security-sandbox-caps", "build", "outcome", "RUN --security=sandbox (BuildKit's default) is refused as unsupported"},
	{"spec-copy-exclude", "/mydir/homeA.txt", "presence", excludeNamedByWildcard},
	{"spec-copy-exclude", "/mydir2/homeA.txt", "presence", excludeNamedByWildcard},
	{"spec-copy-exclude", "/mydir2/homeB.md", "presence", excludeNamedByWildcard},
	{"special", "/sp/xattr.txt", "Xattrs", "COPY keeps a context file's xattrs (security.capability, user.*); BuildKit v0.34.2 (buildctl --local) and docker drop them"},
}

// excludeNamedByWildcard: BuildKit v0.34.2 applies --exclude only inside
// each source, so a file the source wildcard itself names is copied; its
// Dockerfile reference's example (COPY --exclude=*.txt hom* /mydir/)
// says it is left out, which Slipway does.
const excludeNamedByWildcard = "--exclude leaves out a file the source wildcard names; BuildKit v0.34.2 copies it (its reference's example says otherwise)"

// deliberateDiffs are where Slipway departs from BuildKit on purpose;
// they are checked like knownDiffs, so an entry that stops matching fails.
var deliberateDiffs = []knownDiff{
	// Issue 12 keeps the error when every source of a COPY is a wildcard
	// that matches nothing, as docker's legacy builder and kaniko do; BuildKit
	// copies nothing and goes on.
	{"defect3-wildcard-all-nomatch", "build", "outcome", "deliberate (issue 12): COPY fails when every source matches nothing; BuildKit builds it"},
}

// legacyDiffs are where docker's legacy builder (Docker 20.10, the second
// opinion) departs from BuildKit, whose behaviour Slipway follows: each
// entry says why. An entry that matches nothing fails the test.
var legacyDiffs = []knownDiff{
	// An ARG declared after an ENV of the same name sets RUN's value in
	// BuildKit (dispatchArg adds it to the state's env; kaniko's #3344 fix
	// follows it); the legacy builder keeps the ENV's.
	{"argenv", "/out/05-arg-after-env", "Digest", "BuildKit lets an ARG after an ENV of the same name set RUN's value"},
	{"argenv", "/out/07-env", "Digest", "BuildKit lets an ARG after an ENV of the same name set RUN's value"},

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

// TestTablesNameCases keeps the tables honest when a case is renamed: an
// entry for a case that no longer exists would never be checked.
func TestTablesNameCases(t *testing.T) {
	names := map[string]bool{}
	add := func(name string) {
		if names[name] {
			t.Errorf("two cases are named %s: the tables could not tell them apart", name)
		}
		names[name] = true
	}
	add("onbuild-base")
	add("onbuild-child")
	for _, c := range corpusCases {
		add(c.name)
	}
	for _, c := range defectCases {
		add(c.name)
	}
	for _, c := range parityCases {
		add(c.name)
	}
	for _, c := range specCases {
		add("spec-" + c.name)
	}
	for _, k := range knownSpecGaps {
		if !names["spec-"+k.Case] {
			t.Errorf("knownSpecGaps entry %+v names no case", k)
		}
	}
	for table, entries := range map[string][]knownDiff{"knownDiffs": knownDiffs, "deliberateDiffs": deliberateDiffs, "legacyDiffs": legacyDiffs} {
		for _, k := range entries {
			if !names[k.Case] {
				t.Errorf("%s entry %+v names no case", table, k)
			}
		}
	}
}
