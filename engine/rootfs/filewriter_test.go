package rootfs

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// big is content that spans more chunks than the content writer has in
// flight, so its file is still being written while later entries apply.
var big = strings.Repeat("0123456789abcdef", (maxChunks*chunkSize+chunkSize/2)/16)

// TestExtractWhileFilesAreWritten applies layers whose later entries
// replace, link or remove files whose content may still be on its way to
// disk, and checks every path's type, content, mode and owner on disk and
// its hash in the index.
func TestExtractWhileFilesAreWritten(t *testing.T) {
	needRoot(t)
	type want struct {
		path     string
		kind     string // "f", "d" or "l"
		body     string // a file's content, a symlink's target
		mode     fs.FileMode
		uid, gid uint32
	}
	tests := []struct {
		name   string
		layers [][]ent
		want   []want
		gone   []string
	}{
		{
			name:   "a file written twice in one layer keeps the second content",
			layers: [][]ent{{file("a", big), file("a", "two")}},
			want:   []want{{path: "/a", kind: "f", body: "two", mode: 0o644}},
		},
		{
			name:   "a hardlink keeps the content it was made to, not what replaced its target",
			layers: [][]ent{{file("a", big), hardlink("b", "a"), file("a", "two")}},
			want:   []want{{path: "/b", kind: "f", body: big, mode: 0o644}, {path: "/a", kind: "f", body: "two", mode: 0o644}},
		},
		{
			name:   "a hardlink to a file of an earlier layer",
			layers: [][]ent{{file("a", big)}, {hardlink("b", "a")}},
			want:   []want{{path: "/b", kind: "f", body: big, mode: 0o644}},
		},
		{
			name:   "a file being written, then a directory in its place",
			layers: [][]ent{{file("a", big), dir("a"), file("a/x", "x")}},
			want:   []want{{path: "/a", kind: "d", mode: fs.ModeDir | 0o755}, {path: "/a/x", kind: "f", body: "x", mode: 0o644}},
		},
		{
			name:   "a file being written, then a whiteout of it",
			layers: [][]ent{{file("a", big), file(".wh.a", "")}},
			gone:   []string{"/a"},
		},
		{
			name:   "a file over an earlier layer's directory",
			layers: [][]ent{{dir("a"), file("a/x", "x")}, {file("a", "f")}},
			want:   []want{{path: "/a", kind: "f", body: "f", mode: 0o644}},
			gone:   []string{"/a/x"},
		},
		{
			name: "a directory over an earlier layer's takes its owner and mode and keeps its files",
			layers: [][]ent{{dir("a"), file("a/x", "x")},
				{with(dir("a"), func(h *tar.Header) { h.Mode, h.Uid, h.Gid = 0o700, 7, 8 })}},
			want: []want{{path: "/a", kind: "d", mode: fs.ModeDir | 0o700, uid: 7, gid: 8}, {path: "/a/x", kind: "f", body: "x", mode: 0o644}},
		},
		{
			name:   "a file over an earlier symlink replaces the symlink",
			layers: [][]ent{{file("t", "target"), symlink("l", "t")}, {file("l", "mine")}},
			want:   []want{{path: "/l", kind: "f", body: "mine", mode: 0o644}, {path: "/t", kind: "f", body: "target", mode: 0o644}},
		},
		{
			name:   "a symlink over an earlier file",
			layers: [][]ent{{file("l", big)}, {symlink("l", "elsewhere")}},
			want:   []want{{path: "/l", kind: "l", body: "elsewhere", mode: fs.ModeSymlink | 0o777}},
		},
		{
			name: "modes a umask would clear",
			layers: [][]ent{{with(dir("shared"), func(h *tar.Header) { h.Mode = 0o777 }),
				with(file("shared/w", "w"), func(h *tar.Header) { h.Mode = 0o666 })}},
			want: []want{{path: "/shared", kind: "d", mode: fs.ModeDir | 0o777}, {path: "/shared/w", kind: "f", body: "w", mode: 0o666}},
		},
		{
			name: "entries in a setgid directory keep the group and mode of their own",
			layers: [][]ent{{with(dir("g"), func(h *tar.Header) { h.Mode, h.Gid = 0o2775, 50 }),
				file("g/f", "f"), dir("g/sub")}},
			want: []want{{path: "/g", kind: "d", mode: fs.ModeDir | fs.ModeSetgid | 0o775, gid: 50},
				{path: "/g/f", kind: "f", body: "f", mode: 0o644},
				// mkdir gives a directory in a setgid one the bit; its
				// entry's mode does not have it.
				{path: "/g/sub", kind: "d", mode: fs.ModeDir | 0o755}},
		},
		{
			name:   "empty files and files of exactly one chunk",
			layers: [][]ent{{file("empty", ""), file("one", big[:chunkSize])}},
			want:   []want{{path: "/empty", kind: "f", mode: 0o644}, {path: "/one", kind: "f", body: big[:chunkSize], mode: 0o644}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			idx := NewIndex()
			for _, l := range tc.layers {
				if err := Extract(root, mktar(t, l...), idx); err != nil {
					t.Fatal(err)
				}
			}
			for _, w := range tc.want {
				host := filepath.Join(root, w.path)
				var st unix.Stat_t
				if err := unix.Lstat(host, &st); err != nil {
					t.Fatal(err)
				}
				got := EntryFromStat(&st)
				if got.Mode != w.mode || got.UID != w.uid || got.GID != w.gid {
					t.Errorf("%s: mode %v uid %d gid %d, want %v %d %d", w.path, got.Mode, got.UID, got.GID, w.mode, w.uid, w.gid)
				}
				ie, ok := idx.Get(w.path)
				if !ok {
					t.Fatalf("%s is not in the index", w.path)
				}
				if ie.Ino != got.Ino || ie.Ctime != got.Ctime || ie.Mode != got.Mode {
					t.Errorf("%s: index %+v does not match disk %+v", w.path, ie, got)
				}
				switch w.kind {
				case "f":
					body, err := os.ReadFile(host)
					if err != nil {
						t.Fatal(err)
					}
					if string(body) != w.body {
						t.Errorf("%s: %d bytes, want %d", w.path, len(body), len(w.body))
					}
					if sum := sha256.Sum256([]byte(w.body)); !bytes.Equal(ie.Hash, sum[:]) {
						t.Errorf("%s: index hash %x, want %x", w.path, ie.Hash, sum)
					}
				case "l":
					if ie.Linkname != w.body {
						t.Errorf("%s: index link %q, want %q", w.path, ie.Linkname, w.body)
					}
				}
			}
			for _, p := range tc.gone {
				if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
					t.Errorf("%s is still on disk", p)
				}
				if _, ok := idx.Get(p); ok {
					t.Errorf("%s is still in the index", p)
				}
			}
		})
	}
}

// TestExtractFailuresWhileFilesAreWritten: a file that fails on the
// writer's side, or a layer that ends inside a file's content, fails the
// layer with an error naming the entry, and leaves no descriptor open.
func TestExtractFailuresWhileFilesAreWritten(t *testing.T) {
	needRoot(t)
	truncated := func(t *testing.T) *bytes.Reader {
		whole := mktar(t, file("first", "1"), file("cut", big))
		data := make([]byte, whole.Len())
		whole.Read(data)
		return bytes.NewReader(data[:len(data)/2])
	}
	tests := []struct {
		name  string
		layer func(t *testing.T) *bytes.Reader
		entry string
	}{
		{
			// Linux refuses xattr names over 255 bytes with ERANGE.
			name: "an xattr the file system refuses",
			layer: func(t *testing.T) *bytes.Reader {
				return mktar(t, file("before", big),
					with(file("bad", big), func(h *tar.Header) {
						h.PAXRecords = map[string]string{paxXattr + "user." + strings.Repeat("x", 300): "v"}
					}),
					file("after", big), dir("d"), file("d/later", "x"))
			},
			entry: `layer entry "bad"`,
		},
		{
			name:  "a layer that ends inside a file",
			layer: truncated,
			entry: `layer entry "cut"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := openFDs(t)
			err := Extract(t.TempDir(), tc.layer(t), NewIndex())
			if err == nil || !strings.Contains(err.Error(), tc.entry) {
				t.Errorf("error %v, want one naming %s", err, tc.entry)
			}
			if after := openFDs(t); after != before {
				t.Errorf("%d descriptors open after the failed layer, %d before", after, before)
			}
		})
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}
