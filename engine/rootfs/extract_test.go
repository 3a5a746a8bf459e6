package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sys/unix"
)

// tree lists every path under root as "path type", for whole-tree asserts.
func tree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		kind := "f"
		switch {
		case d.IsDir():
			kind = "d"
		case d.Type()&fs.ModeSymlink != 0:
			kind = "l"
		}
		out = append(out, "/"+rel+" "+kind)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// indexPaths lists the index in tree's format, to prove it follows disk.
func indexPaths(idx *Index) []string {
	var out []string
	idx.Range(func(p string, e Entry) bool {
		kind := "f"
		switch {
		case e.IsDir():
			kind = "d"
		case e.Mode&fs.ModeSymlink != 0:
			kind = "l"
		}
		out = append(out, p+" "+kind)
		return true
	})
	sort.Strings(out)
	return out
}

func TestExtractWhiteoutsAndOpaque(t *testing.T) {
	needRoot(t)
	resolverModes(t, func(t *testing.T) {
		root := t.TempDir()
		idx := NewIndex()
		layers := [][]ent{{
			dir("a"), file("a/1", "1"), file("a/2", "2"), dir("a/sub"), file("a/sub/deep", "d"),
			dir("b"), file("b/1", "1"), file("b/2", "2"),
			file("c", "c"),
			dir("e"), file("e/1", "1"),
			symlink("lib64", "lib"), dir("lib"),
		}, {
			file(".wh.c", ""),
			// The marker comes after an entry of the same layer: that
			// entry must survive, only older contents go.
			dir("a"), file("a/new", "n"), dir("a/sub"), file("a/sub/mine", "m"),
			file("a/.wh..wh..opq", ""),
			file("b/.wh.1", ""),
			file(".wh.e", ""),
			file(".wh.never-existed", ""),
			// kaniko's "mkdir /lib64: file exists": a directory replaces
			// a symlink.
			dir("lib64"), file("lib64/ld.so", "ld"),
			// A file replaces a directory with contents.
			file("e", "now a file"),
		}}
		for i, l := range layers {
			if err := Extract(root, mktar(t, l...), idx); err != nil {
				t.Fatalf("layer %d: %v", i+1, err)
			}
		}
		want := []string{
			"/a d", "/a/new f", "/a/sub d", "/a/sub/mine f",
			"/b d", "/b/2 f",
			"/e f",
			"/lib d", "/lib64 d", "/lib64/ld.so f",
		}
		if got := tree(t, root); !equal(got, want) {
			t.Errorf("tree:\n got %v\nwant %v", got, want)
		}
		if got := indexPaths(idx); !equal(got, want) {
			t.Errorf("index:\n got %v\nwant %v", got, want)
		}
	})
}

func equal(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

func TestExtractMetadata(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	idx := NewIndex()
	longName := strings.Repeat("long-directory-name/", 6) + strings.Repeat("f", 120)
	capV1 := string([]byte{0, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	entries := []ent{
		with(file("bin/su", "setuid"), func(h *tar.Header) { h.Mode = 0o4755; h.Uid, h.Gid = 0, 0 }),
		with(file("bin/wall", "setgid"), func(h *tar.Header) { h.Mode = 0o2755; h.Gid = 5 }),
		with(dir("tmp"), func(h *tar.Header) { h.Mode = 0o1777 }),
		with(file("home/u/owned", "x"), func(h *tar.Header) { h.Uid, h.Gid = 1234, 5678; h.Mode = 0o600 }),
		with(file("bin/ping", "ping"), func(h *tar.Header) {
			h.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": capV1, "SCHILY.xattr.user.note": "hi"}
		}),
		hardlink("bin/ping2", "bin/ping"),
		with(symlink("bin/sh", "busybox"), func(h *tar.Header) {
			h.Uid, h.Gid = 7, 8
			// trusted.* is allowed on symlinks; user.* is refused by Linux
			// and, as Docker does, skipped.
			h.PAXRecords = map[string]string{"SCHILY.xattr.trusted.slipway": "t", "SCHILY.xattr.user.note": "no"}
		}),
		with(ent{hdr: tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3, Mode: 0o666, ModTime: testTime}}, nil2),
		with(ent{hdr: tar.Header{Name: "dev/loop0", Typeflag: tar.TypeBlock, Devmajor: 7, Devminor: 0, Mode: 0o660, Gid: 6, ModTime: testTime}}, nil2),
		with(ent{hdr: tar.Header{Name: "run/fifo", Typeflag: tar.TypeFifo, Mode: 0o620, ModTime: testTime}}, nil2),
		file(longName, "long"),
	}
	if err := Extract(root, mktar(t, entries...), idx); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		path     string
		mode     fs.FileMode
		uid, gid uint32
		rdev     uint64
		link     string
	}{
		{path: "/bin/su", mode: 0o755 | fs.ModeSetuid},
		{path: "/bin/wall", mode: 0o755 | fs.ModeSetgid, gid: 5},
		{path: "/tmp", mode: fs.ModeDir | 0o777 | fs.ModeSticky},
		{path: "/home/u/owned", mode: 0o600, uid: 1234, gid: 5678},
		{path: "/bin/sh", mode: fs.ModeSymlink | 0o777, uid: 7, gid: 8, link: "busybox"},
		{path: "/dev/null", mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, rdev: unix.Mkdev(1, 3)},
		{path: "/dev/loop0", mode: fs.ModeDevice | 0o660, gid: 6, rdev: unix.Mkdev(7, 0)},
		{path: "/run/fifo", mode: fs.ModeNamedPipe | 0o620},
		{path: "/" + longName, mode: 0o644},
		// Parents that the layer left out are made 0755 root:root.
		{path: "/home/u", mode: fs.ModeDir | 0o755},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(root, tc.path), &st); err != nil {
				t.Fatal(err)
			}
			got := EntryFromStat(&st)
			if got.Mode != tc.mode || got.UID != tc.uid || got.GID != tc.gid || got.Rdev != tc.rdev {
				t.Errorf("on disk: mode %v uid %d gid %d rdev %d, want %v %d %d %d", got.Mode, got.UID, got.GID, got.Rdev, tc.mode, tc.uid, tc.gid, tc.rdev)
			}
			if tc.mode&fs.ModeDir == 0 && got.Mtime != testTime.UnixNano() {
				t.Errorf("mtime %d, want %d", got.Mtime, testTime.UnixNano())
			}
			ie, ok := idx.Get(tc.path)
			if !ok {
				t.Fatalf("not in index")
			}
			if ie.Racy {
				t.Errorf("entry still racy after Extract returned")
			}
			if ie.Mode != got.Mode || ie.Ctime != got.Ctime || ie.Ino != got.Ino || ie.Mtime != got.Mtime || ie.Linkname != tc.link {
				t.Errorf("index %+v does not match disk %+v (link want %q)", ie, got, tc.link)
			}
		})
	}

	// Hardlinks stay hardlinks.
	var a, b unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, "bin/ping"), &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lstat(filepath.Join(root, "bin/ping2"), &b); err != nil {
		t.Fatal(err)
	}
	if a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("bin/ping2 is not a hardlink of bin/ping: inodes %d %d, nlink %d", a.Ino, b.Ino, a.Nlink)
	}
	// Xattrs, security.capability included, survive chown.
	x, err := Xattrs(filepath.Join(root, "bin/ping"))
	if err != nil {
		t.Fatal(err)
	}
	if x["security.capability"] != capV1 || x["user.note"] != "hi" {
		t.Errorf("xattrs %q", x)
	}
	if x, err := Xattrs(filepath.Join(root, "bin/sh")); err != nil || x["trusted.slipway"] != "t" {
		t.Errorf("symlink xattrs %q, %v", x, err)
	}
	ie, _ := idx.Get("/bin/ping")
	if ie.Xattrs["security.capability"] != capV1 {
		t.Errorf("index xattrs %q", ie.Xattrs)
	}
	// Content hashes are recorded as the content streams past, for links too.
	sum := sha256.Sum256([]byte("ping"))
	for _, p := range []string{"/bin/ping", "/bin/ping2"} {
		if e, _ := idx.Get(p); !bytes.Equal(e.Hash, sum[:]) {
			t.Errorf("%s hash %x, want %x", p, e.Hash, sum)
		}
	}
	// The last written entry stays the last: directory mtimes are restored
	// after their children were created.
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, "tmp"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mtim.Nano() != testTime.UnixNano() {
		t.Errorf("dir mtime %v, want %v", st.Mtim, testTime)
	}
}

func nil2(*tar.Header) {}

func TestExtractIgnoreList(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	idx := NewIndex()
	if err := Extract(root, mktar(t, dir("etc"), file("etc/hosts", "image"), file("etc/passwd", "root"), dir("proc")), idx); err != nil {
		t.Fatal(err)
	}
	// /etc/hosts stands for a file the pod mounted; /proc for the kernel's.
	ignore := NewIgnoreList("/etc/hosts", "/proc")
	if err := os.WriteFile(filepath.Join(root, "etc/hosts"), []byte("mounted"), 0o644); err != nil {
		t.Fatal(err)
	}
	layer := mktar(t,
		file("etc/hosts", "from layer"),
		file("proc/cpuinfo", "fake"),
		file("etc/.wh..wh..opq", ""),
		file("etc/group", "g"),
		file(".wh.proc", ""),
	)
	if err := Extract(root, layer, idx, WithIgnoreList(ignore)); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/hosts")); string(b) != "mounted" {
		t.Errorf("ignored /etc/hosts was overwritten: %q", b)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/passwd")); !os.IsNotExist(err) {
		t.Errorf("opaque /etc should remove /etc/passwd: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "proc")); err != nil {
		t.Errorf("ignored /proc was removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "proc/cpuinfo")); !os.IsNotExist(err) {
		t.Errorf("entry under ignored /proc was written: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/group")); err != nil {
		t.Errorf("/etc/group: %v", err)
	}
}

func TestIgnored(t *testing.T) {
	l := NewIgnoreList("/proc", "/workspace/", "/etc/resolv.conf", "/", "")
	tests := []struct {
		path string
		want bool
	}{
		{"/proc", true},
		{"/proc/self/fd", true},
		{"/processes", false},
		{"/workspace/src/main.go", true},
		{"/etc/resolv.conf", true},
		{"/etc", false},
		{"/", false},
		{"etc/resolv.conf", true},
	}
	for _, tc := range tests {
		if got := l.Ignored(tc.path); got != tc.want {
			t.Errorf("Ignored(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
	var none *IgnoreList
	if none.Ignored("/proc") {
		t.Error("nil list ignores")
	}
}

func TestParseMountInfo(t *testing.T) {
	const info = `21 26 0:20 / /proc rw,relatime - proc proc rw
26 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 26 0:50 / /workspace/my\040dir rw - tmpfs tmpfs rw
31 26 254:0 /etc/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda rw
`
	got, err := parseMountInfo(strings.NewReader(info))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/proc", "/workspace/my dir", "/etc/resolv.conf"}
	if !equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	real, err := MountPoints()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range real {
		found = found || m == "/proc"
	}
	if !found {
		t.Errorf("MountPoints() = %v, want /proc among them", real)
	}
}

func TestExtractImage(t *testing.T) {
	needRoot(t)
	opener := func(entries ...ent) tarball.Opener {
		return func() (io.ReadCloser, error) { return io.NopCloser(mktar(t, entries...)), nil }
	}
	l1, err := tarball.LayerFromOpener(opener(dir("etc"), file("etc/os-release", "one"), file("etc/gone", "x")))
	if err != nil {
		t.Fatal(err)
	}
	l2, err := tarball.LayerFromOpener(opener(file("etc/os-release", "two"), file("etc/.wh.gone", "")))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, l1, l2)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	idx := NewIndex()
	if err := ExtractImage(context.Background(), root, img, idx); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/os-release")); string(b) != "two" {
		t.Errorf("os-release = %q", b)
	}
	want := []string{"/etc d", "/etc/os-release f"}
	if got := indexPaths(idx); !equal(got, want) {
		t.Errorf("index %v, want %v", got, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ExtractImage(ctx, t.TempDir(), img, NewIndex()); err == nil {
		t.Error("cancelled context: want an error")
	}
}

func TestRecord(t *testing.T) {
	root := t.TempDir()
	idx := NewIndex()
	mustMkdir(t, filepath.Join(root, "app/sub"))
	if err := os.WriteFile(filepath.Join(root, "app/sub/f"), []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nowhere", filepath.Join(root, "app/link")); err != nil {
		t.Fatal(err)
	}
	if err := idx.Record(root, "/app"); err != nil {
		t.Fatal(err)
	}
	want := []string{"/app d", "/app/link l", "/app/sub d", "/app/sub/f f"}
	if got := indexPaths(idx); !equal(got, want) {
		t.Errorf("index %v, want %v", got, want)
	}
	if e, _ := idx.Get("/app/sub/f"); e.Mode != 0o640 || e.Size != 1 || e.Hash != nil {
		t.Errorf("entry %+v", e)
	}
	// Files written just before Record are re-read once their ctimes have
	// settled, so the next snapshot can trust their metadata.
	idx.Range(func(p string, e Entry) bool {
		if e.Racy {
			t.Errorf("%s still racy after Record", p)
		}
		return true
	})
	if e, _ := idx.Get("/app/link"); e.Linkname != "/nowhere" {
		t.Errorf("link entry %+v", e)
	}
	// A path under a symlink is refused rather than followed.
	if err := idx.Record(root, "/app/link/x"); err == nil {
		t.Error("Record through a symlink: want an error")
	}
	idx.Remove("/app")
	if idx.Len() != 0 {
		t.Errorf("Remove left %v", indexPaths(idx))
	}
}

func TestWipeKeepsIgnoredPaths(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	idx := NewIndex()
	layer := mktar(t, symlink("lib64", "lib"), dir("lib"), file("lib/ld.so", "ld"),
		dir("etc"), file("etc/passwd", "p"), file("etc/resolv.conf", "image"),
		dir("workspace"), file("workspace/src", "ctx"))
	if err := Extract(root, layer, idx); err != nil {
		t.Fatal(err)
	}
	if err := Wipe(root, NewIgnoreList("/etc/resolv.conf", "/workspace"), idx); err != nil {
		t.Fatal(err)
	}
	want := []string{"/etc d", "/etc/resolv.conf f", "/workspace d", "/workspace/src f"}
	if got := tree(t, root); !equal(got, want) {
		t.Errorf("after wipe %v, want %v", got, want)
	}
	if idx.Len() != 0 {
		t.Errorf("index not emptied: %v", indexPaths(idx))
	}
	// The next stage's base has /lib64 as a directory: no "file exists".
	if err := Extract(root, mktar(t, dir("lib64"), file("lib64/ld.so", "ld")), idx); err != nil {
		t.Fatal(err)
	}
}

// A kept path deep under / (GitLab mounts the project at
// /builds/GROUP/PROJECT) keeps every directory above it; the rest goes.
func TestWipeKeepsParentsOfDeepIgnoredPaths(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	layer := mktar(t, dir("builds"), file("builds/other", "o"), dir("builds/group"), file("builds/group/x", "x"),
		dir("builds/group/project"), file("builds/group/project/src", "ctx"))
	if err := Extract(root, layer, NewIndex()); err != nil {
		t.Fatal(err)
	}
	if err := Wipe(root, NewIgnoreList("/builds/group/project"), nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"/builds d", "/builds/group d", "/builds/group/project d", "/builds/group/project/src f"}
	if got := tree(t, root); !equal(got, want) {
		t.Errorf("after wipe %v, want %v", got, want)
	}
}

// As a plain archive (ADD), whiteout names are files, --chown's owner
// replaces the tar's, and devices and fifos can be skipped.
func TestExtractAsArchive(t *testing.T) {
	needRoot(t)
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "c"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	idx := NewIndex()
	entries := []ent{
		with(file("f", "f"), func(h *tar.Header) { h.Uid, h.Gid = 5, 6 }),
		file(".wh.c", ""), dir("d"), file("d/.wh..wh..opq", ""),
		with(file("fifo", ""), func(h *tar.Header) { h.Typeflag, h.Size = tar.TypeFifo, 0 }),
	}
	if err := Extract(root, mktar(t, entries...), idx, AsArchive(), WithOwner(1, 2), WithoutDevices()); err != nil {
		t.Fatal(err)
	}
	want := []string{"/.wh.c f", "/c f", "/d d", "/d/.wh..wh..opq f", "/f f"}
	if got := tree(t, root); !equal(got, want) {
		t.Errorf("tree:\n got %v\nwant %v", got, want)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(root, "f"), &st); err != nil || st.Uid != 1 || st.Gid != 2 {
		t.Errorf("owner %d:%d (%v), want 1:2", st.Uid, st.Gid, err)
	}
	if got := indexPaths(idx); !equal(got, []string{"/.wh.c f", "/d d", "/d/.wh..wh..opq f", "/f f"}) {
		t.Errorf("index %v: it lists what the archive wrote", got)
	}
}
