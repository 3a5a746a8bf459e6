package rootfs

import (
	"fmt"
	"io/fs"
	"runtime"
	"testing"
)

// The Index holds an entry for every path of a root, so its size per path
// is what a build's memory grows by with the number of files (a COPY of
// 100k files, then a RUN touching them all). An entry of a file that COPY
// or RUN wrote, without hash, xattrs or symlink target, must stay under
// 128 bytes of heap, its path's 16 included (a map of whole Entries took
// 183).
func TestIndexHeapPerEntry(t *testing.T) {
	const n = 50000
	paths := make([]string, n)
	for i := range paths {
		paths[i] = fmt.Sprintf("/data/d%04d/f%02d", i/100, i%100)
	}
	before := liveHeap()
	idx := NewIndex()
	for i, p := range paths {
		idx.Set(p, Entry{Mode: 0o644, Size: 9, Mtime: int64(i), Ctime: int64(i), Dev: 2049, Ino: uint64(i), Nlink: 1})
	}
	// The paths are counted: the index keeps them.
	paths = nil
	after := liveHeap()
	perEntry := float64(after-before) / n
	t.Logf("%.0f bytes of heap per entry", perEntry)
	if perEntry > 128 {
		t.Errorf("the index takes %.0f bytes of heap per entry, want at most 128", perEntry)
	}
	if e, ok := idx.Get("/data/d0001/f02"); !ok || e.Ino != 102 || e.Mode != 0o644 || e.Nlink != 1 {
		t.Errorf("Get = %+v, %v", e, ok)
	}
	runtime.KeepAlive(idx)
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// Records give back every field of an Entry, the rare ones included.
func TestIndexKeepsEveryField(t *testing.T) {
	h := make([]byte, 32)
	h[0] = 7
	for _, e := range []Entry{
		{Mode: fs.ModeDir | 0o755, UID: 1, GID: 2, Size: 4096, Mtime: 3, Ctime: 4, Dev: 5, Ino: 6, Nlink: 2},
		{Mode: 0o644, Size: 1, Nlink: 1, Hash: h, Racy: true},
		{Mode: 0o644, Hash: []byte{1, 2, 3}, Xattrs: map[string]string{"user.a": "b"}},
		{Mode: fs.ModeSymlink | 0o777, Linkname: "/target", Nlink: 1 << 40},
		{Mode: fs.ModeDevice | fs.ModeCharDevice | 0o600, Rdev: 0x0103, Nlink: 1<<31 - 1, Racy: true},
	} {
		idx := NewIndex()
		idx.Set("/p", e)
		got, _ := idx.Get("/p")
		if fmt.Sprint(got) != fmt.Sprint(e) {
			t.Errorf("Get = %+v, want %+v", got, e)
		}
	}
}

// Clean gives the index's form, and hands back a path already in that
// form without copying it, since the index keeps one per file.
func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"etc/passwd": "/etc/passwd", "/etc/passwd": "/etc/passwd", "//a/./b/../c/": "/a/c",
		"": "/", "/": "/", "../x": "/x", "a//b": "/a/b",
	} {
		if got := Clean(in); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
	p := "/data/d0001/f02"
	if n := testing.AllocsPerRun(100, func() { p = Clean(p) }); n != 0 {
		t.Errorf("Clean of a clean path allocates %v times", n)
	}
}
