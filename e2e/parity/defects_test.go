package parity

import (
	"os"
	"path/filepath"
	"testing"
)

// defectCases are the defects an outside corpus found (issue 12), each a
// few lines, built by BuildKit and by Slipway and compared like the
// ported corpus. Until a defect is fixed, knownDiffs lists what it still
// changes, and the entry fails the test the day Slipway matches.
var defectCases = []corpusCase{
	// 1. RUN gets HOME from the user's passwd entry, "/" without one,
	// unless ENV sets it.
	{name: "defect1-home", from: "issue 12, defect 1", df: `FROM busybox
RUN echo "$HOME" > /h
RUN adduser -D alice
USER alice
RUN echo "$HOME" > /tmp/h2
USER 4242
RUN echo "$HOME" > /tmp/h3
USER root
RUN cp /tmp/h2 /tmp/h3 /
`},
	// The issue's own example, on Debian: useradd -m and a RUN as alice.
	{name: "defect1-home-debian", from: "issue 12, defect 1", df: "FROM debian\nRUN echo \"$HOME\" > /h\nRUN useradd -m alice\nUSER alice\nRUN echo \"$HOME\" > /tmp/h2 && echo made > ~/in-home\n"},
	{name: "defect1-home-env", from: "issue 12, defect 1", df: "FROM busybox\nENV HOME=/custom\nRUN echo \"$HOME\" > /h\nUSER app\nRUN echo \"$HOME\" > /tmp/h2\n"},
	{name: "defect1-home-run-tilde", from: "issue 12, defect 1", df: "FROM busybox\nRUN adduser -D bob\nUSER bob\nRUN mkdir ~/made && echo hi > ~/made/f\n"},

	// 2. COPY --from keeps the source's owners, unless --chown.
	{name: "defect2-copy-from-stage-dir", from: "issue 12, defect 2", df: "FROM busybox AS b\nRUN mkdir -p /a/s && touch /a/s/f && chown 123:123 /a/s && chown 321:321 /a/s/f\nFROM busybox\nCOPY --from=b /a /a\n"},
	{name: "defect2-copy-from-stage-file", from: "issue 12, defect 2", df: "FROM busybox AS b\nRUN touch /f && chown 321:654 /f\nFROM busybox\nCOPY --from=b /f /single\n"},
	{name: "defect2-copy-from-earlier-chown", from: "issue 12, defect 2", df: "FROM busybox AS c\nCOPY --chown=55:66 foo /c/foo\nFROM busybox\nCOPY --from=c /c /c\n",
		files: map[string]string{"foo": "foo\n"}},
	{name: "defect2-copy-from-image", from: "issue 12, defect 2", df: "FROM busybox\nCOPY --from=parity-base /owned /owned\nCOPY --from=parity-base /owned/f /owned-file\n"},
	{name: "defect2-copy-context-is-root", from: "issue 12, defect 2", df: "FROM busybox\nCOPY foo dir /ctx/\n",
		files: map[string]string{"foo": "foo\n", "dir/x": "x\n"}, setup: chownContext},

	// 3. A wildcard matching nothing is skipped when another source matches.
	{name: "defect3-wildcard-nomatch-and-match", from: "issue 12, defect 3", df: "FROM busybox\nCOPY nomatch* foo /dst\n",
		files: map[string]string{"foo": "foo\n"}},
	// When every source matches nothing, Slipway keeps its error (issue
	// 12 decides so, as docker's legacy builder); BuildKit builds it.
	{name: "defect3-wildcard-all-nomatch", from: "issue 12, defect 3", df: "FROM busybox\nCOPY nomatch* other* /dst/\n",
		files: map[string]string{"foo": "foo\n"}},

	// 4. --chmod applies to the directory COPY or ADD creates.
	{name: "defect4-chmod-created-dest-dir", from: "issue 12, defect 4", df: "FROM busybox\nRUN mkdir -m 700 /exists\nCOPY --chmod=777 d /d777\nADD --chmod=700 d /d700\nCOPY --chmod=751 d /new/\nCOPY --chmod=777 d /exists\n",
		files: map[string]string{"d/f": "f\n", "d/sub/g": "g\n"}},
	{name: "defect4-chmod-new-parents", from: "issue 12, defect 4", df: "FROM busybox\nCOPY --chmod=751 d /p/q/r/\nCOPY --chmod=640 f /x/y/f\n",
		files: map[string]string{"d/f": "f\n", "f": "f\n"}},

	// 5. USER root (or a number) resolves without /etc/passwd.
	{name: "defect5-scratch-user-root-workdir", from: "issue 12, defect 5", df: "FROM scratch\nUSER root\nWORKDIR /w\n"},
	{name: "defect5-scratch-numeric-user-workdir", from: "issue 12, defect 5", df: "FROM scratch\nUSER 1234:5678\nWORKDIR /w\n"},

	// 6. WORKDIR under a numeric USER without a passwd entry.
	{name: "defect6-numeric-user-workdir", from: "issue 12, defect 6", df: "FROM busybox\nUSER 9999\nWORKDIR /w/x\n"},

	// 7. Writing through an absolute symlink whose target's parents are
	// missing creates them inside the root.
	{name: "defect7-copy-through-dangling-symlink", from: "issue 12, defect 7", df: "FROM parity-base\nCOPY a.txt /evil/\n",
		files: map[string]string{"a.txt": "a\n"}},
	{name: "defect7-workdir-through-dangling-symlink", from: "issue 12, defect 7", df: "FROM parity-base\nWORKDIR /evil/wd\n"},
	{name: "defect7-mount-through-dangling-symlink", from: "issue 12, defect 7", df: "FROM parity-base\nRUN --mount=type=bind,target=/evil/m cat /evil/m/a.txt > /got\n",
		files: map[string]string{"a.txt": "a\n"}},

	// 8. A scratch stage's WorkingDir is "/".
	{name: "defect8-scratch-workingdir", from: "issue 12, defect 8", df: "FROM scratch\nCOPY foo /foo\n",
		files: map[string]string{"foo": "foo\n"}},

	// 9. A FROM image that does not exist: the error names the line.
	{name: "defect9-missing-from-image", from: "issue 12, defect 9", df: "FROM busybox AS ok\nRUN true\nFROM parity-missing\nRUN true\n",
		fails: true, errorLine: 3},
}

// chownContext gives the context's files an owner other than root: COPY
// from the build context still writes them as root.
func chownContext(t *testing.T, dir string) {
	for _, p := range []string{"foo", "dir", "dir/x"} {
		if err := os.Lchown(filepath.Join(dir, p), 4321, 8765); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDefects(t *testing.T) {
	runCorpus(t, "issue 12 defects", defectCases)
}
