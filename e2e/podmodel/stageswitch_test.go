package podmodel

import (
	"context"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-build/slipway/e2e/harness"
)

// copyOnlyFinalDockerfile is the common multi-stage build: a stage that
// RUNs, then a final stage that only copies its output. The final stage
// needs no real root at "/": in place it writes on sparse roots, and reads
// what it copies from "/", where the build stage's files still are.
const copyOnlyFinalDockerfile = `ARG BASE
FROM ${BASE} AS build
RUN mkdir -p /out/sub && echo hello > /out/hello && echo deep > /out/sub/deep && ln -s hello /out/link && chmod 0750 /out/sub

FROM ${BASE}
COPY --from=build /out/hello /usr/local/bin/hello
COPY --from=build /out /copied/
COPY --from=build /out/li* /globbed/
WORKDIR /app
ENV GREETING=hello
`

// TestInPlaceCopyOnlyFinalStage: the final stage of a multi-stage build,
// with no RUN, neither wipes "/" nor unpacks its base in place, nor
// extracts the build stage's image again for COPY --from, and reads its
// base's headers from the tables the build stage recorded as it unpacked
// the same base, so that the base is downloaded once; and the image is
// the one chroot mode (the same binary, on the host) builds, digest for
// digest.
func TestInPlaceCopyOnlyFinalStage(t *testing.T) {
	b := executorImages(t)
	reg := harness.StartRegistry(t)
	base := harness.Busybox(t, reg)
	ctx := writeContext(t, map[string]string{"Dockerfile": copyOnlyFinalDockerfile})

	inPlace := reg.Host + "/stages:in-place"
	out, code := dockerRun(t,
		"-v", ctx+":/workspace",
		b.executor,
		"--context", "dir:///workspace",
		"--destination", inPlace,
		"--build-arg", "BASE="+base,
		"--insecure-registry", reg.Host,
		"--reproducible",
		"--verbosity", "debug",
	)
	if code != 0 {
		t.Fatalf("the in-place build exited %d:\n%s", code, out)
	}
	// The build stage unpacks its base for its RUN; the final stage
	// unpacks nothing.
	if n := strings.Count(out, "Unpacking rootfs as cmd requires it."); n != 1 {
		t.Errorf("the in-place build unpacked %d roots, want 1 (the build stage's):\n%s", n, out)
	}
	// Its base's headers, for its sparse roots, come from the tables the
	// build stage's unpack recorded: no read ahead beside that unpack, and
	// each base layer downloaded once.
	if strings.Contains(out, "The base's file tree was read ahead") {
		t.Errorf("the final stage's base was read ahead while the build stage unpacked it:\n%s", out)
	}
	assertFetchedOnce(t, reg, base)
	if n := strings.Count(out, "Copying from the stage's files in place"); n != 3 {
		t.Errorf("%d COPY --from read the build stage's files in place, want 3:\n%s", n, out)
	}

	chroot := reg.Host + "/stages:chroot"
	work := t.TempDir()
	cmd := exec.Command(filepath.Join(b.bin, "slipway-build"),
		"--mode", "chroot",
		"--context", "dir://"+ctx,
		"--destination", chroot,
		"--build-arg", "BASE="+base,
		"--insecure-registry", reg.Host,
		"--reproducible",
		"--work-dir", filepath.Join(work, "work"),
		"--cache-dir", filepath.Join(work, "cache"),
	)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + work}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the chroot build: %v\n%s", err, out)
	}

	got, want := pulled(t, reg, inPlace), pulled(t, reg, chroot)
	gotFS, wantFS := flatten(t, got), flatten(t, want)
	for p, w := range wantFS {
		if g := gotFS[p]; g.String() != w.String() || string(g.data) != string(w.data) {
			t.Errorf("%s: in place %v, chroot mode %v", p, g, w)
		}
	}
	for p, g := range gotFS {
		if wantFS[p] == nil {
			t.Errorf("%s: in place %v, not in chroot mode's image", p, g)
		}
	}
	for p, w := range map[string]string{
		"/usr/local/bin/hello": "hello\n",
		"/copied/sub/deep":     "deep\n",
		"/globbed/link":        "hello\n", // a source symlink is followed
	} {
		if f := gotFS[p]; f == nil || string(f.data) != w {
			t.Errorf("%s: got %v, want %q", p, f, w)
		}
	}
	gd, err := got.Digest()
	if err != nil {
		t.Fatal(err)
	}
	wd, err := want.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if gd != wd {
		t.Errorf("the in-place image is %s, chroot mode's %s: with --reproducible they must be the same", gd, wd)
	}
}

// TestInPlaceCopyFromThroughALinkToTheExecutor: a COPY --from source that
// is a symlink to the executor's own files (its docker config mount) must
// not read them from the container's "/": in place the stage's image is
// then extracted as in chroot mode, where the link leads nowhere.
func TestInPlaceCopyFromThroughALinkToTheExecutor(t *testing.T) {
	b := executorImages(t)
	reg := harness.StartRegistry(t, harness.WithHtpasswd(user, password))
	base := harness.Busybox(t, reg)
	ctx := writeContext(t, map[string]string{"Dockerfile": `ARG BASE
FROM ${BASE} AS build
RUN mkdir /out && ln -s /kaniko/.docker/config.json /out/config && ln -s /kaniko/.docker /out/docker

FROM ${BASE}
COPY --from=build /out/config /leaked-config
`})
	dest := reg.Host + "/stages:link"
	out, code := dockerRun(t,
		"-v", ctx+":/workspace",
		"-v", reg.DockerConfigDir(t)+":/kaniko/.docker:ro",
		b.executor,
		"--context", "dir:///workspace",
		"--destination", dest,
		"--build-arg", "BASE="+base,
		"--insecure-registry", reg.Host,
		"--verbosity", "debug",
	)
	if code == 0 {
		t.Fatalf("the build copied a symlink to the executor's docker config and succeeded:\n%s", out)
	}
	if strings.Contains(out, "Copying from the stage's files in place") {
		t.Errorf("COPY --from read the stage's files in place through a link to the executor's:\n%s", out)
	}
	if !strings.Contains(out, "/out/config: not found") {
		t.Errorf("the build failed, but not because the link leads nowhere in the stage's image:\n%s", out)
	}
}

// assertFetchedOnce fails t unless each layer of image was downloaded from
// reg exactly once so far (the registry's log).
func assertFetchedOnce(t *testing.T, reg *harness.Registry, image string) {
	t.Helper()
	img, err := reg.Client().Pull(context.Background(), image, v1.Platform{OS: "linux", Architecture: runtime.GOARCH})
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	fetched := reg.FetchedBlobs(t)
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(strings.Join(fetched, " "), d.String()); n != 1 {
			t.Errorf("layer %s of %s was downloaded %d times, want once", d, image, n)
		}
	}
}
