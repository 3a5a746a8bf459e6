package step

import (
	"archive/tar"
	"context"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	digest "github.com/opencontainers/go-digest"

	"github.com/slipway-build/slipway/e2e/harness"
)

// Both COPYs write into directories of the base, so that their layers
// hold the base's parent entries as the sparse root revealed them, and
// --chown resolves app:app against the base's /etc/passwd and /etc/group.
const eStargzApp = `ARG BASE
FROM ${BASE}
COPY --chown=app:app src/ /home/app/src/
COPY src/main.sh /usr/local/bin/app.sh
CMD ["/bin/sh", "-c", "stat -c '%U:%G %u:%g' /home/app/src/main.sh && sh /usr/local/bin/app.sh"]
`

// pushBase pushes img to reg as slipway-test/<repo>:latest and returns
// its reference and its one layer's digest.
func pushBase(t *testing.T, reg *harness.Registry, repo string, img v1.Image) (string, string) {
	t.Helper()
	ref := reg.Host + "/slipway-test/" + repo + ":latest"
	parsed, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Client().Push(context.Background(), img, parsed); err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("base layers %v, %v", layers, err)
	}
	d, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref, d.String()
}

// eStargzBuild builds ctxDir FROM base with the registry cache in
// cacheRepo (none if "") and a fresh --cache-dir, reproducibly, and
// returns the pushed image's layers and the build's log.
func eStargzBuild(t *testing.T, reg *harness.Registry, ctxDir, base, dest, cacheRepo string, flags ...string) (*imageLayers, string) {
	t.Helper()
	args := append([]string{"--insecure-registry", reg.Host,
		"--context", "dir://" + ctxDir, "--build-arg", "BASE=" + base, "--destination", dest, "--reproducible",
		"--cache-dir", t.TempDir()}, flags...)
	if cacheRepo != "" {
		args = append(args, "--cache=true", "--cache-repo", cacheRepo)
	}
	res := slipway(t, nil, args...)
	if res.code != 0 {
		t.Fatalf("building %s FROM %s: exit %d:\n%s", dest, base, res.code, res.stderr)
	}
	return &imageLayers{t: t, img: pushed(t, reg, dest)}, res.stderr
}

type imageLayers struct {
	t   *testing.T
	img v1.Image
}

func (l *imageLayers) digests() []string {
	l.t.Helper()
	layers, err := l.img.Layers()
	if err != nil {
		l.t.Fatal(err)
	}
	var out []string
	for _, layer := range layers {
		d, err := layer.Digest()
		if err != nil {
			l.t.Fatal(err)
		}
		out = append(out, d.String())
	}
	return out
}

// owner is the uid:gid of p's entry in the image's last layer but one
// (the --chown COPY).
func (l *imageLayers) owner(p string) (int, int) {
	l.t.Helper()
	layers, err := l.img.Layers()
	if err != nil || len(layers) < 3 {
		l.t.Fatalf("layers %v, %v", layers, err)
	}
	rc, err := layers[len(layers)-2].Uncompressed()
	if err != nil {
		l.t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			l.t.Fatal(err)
		}
		if strings.TrimPrefix(hdr.Name, "/") == p {
			return hdr.Uid, hdr.Gid
		}
	}
	l.t.Fatalf("%s is not in the COPY --chown layer", p)
	return 0, 0
}

// reads are the registry's answers to GETs of blob since before.
func reads(t *testing.T, reg *harness.Registry, before int, blob string) []string {
	t.Helper()
	var out []string
	for _, r := range reg.BlobReads(t)[before:] {
		if strings.HasPrefix(r, blob+" ") {
			out = append(out, strings.TrimPrefix(r, blob+" "))
		}
	}
	return out
}

// Issue 17: a build FROM an eStargz base, with no table in the cache
// repository yet, reads each base layer's table from the layer itself by
// ranged requests (its footer, its TOC, and the gzip members of
// /etc/passwd and /etc/group for --chown) instead of downloading it, and
// stores the table, so that the next build reads nothing of the base (a
// build without --cache reads the table too, for itself). The
// image is the one a build reading the whole layer makes, layer for layer.
// zstd:chunked is read the same way. A base whose table is damaged, or a
// registry that ignores Range, falls back to reading the layer whole, with
// a warning.
func TestEStargzBaseIsReadByRange(t *testing.T) {
	reg := harness.StartRegistry(t)
	ctxDir := writeContext(t, map[string]string{"Dockerfile": eStargzApp, "src/main.sh": "echo hello\n"})
	eStargz := harness.EStargz(t, harness.BusyboxImage(t))
	base, baseLayer := pushBase(t, reg, "busybox-estargz", eStargz)

	before := len(reg.BlobReads(t))
	img, log := eStargzBuild(t, reg, ctxDir, base, reg.Host+"/team/app:cold", reg.Host+"/team/cache")
	got := reads(t, reg, before, baseLayer)
	t.Logf("the cold build's reads of the base layer: %v", got)
	if len(got) == 0 || slices.ContainsFunc(got, func(s string) bool { return s != "206" }) {
		t.Errorf("the base layer was read with the answers %v; want ranges (206) only:\n%s", got, log)
	}
	if !strings.Contains(log, "the layer carries (eStargz") || strings.Contains(log, "WARN") || strings.Contains(log, "Unpacking rootfs") {
		t.Errorf("the build should read the eStargz table, unpack nothing and warn of nothing:\n%s", log)
	}
	if uid, gid := img.owner("home/app/src/main.sh"); uid != 1000 || gid != 1000 {
		t.Errorf("COPY --chown=app:app gave %d:%d, want 1000:1000 from the base's /etc/passwd and /etc/group", uid, gid)
	}
	layers := img.digests()
	if len(layers) != 3 || layers[0] != baseLayer {
		t.Fatalf("layers %v, want the base's %s and two COPY layers", layers, baseLayer)
	}
	if out := dockerRunPlatform(t, "linux/amd64", reg.Host+"/team/app:cold"); out != "app:app 1000:1000\nhello" {
		t.Errorf("the image printed %q", out)
	}

	// zstd:chunked is read the same way, and its table makes the same
	// COPY layers.
	zstd := harness.ZstdChunked(t, harness.BusyboxImage(t))
	zstdBase, zstdLayer := pushBase(t, reg, "busybox-zstd-chunked", zstd)
	before = len(reg.BlobReads(t))
	zstdImg, log := eStargzBuild(t, reg, ctxDir, zstdBase, reg.Host+"/team/app:zstd", reg.Host+"/team/cache-zstd")
	got = reads(t, reg, before, zstdLayer)
	t.Logf("the zstd:chunked build's reads of the base layer: %v", got)
	if len(got) == 0 || slices.ContainsFunc(got, func(s string) bool { return s != "206" }) {
		t.Errorf("the zstd:chunked base layer was read with the answers %v; want ranges (206) only:\n%s", got, log)
	}
	if strings.Contains(log, "WARN") || strings.Contains(log, "Unpacking rootfs") {
		t.Errorf("the zstd:chunked build should unpack nothing and warn of nothing:\n%s", log)
	}
	if got := zstdImg.digests(); len(got) != 3 || got[0] != zstdLayer || !slices.Equal(got[1:], layers[1:]) {
		t.Errorf("layers %v, want %s and the COPY layers built on eStargz, %v", got, zstdLayer, layers[1:])
	}

	// Without --cache the build reads the table the same way, for itself.
	before = len(reg.BlobReads(t))
	noCache, log := eStargzBuild(t, reg, ctxDir, base, reg.Host+"/team/app:no-cache", "")
	got = reads(t, reg, before, baseLayer)
	t.Logf("the build without --cache read the base layer with: %v", got)
	if len(got) == 0 || slices.ContainsFunc(got, func(s string) bool { return s != "206" }) || strings.Contains(log, "WARN") {
		t.Errorf("without --cache, the base layer was read with the answers %v; want ranges (206) only:\n%s", got, log)
	}
	if got := noCache.digests(); !slices.Equal(got, layers) {
		t.Errorf("without --cache, layers %v, want %v", got, layers)
	}

	// The table is in the cache repository now: a stateless rebuild with
	// the app changed reads nothing of the base.
	harness.WriteFile(t, filepath.Join(ctxDir, "src", "main.sh"), "echo changed\n")
	before = len(reg.BlobReads(t))
	_, log = eStargzBuild(t, reg, ctxDir, base, reg.Host+"/team/app:rebuilt", reg.Host+"/team/cache")
	if got := reads(t, reg, before, baseLayer); len(got) > 0 {
		t.Errorf("the rebuild read the base layer (%v) though its table is in the cache repository:\n%s", got, log)
	}
	harness.WriteFile(t, filepath.Join(ctxDir, "src", "main.sh"), "echo hello\n")

	// Each fallback reads the layer whole, warns, and builds the same
	// image as the table did.
	proxyHost := reg.IgnoringRange(t)
	wrongDigest, _ := pushBase(t, reg, "busybox-estargz-wrong-toc", harness.Reannotated(t, eStargz, func(a map[string]string) {
		a[estargz.TOCJSONDigestAnnotation] = digest.FromString("another table").String()
	}))
	noFooter, plainLayer := pushBase(t, reg, "busybox-not-estargz", harness.Reannotated(t, harness.BusyboxImage(t), func(a map[string]string) {
		a[estargz.TOCJSONDigestAnnotation] = digest.FromString("a table it does not have").String()
	}))
	wrongChecksum, _ := pushBase(t, reg, "busybox-zstd-wrong-checksum", harness.Reannotated(t, zstd, func(a map[string]string) {
		a["io.containers.zstd-chunked.manifest-checksum"] = digest.FromString("another table").String()
	}))
	for _, tc := range []struct {
		name, base, layer, warning string
		flags                      []string
	}{
		{"TOC digest mismatch", wrongDigest, baseLayer, "but the manifest's annotation says", nil},
		{"no eStargz footer", noFooter, plainLayer, "no eStargz footer", nil},
		{"zstd:chunked checksum mismatch", wrongChecksum, zstdLayer, "but the manifest's annotation says", nil},
		{"registry ignores Range", strings.Replace(base, reg.Host, proxyHost, 1), baseLayer, "ignored the Range header",
			[]string{"--insecure-registry", proxyHost}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := strings.NewReplacer(" ", "-", ":", "-").Replace(strings.ToLower(tc.name))
			before := len(reg.BlobReads(t))
			fallback, log := eStargzBuild(t, reg, ctxDir, tc.base, reg.Host+"/team/"+repo+":latest", reg.Host+"/team/cache-"+repo, tc.flags...)
			if !strings.Contains(log, "WARN") || !strings.Contains(log, tc.warning) {
				t.Errorf("no warning with %q:\n%s", tc.warning, log)
			}
			got := reads(t, reg, before, tc.layer)
			t.Logf("reads of the base layer: %v", got)
			if !slices.Contains(got, "200") {
				t.Errorf("the base layer was not read whole (answers %v):\n%s", got, log)
			}
			if uid, gid := fallback.owner("home/app/src/main.sh"); uid != 1000 || gid != 1000 {
				t.Errorf("COPY --chown=app:app gave %d:%d, want 1000:1000", uid, gid)
			}
			// The COPY layers are the same as those the eStargz table made.
			if got := fallback.digests(); len(got) != 3 || got[0] != tc.layer || !slices.Equal(got[1:], layers[1:]) {
				t.Errorf("layers %v, want %s and the COPY layers built from the eStargz table, %v", got, tc.layer, layers[1:])
			}
		})
	}
}
