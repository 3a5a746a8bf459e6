package podmodel

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-build/slipway/e2e/harness"
)

// pendingDockerfile: the build stage's files are only read by COPY
// --from, so in place its changes stay at "/" unwritten; the final stage's
// RUN wipes "/" first, so they are written then, as one tar of both RUNs:
// a directory deleted and made again must hide what it held, a deleted
// tree and a deleted file of the base must stay deleted.
const pendingDockerfile = `ARG BASE
FROM ${BASE} AS build
RUN mkdir -p /out/gone /out/again && echo x > /out/gone/f && echo old > /out/again/old
RUN rm -rf /out/gone /out/again && mkdir /out/again && echo new > /out/again/new && rm /etc/group

FROM ${BASE}
RUN echo final > /final
COPY --from=build /out /out
COPY --from=build /etc /build-etc
`

// TestInPlaceCopyFromAfterAWipe: what COPY --from reads of a stage whose
// files "/" no longer holds is the stage as its steps left it.
func TestInPlaceCopyFromAfterAWipe(t *testing.T) {
	b := executorImages(t)
	reg := harness.StartRegistry(t)
	base := harness.Busybox(t, reg)
	ctx := writeContext(t, map[string]string{"Dockerfile": pendingDockerfile})
	dest := reg.Host + "/pending:1"
	out, code := dockerRun(t,
		"-v", ctx+":/workspace",
		b.executor,
		"--context", "dir:///workspace",
		"--destination", dest,
		"--digest-file", "/workspace/out/digest",
		"--build-arg", "BASE="+base,
		"--insecure-registry", reg.Host,
	)
	if code != 0 {
		t.Fatalf("the build exited %d:\n%s", code, out)
	}
	if strings.Contains(out, "Copying from the stage's files in place") {
		t.Errorf("COPY --from read / after the final stage's RUN wiped it:\n%s", out)
	}
	fs := flatten(t, assertPushed(t, reg, dest, filepath.Join(ctx, "out", "digest")))
	for p, want := range map[string]string{"/out/again/new": "new\n", "/final": "final\n"} {
		if f := fs[p]; f == nil || string(f.data) != want {
			t.Errorf("%s: got %v, want a file holding %q", p, f, want)
		}
	}
	if fs["/build-etc/passwd"] == nil {
		t.Error("/build-etc/passwd is missing")
	}
	assertAbsent(t, fs, "/out/gone", "/out/gone/f", "/out/again/old", "/build-etc/group")
}
