package build

import (
	"archive/tar"
	"context"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-build/slipway/e2e/harness"
)

// Conformance with BuildKit v0.34.2, the reference builder: each case is a
// defect an outside corpus found (issue 12), with BuildKit's behaviour as
// the expectation. The parity suite checks the same against buildkitd.

func hasContent(p, content string) check {
	return func(t *testing.T, fs map[string]fsEntry, _ *v1.ConfigFile) {
		t.Helper()
		if e, ok := fs[p]; !ok || e.content != content {
			t.Errorf("%s = %q (present %v); want %q", p, e.content, ok, content)
		}
	}
}

func envHas(key string, want bool) check {
	return func(t *testing.T, _ map[string]fsEntry, cf *v1.ConfigFile) {
		t.Helper()
		found := false
		for _, kv := range cf.Config.Env {
			found = found || strings.HasPrefix(kv, key+"=")
		}
		if found != want {
			t.Errorf("config Env %q: %s present %v, want %v", cf.Config.Env, key, found, want)
		}
	}
}

// buildAndCheck builds files and runs checks on the image.
func (f fixture) buildAndCheck(t *testing.T, files map[string]string, opts func(*Options), checks []check) {
	t.Helper()
	img, err := f.build(t, files, opts)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	fs := flatten(t, img)
	for _, c := range checks {
		c(t, fs, cf)
	}
}

func workingDir(want string) check {
	return config(func(t *testing.T, cf *v1.ConfigFile) {
		t.Helper()
		if cf.Config.WorkingDir != want {
			t.Errorf("WorkingDir = %q, want %q", cf.Config.WorkingDir, want)
		}
	})
}

// conformanceCase is a build and what BuildKit v0.34 makes of it.
type conformanceCase struct {
	name   string
	files  map[string]string
	opts   func(*Options)
	checks []check
}

func TestConformance(t *testing.T) {
	f := newFixture(t)
	for _, tt := range conformanceCases() {
		t.Run(tt.name, func(t *testing.T) {
			f.buildAndCheck(t, tt.files, tt.opts, tt.checks)
		})
	}
}

func conformanceCases() []conformanceCase {
	return []conformanceCase{
		{
			// runc, under BuildKit, sets HOME for the process from the
			// passwd entry of its uid, "/" without one, unless the
			// environment has a non-empty HOME; the image config has none.
			name: "RUN gets HOME from the user's passwd entry",
			files: map[string]string{"Dockerfile": `FROM $BASE
RUN echo "$HOME" > /h-root
USER app
RUN echo "$HOME" > /tmp/h-app
USER 4242
RUN echo "$HOME" > /tmp/h-no-entry
USER 1000:0
RUN echo "$HOME" > /tmp/h-uid-gid
USER root
RUN echo 'alice:x:1001:1001::/home/alice:/bin/sh' >> /etc/passwd
USER alice
RUN echo "$HOME" > /tmp/h-alice
`},
			checks: []check{
				hasContent("/h-root", "/root\n"),
				hasContent("/tmp/h-app", "/home/app\n"),
				hasContent("/tmp/h-no-entry", "/\n"),
				hasContent("/tmp/h-uid-gid", "/home/app\n"),
				hasContent("/tmp/h-alice", "/home/alice\n"),
				envHas("HOME", false),
			},
		},
		{
			name: "ENV HOME wins over the passwd entry, an empty one does not",
			files: map[string]string{"Dockerfile": `FROM $BASE
ENV HOME=/x
RUN echo "$HOME" > /h-env
USER app
RUN echo "$HOME" > /tmp/h-env-app
USER root
ENV HOME=
RUN echo "$HOME" > /h-empty
`},
			checks: []check{
				hasContent("/h-env", "/x\n"),
				hasContent("/tmp/h-env-app", "/x\n"),
				hasContent("/h-empty", "/root\n"),
			},
		},
		{
			// BuildKit copies each source on its own and lets a wildcard
			// match nothing; the destination is a directory only when it
			// ends in / or already is one.
			name: "a wildcard that matches nothing beside one that matches",
			files: map[string]string{"Dockerfile": `FROM $BASE
COPY nomatch* foo /dst
COPY foo nomatch* /dst2/
COPY nomatch* f?o none[0-9] /dst3
`, "foo": "F"},
			checks: []check{
				hasFile("/dst", "F", 0o644, 0, 0),
				hasFile("/dst2/foo", "F", 0o644, 0, 0),
				hasFile("/dst3", "F", 0o644, 0, 0),
			},
		},
		{
			// fsutil's copy makes the destination of a directory source
			// with the --chmod mode, as it makes missing parents; an
			// existing destination keeps its mode.
			name: "--chmod applies to the destination directory COPY and ADD create",
			files: map[string]string{"Dockerfile": `FROM $BASE
RUN mkdir -m 710 /existing
COPY --chmod=777 d /d777
ADD --chmod=700 d /d700
COPY --chmod=751 d /new/
COPY --chmod=750 d /deep/er/dir
COPY --chmod=700 d /existing
`, "d/f": "F", "d/sub/g": "G"},
			checks: []check{
				hasDir("/d777", 0o777, 0, 0),
				hasFile("/d777/f", "F", 0o777, 0, 0),
				hasDir("/d777/sub", 0o777, 0, 0),
				hasDir("/d700", 0o700, 0, 0),
				hasDir("/new", 0o751, 0, 0),
				hasFile("/new/sub/g", "G", 0o751, 0, 0),
				hasDir("/deep", 0o750, 0, 0),
				hasDir("/deep/er/dir", 0o750, 0, 0),
				hasDir("/existing", 0o710, 0, 0),
				hasFile("/existing/f", "F", 0o700, 0, 0),
			},
		},
		{
			// BuildKit's file operations take "root" and numbers as
			// uid:uid without a passwd file, and a name without an entry
			// as 0:0.
			name: "WORKDIR under USER root in an image without /etc/passwd",
			files: map[string]string{"Dockerfile": `FROM scratch
USER root
WORKDIR /w
USER 5:6
WORKDIR /five
USER nobody-here
WORKDIR /ghost
`},
			checks: []check{
				hasDir("/w", 0o755, 0, 0),
				hasDir("/five", 0o755, 5, 6),
				hasDir("/ghost", 0o755, 0, 0),
			},
		},
		{
			name: "WORKDIR under a numeric USER without a passwd entry",
			files: map[string]string{"Dockerfile": `FROM $BASE
USER 9999
WORKDIR /w/x
USER app:nogroup
WORKDIR /app-nogroup
`},
			checks: []check{
				hasDir("/w", 0o755, 9999, 9999),
				hasDir("/w/x", 0o755, 9999, 9999),
				hasDir("/app-nogroup", 0o755, 1000, 65534),
			},
		},
		{
			// BuildKit resolves a destination inside the root (fs.RootPath)
			// and creates every missing parent of what it names there.
			name: "writing through an absolute symlink whose target's parents are missing",
			files: map[string]string{"Dockerfile": `FROM $BASE AS base
RUN ln -s /nowhere/x/y /evil && ln -s /nowhere2/p/q /evil2 && ln -s /nowhere3/w /evil3 && ln -s ../../../../up/u /climb \
 && echo old > /etc/target && ln -s /etc/target /link && ln -s /nowhere4/f /dangling
FROM base AS sparse
COPY a.txt /evil/
WORKDIR /evil3/wd
COPY a.txt /climb/
COPY a.txt /link
COPY a.txt /dangling
FROM base
COPY a.txt /evil/
COPY a.txt /link
COPY <<EOF /dangling
inline
EOF
WORKDIR /evil3/wd
RUN --mount=type=bind,source=a.txt,target=/evil2/m/a.txt cat /evil2/m/a.txt > /bound
COPY --from=sparse /nowhere /from-sparse/nowhere
COPY --from=sparse /nowhere3 /from-sparse/nowhere3
COPY --from=sparse /up /from-sparse/up
COPY --from=sparse /nowhere4 /from-sparse/nowhere4
`, "a.txt": "A"},
			checks: []check{
				hasSymlink("/evil", "/nowhere/x/y"),
				hasDir("/nowhere/x/y", 0o755, 0, 0),
				hasFile("/nowhere/x/y/a.txt", "A", 0o644, 0, 0),
				hasDir("/nowhere3/w/wd", 0o755, 0, 0),
				hasFile("/bound", "A", 0o644, 0, 0),
				absent("/nowhere2"),
				hasFile("/from-sparse/nowhere/x/y/a.txt", "A", 0o644, 0, 0),
				hasDir("/from-sparse/nowhere3/w/wd", 0o755, 0, 0),
				hasFile("/from-sparse/up/u/a.txt", "A", 0o644, 0, 0),
				// A file copied onto a symlink goes where it points.
				hasSymlink("/link", "/etc/target"),
				hasFile("/etc/target", "A", 0o644, 0, 0),
				hasSymlink("/dangling", "/nowhere4/f"),
				hasFile("/nowhere4/f", "inline\n", 0o644, 0, 0),
				hasFile("/from-sparse/nowhere4/f", "A", 0o644, 0, 0),
				workingDir("/evil3/wd"),
			},
		},
		{
			// BuildKit's readUser: a name alone takes its passwd entry's
			// gid, a number alone is also the gid.
			name: "--chown with a user name alone takes its passwd gid",
			files: map[string]string{"Dockerfile": `FROM $BASE
RUN echo 'grp:x:1000:1001::/home/grp:/bin/sh' >> /etc/passwd
COPY --chown=grp a.txt /by-name
COPY --chown=77 a.txt /by-number
`, "a.txt": "A"},
			checks: []check{
				hasFile("/by-name", "A", 0o644, 1000, 1001),
				hasFile("/by-number", "A", 0o644, 77, 77),
			},
		},
		{
			name: "scratch stages have WorkingDir /",
			files: map[string]string{"Dockerfile": `FROM scratch AS s
COPY a.txt /a
FROM s AS from-s
FROM scratch
COPY --from=from-s /a /a
`, "a.txt": "A"},
			checks: []check{
				hasFile("/a", "A", 0o644, 0, 0),
				workingDir("/"),
			},
		},
		{
			name:   "a stage on an image without WorkingDir keeps none",
			files:  map[string]string{"Dockerfile": "FROM $BASE\nCOPY a.txt /a\n", "a.txt": "A"},
			checks: []check{workingDir("")},
		},
	}
}

// TestRunHomeDebian is issue 12's reproduction: a Debian user made with
// useradd -m, and Go's build cache, which needs HOME.
func TestRunHomeDebian(t *testing.T) {
	f := newFixture(t)
	debian := fixture{reg: f.reg, base: harness.Debian(t, f.reg)}
	img, err := debian.build(t, map[string]string{"Dockerfile": `FROM $BASE
RUN echo "$HOME" > /h
RUN useradd -m alice
USER alice
RUN echo "$HOME" > /tmp/h2 && touch ~/made
`})
	if err != nil {
		t.Fatal(err)
	}
	fs := flatten(t, img)
	hasContent("/h", "/root\n")(t, fs, nil)
	hasContent("/tmp/h2", "/home/alice\n")(t, fs, nil)
	hasFile("/home/alice/made", "", 0o644, 1000, 1000)(t, fs, nil)
}

// TestCopyFromKeepsOwners: without --chown, COPY --from a stage or an
// image keeps the source's uid and gid, for directories and files, and for
// owners an earlier --chown set; from the build context it gives root.
func TestCopyFromKeepsOwners(t *testing.T) {
	f := newFixture(t)
	files := map[string]string{"Dockerfile": `FROM $BASE AS b
RUN mkdir -p /a/s && touch /a/s/f && chown 123:123 /a/s && chown 321:321 /a/s/f
RUN mkdir /h && echo x > /h/a && ln /h/a /h/b && mkfifo /h/p && chown 7:7 /h/p
FROM $BASE AS sparse
COPY --chown=55:66 x.txt /c/x
FROM $BASE
COPY --from=b /a /a
COPY --from=b /a/s/f /single
COPY --from=b /a/s /s-dir
COPY --from=sparse /c /c
COPY --from=sparse /c/x /cx
COPY x.txt /ctx
COPY --from=b /h /h
`, "x.txt": "X"}
	img, err := f.build(t, files)
	if err != nil {
		t.Fatal(err)
	}
	fs := flatten(t, img)
	hasDir("/a/s", 0o755, 123, 123)(t, fs, nil)
	hasFile("/a/s/f", "", 0o644, 321, 321)(t, fs, nil)
	hasFile("/single", "", 0o644, 321, 321)(t, fs, nil)
	hasFile("/s-dir/f", "", 0o644, 321, 321)(t, fs, nil)
	hasFile("/c/x", "X", 0o644, 55, 66)(t, fs, nil)
	hasFile("/cx", "X", 0o644, 55, 66)(t, fs, nil)
	hasFile("/ctx", "X", 0o644, 0, 0)(t, fs, nil)
	// Hard links within one COPY stay links, and a fifo stays a fifo, as
	// BuildKit's copy keeps them.
	if a, b := fs["/h/a"], fs["/h/b"]; a.typ == b.typ || (a.typ != tar.TypeLink && b.typ != tar.TypeLink) {
		t.Errorf("/h/a %+v and /h/b %+v: want one a hard link to the other", a, b)
	}
	if p := fs["/h/p"]; p.typ != tar.TypeFifo || p.uid != 7 || p.gid != 7 {
		t.Errorf("/h/p = %+v; want a fifo owned 7:7", p)
	}

	// The same from an image in a registry.
	ref, err := name.ParseReference(f.reg.Host + "/conform/owners:1")
	must(t, err)
	_, err = f.reg.Client().Push(context.Background(), img, ref)
	must(t, err)
	img, err = f.build(t, map[string]string{"Dockerfile": "FROM $BASE\nCOPY --from=" + ref.String() + " /a /a\nCOPY --from=" + ref.String() + " /cx /cx\n"})
	if err != nil {
		t.Fatal(err)
	}
	fs = flatten(t, img)
	hasDir("/a/s", 0o755, 123, 123)(t, fs, nil)
	hasFile("/a/s/f", "", 0o644, 321, 321)(t, fs, nil)
	hasFile("/cx", "X", 0o644, 55, 66)(t, fs, nil)
}

func TestConformanceErrors(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{name: "a FROM image that does not exist", files: map[string]string{"Dockerfile": "# comment\nFROM $BASE-nope\n"},
			want: []string{"Dockerfile:2: FROM", "latest-nope", "manifest unknown"}},
		{name: "a later FROM image that does not exist", files: map[string]string{"Dockerfile": "FROM $BASE AS a\nRUN true\n\nFROM $BASE-nope\nCOPY --from=a /bin/sh /x\n"},
			want: []string{"Dockerfile:4: FROM", "latest-nope"}},
		{name: "every wildcard matches nothing", files: map[string]string{"Dockerfile": "FROM $BASE\nCOPY nomatch* none? /dst/\n", "foo": "F"},
			want: []string{"line 2", "no source files were specified", "nomatch*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.build(t, tt.files)
			if err == nil {
				t.Fatal("the build succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
