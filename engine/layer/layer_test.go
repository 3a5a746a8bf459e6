package layer

import (
	"archive/tar"
	"bytes"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

type tarEntry struct {
	typ      byte
	mode     int64
	linkname string
	content  string
	xattrs   map[string]string
}

func readLayer(t *testing.T, root string, changes []Change, opts Options) map[string]tarEntry {
	t.Helper()
	opts.TempDir = t.TempDir()
	l, err := Write(root, changes, opts)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]tarEntry{}
	tr := tar.NewReader(rc)
	var order []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		xa := map[string]string{}
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				xa[strings.TrimPrefix(k, "SCHILY.xattr.")] = v
			}
		}
		out[h.Name] = tarEntry{typ: h.Typeflag, mode: h.Mode & 0o7777, linkname: h.Linkname, content: string(b), xattrs: xa}
		order = append(order, h.Name)
	}
	for i := 1; i < len(order); i++ {
		if order[i-1] >= order[i] {
			t.Errorf("entries not sorted: %q before %q", order[i-1], order[i])
		}
	}
	return out
}

func TestWriteEntries(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "app/sub"), 0o755))
	must(os.WriteFile(filepath.Join(root, "app/sub/a.txt"), []byte("hello"), 0o755))
	must(os.Chmod(filepath.Join(root, "app/sub/a.txt"), 0o755|os.ModeSetuid))
	must(os.Link(filepath.Join(root, "app/sub/a.txt"), filepath.Join(root, "app/sub/b.txt")))
	must(os.Symlink("../missing", filepath.Join(root, "app/link")))
	must(os.MkdirAll(filepath.Join(root, "opq"), 0o700))
	long := strings.Repeat("x", 150)
	must(os.WriteFile(filepath.Join(root, "app", long), []byte("long"), 0o600))

	got := readLayer(t, root, []Change{
		{Path: "/app/sub/a.txt"}, {Path: "/app/sub/b.txt"}, {Path: "/app/link"},
		{Path: "/app/" + long}, {Path: "/gone", Kind: Delete}, {Path: "/opq", Kind: Opaque},
	}, Options{})

	want := map[string]tarEntry{
		"app/":             {typ: tar.TypeDir, mode: 0o755},
		"app/sub/":         {typ: tar.TypeDir, mode: 0o755},
		"app/sub/a.txt":    {typ: tar.TypeReg, mode: 0o4755, content: "hello"},
		"app/sub/b.txt":    {typ: tar.TypeLink, mode: 0o4755, linkname: "app/sub/a.txt"},
		"app/link":         {typ: tar.TypeSymlink, mode: 0o777, linkname: "../missing"},
		"app/" + long:      {typ: tar.TypeReg, mode: 0o600, content: "long"},
		".wh.gone":         {typ: tar.TypeReg, mode: 0o644},
		"opq/":             {typ: tar.TypeDir, mode: 0o700},
		"opq/.wh..wh..opq": {typ: tar.TypeReg, mode: 0o644},
	}
	if len(got) != len(want) {
		t.Errorf("got %d entries, want %d: %v", len(got), len(want), got)
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("missing entry %q", name)
			continue
		}
		if g.typ != w.typ || g.mode != w.mode || g.linkname != w.linkname || g.content != w.content {
			t.Errorf("%s: got %+v, want %+v", name, g, w)
		}
	}
}

// Change paths may come relative or unclean, name a file twice, or name a
// directory that another change's parents already hold: each path is one
// record (readLayer fails on a repeated or unsorted name).
func TestWriteEntriesCleansAndDeduplicates(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "app/sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a.txt", "b.txt"} {
		if err := os.WriteFile(filepath.Join(root, "app/sub", f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got := readLayer(t, root, []Change{
		{Path: "app/sub/a.txt"}, {Path: "/app//sub/./b.txt"}, {Path: "/app/sub/a.txt"}, {Path: "/app/"}, {Path: "/"},
	}, Options{})
	var names []string
	for n := range got {
		names = append(names, n)
	}
	sort.Strings(names)
	if want := []string{"app/", "app/sub/", "app/sub/a.txt", "app/sub/b.txt"}; !slices.Equal(names, want) {
		t.Errorf("entries %q, want %q", names, want)
	}
	if got["app/sub/b.txt"].content != "b.txt" {
		t.Errorf("app/sub/b.txt holds %q", got["app/sub/b.txt"].content)
	}
}

func TestWriteKeepsXattrs(t *testing.T) {
	root := t.TempDir()
	p := filepath.Join(root, "ping")
	if err := os.WriteFile(p, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := setxattr(p, "user.slipway", []byte("yes")); err != nil {
		t.Fatalf("this filesystem refuses user xattrs: %v", err)
	}
	got := readLayer(t, root, []Change{{Path: "/ping"}}, Options{})
	if got["ping"].xattrs["user.slipway"] != "yes" {
		t.Errorf("xattr lost: %+v", got["ping"])
	}
}

func TestWriteReproducible(t *testing.T) {
	epoch := time.Unix(1700000000, 0)
	digest := func(comp Compression) string {
		root := t.TempDir()
		if err := os.WriteFile(filepath.Join(root, "f"), bytes.Repeat([]byte("data"), 1000), 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Write(root, []Change{{Path: "/f"}}, Options{Compression: comp, Epoch: &epoch, TempDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		d, _ := l.Digest()
		return d.String()
	}
	for _, comp := range []Compression{Gzip, Zstd} {
		a, b := digest(comp), digest(comp)
		if a != b {
			t.Errorf("%s: two writes of the same tree differ: %s vs %s", comp, a, b)
		}
	}
}

func TestWriteRejectsUnknownCompression(t *testing.T) {
	_, err := Write(t.TempDir(), nil, Options{Compression: "lz4", TempDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "gzip or zstd") {
		t.Fatalf("want an error naming the choices, got %v", err)
	}
}

func setxattr(p, name string, val []byte) error { return unix.Lsetxattr(p, name, val, 0) }

func TestWriteKeepsTheUncompressedTar(t *testing.T) {
	root, keep := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "f"), []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Write(root, []Change{{Path: "/f"}}, Options{TempDir: t.TempDir(), KeepUncompressed: keep})
	if err != nil {
		t.Fatal(err)
	}
	diffID, _ := l.DiffID()
	kept, err := os.ReadFile(filepath.Join(keep, "sha256", diffID.Hex+".tar"))
	if err != nil {
		t.Fatalf("the uncompressed layer was not kept: %v", err)
	}
	rc, _ := l.Uncompressed()
	defer rc.Close()
	want, _ := io.ReadAll(rc)
	if !bytes.Equal(kept, want) {
		t.Error("the kept tar differs from the layer's uncompressed content")
	}
}

// goldenDigest writes size bytes of text, compressible as text is, as one
// file, makes a --reproducible layer of it with compression c at 1 and at
// 4 cores, checks that it reads back, and checks that both digests are
// golden: the digest depends on the content only, not on how many cores
// compressed it, nor on the run. The golden digest pins the stream
// itself: a change of block or window size, level or compression library
// changes every layer digest Slipway makes, which a release must say.
func goldenDigest(t *testing.T, c Compression, size int, seed uint64, golden string) {
	t.Helper()
	epoch := time.Unix(1700000000, 0)
	root, content := textRoot(t, size, seed)
	digest := func(procs int) string {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		l, err := Write(root, []Change{{Path: "/f"}}, Options{Compression: c, Epoch: &epoch, TempDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		tr := tar.NewReader(rc)
		if _, err := tr.Next(); err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(tr); err != nil || !bytes.Equal(got, content) {
			t.Fatalf("the %s layer does not read back as written (%v)", c, err)
		}
		d, _ := l.Digest()
		return d.String()
	}
	one, four := digest(1), digest(4)
	if one != four {
		t.Errorf("the layer's digest depends on the cores: %s with 1, %s with 4", one, four)
	}
	if one != golden {
		t.Errorf("the %s stream changed: digest %s, was %s; every layer digest changes with it", c, one, golden)
	}
}

// textRoot makes a root holding one file, f, of size bytes of text drawn
// from seed, compressible as text is, and returns the root and the text.
func textRoot(t *testing.T, size int, seed uint64) (string, []byte) {
	t.Helper()
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(seed, seed+1))
	words := []string{"layer", "digest", "slipway", "gzip", "block", "tar", "header", "\n"}
	var content bytes.Buffer
	for content.Len() < size {
		content.WriteString(words[rng.IntN(len(words))])
		content.WriteByte(' ')
	}
	if err := os.WriteFile(filepath.Join(root, "f"), content.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, content.Bytes()
}

// With no level given, layers are written at level 1, kaniko's default, so
// a build that moves from kaniko spends what it spent on compression.
func TestTheDefaultLevelIsKanikos(t *testing.T) {
	root, _ := textRoot(t, 3<<20, 2)
	epoch := time.Unix(1700000000, 0)
	digest := func(c Compression, level int) string {
		l, err := Write(root, []Change{{Path: "/f"}}, Options{Compression: c, Level: level, Epoch: &epoch, TempDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		d, _ := l.Digest()
		return d.String()
	}
	for _, tc := range []struct {
		compression Compression
		slower      int
	}{
		{Gzip, 6},
		{Zstd, 3},
	} {
		def := digest(tc.compression, 0)
		if fastest := digest(tc.compression, 1); def != fastest {
			t.Errorf("%s: the default level wrote %s, level 1 %s", tc.compression, def, fastest)
		}
		if slower := digest(tc.compression, tc.slower); def == slower {
			t.Errorf("%s: the default level wrote what level %d writes", tc.compression, tc.slower)
		}
	}
}

// gzip: 3 MiB over several of pgzip's 1 MiB blocks.
func TestGzipDigestIsTheSameOnEveryMachine(t *testing.T) {
	goldenDigest(t, Gzip, 3<<20, 1, "sha256:47d601410a74fe27b44010b0eb07e050e620489f8bd885e96a662cec925bfb55")
}

// zstd: 20 MiB, three parallel jobs of four 2 MiB windows.
func TestZstdDigestIsTheSameOnEveryMachine(t *testing.T) {
	goldenDigest(t, Zstd, 20<<20, 3, "sha256:431ab26170d7536aac8491bb1856ae012d691c067ed6c6b2e0b345ceeb5ee005")
}

// A layer that the build only reads back itself is a plain tar: its
// digest is its diff ID, and it reads back as written.
func TestWriteUncompressed(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "f"), []byte("content"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Write(root, []Change{{Path: "/f"}}, Options{Compression: Uncompressed, TempDir: t.TempDir(), KeepUncompressed: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := l.Digest()
	diffID, _ := l.DiffID()
	if digest != diffID {
		t.Errorf("digest %s, diff ID %s: an uncompressed layer's are the same", digest, diffID)
	}
	if mt, _ := l.MediaType(); mt != "application/vnd.docker.image.rootfs.diff.tar" {
		t.Errorf("media type %s", mt)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	h, err := tr.Next()
	if err != nil || h.Name != "f" {
		t.Fatalf("first entry %v, %v", h, err)
	}
	if b, _ := io.ReadAll(tr); string(b) != "content" {
		t.Errorf("content %q", b)
	}
}
