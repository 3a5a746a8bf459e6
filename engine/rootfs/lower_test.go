package rootfs

import (
	"archive/tar"
	"context"
	"io"
	"maps"
	"os"
	"path/filepath"
	"testing"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
)

func layerOf(t *testing.T, entries ...ent) v1.Layer {
	t.Helper()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(mktar(t, entries...)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// sparseTestImage has what a sparse root must get right: symlinks (absolute,
// relative, climbing, looping, in parents), whiteouts, an opaque directory,
// hardlinks, implied parents, entries written through a symlinked parent,
// owners, modes and xattrs.
func sparseTestImage(t *testing.T) v1.Image {
	owned := func(e ent) ent {
		return with(e, func(h *tar.Header) {
			h.Uid, h.Gid, h.Mode = 7, 8, 0o2750
			h.PAXRecords = map[string]string{"SCHILY.xattr.user.origin": "lower"}
		})
	}
	l1 := layerOf(t,
		dir("etc/"), file("etc/passwd", "root:x:0:0::/root:/bin/sh\n"), file("etc/group", "root:x:0:\n"), file("etc/gone", "x"),
		dir("usr/"), dir("usr/bin/"), with(file("usr/bin/tool", "#!"), func(h *tar.Header) { h.Mode = 0o755 }),
		symlink("bin", "usr/bin"), dir("var/"), symlink("var/run", "/run"), dir("run/"),
		dir("opt/"), dir("opt/old/"), file("opt/old/a", "a"),
		owned(dir("data/")), dir("data/sub/"), file("data/sub/f", "one"),
		symlink("loop1", "loop2"), symlink("loop2", "loop1"), symlink("up", "../../etc"),
		dir("a/"), dir("a/b/"), symlink("a/link", "b/../../usr"), symlink("a/b/self", "."),
		file("implied/child/file", "i"),
	)
	l2 := layerOf(t,
		file("etc/.wh.gone", ""), dir("opt/"), file("opt/.wh..wh..opq", ""), file("opt/new", "n"),
		hardlink("usr/bin/tool2", "usr/bin/tool"), file("data/sub/f", "two"), file("var/run/pidfile", "1"),
	)
	l3 := layerOf(t, file("etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"))
	img, err := mutate.AppendLayers(empty.Image, l1, l2, l3)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestSparseRevealsWhatExtractionWrites(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	start := time.Now()
	img := sparseTestImage(t)
	full := t.TempDir()
	if err := ExtractImage(ctx, full, img, nil); err != nil {
		t.Fatal(err)
	}
	lower, err := ScanImage(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	sparse := lower.Sparse(t.TempDir())
	probes := []string{
		"/etc/passwd", "/bin/tool", "/bin/tool2", "/var/run/x/y", "/var/run/pidfile", "/data/sub/f", "/data/new",
		"/opt/old/a", "/opt/new", "/loop1/x", "/up/passwd", "/a/link/bin/tool", "/a/b/self/self/../link",
		"/implied/child/file", "/etc/gone", "/nonexistent/a/b", "/usr/bin/../../etc/group", "/",
	}
	for _, p := range probes {
		if err := sparse.Reveal(p); err != nil {
			t.Fatalf("Reveal(%s): %v", p, err)
		}
		want, werr := securejoin.SecureJoin(full, p)
		got, gerr := securejoin.SecureJoin(sparse.Dir(), p)
		if (werr == nil) != (gerr == nil) {
			t.Errorf("%s: resolving in the unpacked root: %v; in the sparse root: %v", p, werr, gerr)
			continue
		}
		if werr != nil {
			continue
		}
		wantRel, _ := filepath.Rel(full, want)
		gotRel, _ := filepath.Rel(sparse.Dir(), got)
		if wantRel != gotRel {
			t.Errorf("%s resolves to /%s in the sparse root, to /%s unpacked", p, gotRel, wantRel)
		}
		_, wantErr := os.Lstat(want)
		_, gotErr := os.Lstat(got)
		if (wantErr == nil) != (gotErr == nil) {
			t.Errorf("%s: exists unpacked: %v, in the sparse root: %v", p, wantErr == nil, gotErr == nil)
		}
		assertSubset(t, sparse.Dir(), full, start)
	}
	for _, p := range []string{"/up/passwd", "/etc/group"} {
		if err := sparse.RevealFile(p); err != nil {
			t.Fatal(err)
		}
		host, _ := securejoin.SecureJoin(sparse.Dir(), p)
		got, _ := os.ReadFile(host)
		want, _ := os.ReadFile(filepath.Join(full, "etc", filepath.Base(p)))
		if string(got) != string(want) {
			t.Errorf("RevealFile(%s) = %q, want %q", p, got, want)
		}
	}
	assertSubset(t, sparse.Dir(), full, start)
}

// assertSubset checks that every entry of the sparse root is in the unpacked
// root with the same type, owner, mode, times, link target and xattrs
// (regular files may be empty placeholders). A time extraction took from
// the clock (a directory made for its children, or changed by a later
// layer) must come from the clock in the sparse root too.
func assertSubset(t *testing.T, sparse, full string, start time.Time) {
	t.Helper()
	err := filepath.Walk(sparse, func(p string, _ os.FileInfo, err error) error {
		if err != nil || p == sparse {
			return err
		}
		rel, _ := filepath.Rel(sparse, p)
		var got, want unix.Stat_t
		if err := unix.Lstat(p, &got); err != nil {
			return err
		}
		if err := unix.Lstat(filepath.Join(full, rel), &want); err != nil {
			t.Errorf("/%s is in the sparse root but not unpacked", rel)
			return nil
		}
		sameTime := got.Mtim == want.Mtim
		if clock := unix.NsecToTimespec(start.UnixNano()); want.Mtim.Nano() >= clock.Nano() {
			sameTime = got.Mtim.Nano() >= clock.Nano()
		}
		if got.Mode != want.Mode || got.Uid != want.Uid || got.Gid != want.Gid || !sameTime {
			t.Errorf("/%s: sparse mode %o owner %d:%d mtime %v; unpacked %o %d:%d %v", rel, got.Mode, got.Uid, got.Gid, got.Mtim, want.Mode, want.Uid, want.Gid, want.Mtim)
		}
		if got.Mode&unix.S_IFMT == unix.S_IFLNK {
			g, _ := os.Readlink(p)
			w, _ := os.Readlink(filepath.Join(full, rel))
			if g != w {
				t.Errorf("/%s -> %s in the sparse root, -> %s unpacked", rel, g, w)
			}
			return nil
		}
		gx, _ := ImageXattrs(p)
		wx, _ := ImageXattrs(filepath.Join(full, rel))
		if !maps.Equal(gx, wx) {
			t.Errorf("/%s: xattrs %v in the sparse root, %v unpacked", rel, gx, wx)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSparseLeavesWhatTheStepWrote(t *testing.T) {
	needRoot(t)
	lower, err := ScanImage(context.Background(), sparseTestImage(t))
	if err != nil {
		t.Fatal(err)
	}
	sparse := lower.Sparse(t.TempDir())
	// The step replaced /opt, a directory below, with a file: nothing the
	// image had under /opt may come back.
	if err := os.WriteFile(filepath.Join(sparse.Dir(), "opt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := sparse.Reveal("/opt/new"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(sparse.Dir(), "opt")); string(b) != "mine" {
		t.Errorf("/opt = %q, want the step's file", b)
	}
	if err := sparse.Reveal("/etc/passwd"); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(sparse.Dir(), "etc/passwd")); err != nil || fi.Size() != 0 {
		t.Errorf("/etc/passwd: want an empty placeholder, got %v %v", fi, err)
	}
}
