package build

import (
	"archive/tar"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-build/slipway/e2e/harness"
)

// A step that writes files onto a sparse root must make the layer it makes
// on the unpacked root, byte for byte. With a RUN still to come, COPY, ADD
// and WORKDIR unpack the root; with none, they use sparse roots. The
// Dockerfiles go through symlinks of the
// base and of their own layers, replace a symlink, resolve --chown names,
// merge into existing directories and unpack an archive.
func TestSparseRootMakesTheSameLayers(t *testing.T) {
	f := newFixture(t)
	t.Run("busybox", func(t *testing.T) {
		assertSparseSameLayers(t, f, map[string]string{
			"Dockerfile": `FROM $BASE
COPY a.txt /dst/file
COPY a.txt /dstdir/
COPY dir /copied
COPY *.txt /glob/
COPY a.txt /etc
COPY links/ /
COPY a.txt /var/run/through-link
COPY --chown=app:nogroup a.txt /o/bygroup
COPY --chown=app dir /home/app/
COPY --chmod=0640 --chown=7:8 dir /m2/
COPY a.txt /etc/motd-link
ADD pkg.tar.gz /unpacked/
COPY <<EOF /inline.txt
inline
EOF
USER app
WORKDIR /home/app/made
WORKDIR /srv/new
COPY --parents dir/./sub/y /parents/
`,
			"a.txt": "A", "b.txt": "B", "dir/x": "X", "dir/sub/y": "Y",
			"pkg.tar.gz": tarGz(t, map[string]string{"pkg/readme": "from the archive"}),
		})
	})
	// Debian's merged /usr (/bin -> usr/bin, /lib -> usr/lib), its
	// /var/run -> /run and its real user database.
	t.Run("debian", func(t *testing.T) {
		debian := fixture{reg: f.reg, base: harness.Debian(t, f.reg)}
		assertSparseSameLayers(t, debian, map[string]string{
			"Dockerfile": `FROM $BASE
COPY a.txt /bin/tool
COPY dir /lib/app/
COPY a.txt /var/run/pid
COPY --chown=nobody:nogroup a.txt /var/lib/owned
COPY --chown=_apt dir /usr/share/doc/app/
COPY a.txt /etc/ssl/
USER nobody
WORKDIR /tmp/work
`,
			"a.txt": "A", "dir/x": "X", "dir/sub/y": "Y",
		})
	})
}

// assertSparseSameLayers builds files as they are (no RUN: every step
// writes onto a sparse root) and with a RUN true appended (every step
// writes onto the unpacked root, and the RUN adds no layer), and compares
// the layers.
func assertSparseSameLayers(t *testing.T, f fixture, files map[string]string) {
	epoch := time.Unix(1700000000, 0).UTC()
	build := func(dockerfile string) (v1.Image, string) {
		dir := t.TempDir()
		must(t, os.MkdirAll(filepath.Join(dir, "links", "var"), 0o755))
		must(t, os.Symlink("/run", filepath.Join(dir, "links", "var", "run")))
		// COPY onto a symlink writes where it points, as BuildKit does: a
		// dangling one makes its target. (/bin/cat would overwrite busybox.)
		must(t, os.MkdirAll(filepath.Join(dir, "links", "etc"), 0o755))
		must(t, os.Symlink("/etc/motd", filepath.Join(dir, "links", "etc", "motd-link")))
		log := &syncBuffer{}
		withDockerfile := maps.Clone(files)
		withDockerfile["Dockerfile"] = dockerfile
		img, err := f.buildIn(t, dir, withDockerfile, func(o *Options) {
			o.Epoch = &epoch
			o.Log = slog.New(slog.NewTextHandler(log, nil))
		})
		if err != nil {
			t.Fatal(err)
		}
		return img, log.String()
	}
	unpacked, unpackedLog := build(files["Dockerfile"] + "RUN true\n")
	sparse, sparseLog := build(files["Dockerfile"])
	if i := strings.Index(unpackedLog, "Unpacking rootfs"); i < 0 || i > strings.Index(unpackedLog, "RUN true") {
		t.Fatalf("with a RUN to come the first COPY should unpack the root; the test compares nothing:\n%s", unpackedLog)
	}
	if strings.Contains(sparseLog, "Unpacking rootfs") {
		t.Errorf("with no RUN the root should never be unpacked:\n%s", sparseLog)
	}
	assertSameLayers(t, unpacked, sparse)
}

func layerListing(t *testing.T, l v1.Layer) string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return strings.Join(out, " ")
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s(%c %o %d:%d %s %d %s)", h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.ModTime.UTC().Format(time.RFC3339), h.Size, h.Linkname))
	}
}
