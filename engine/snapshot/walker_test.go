package snapshot

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-build/slipway/engine/layer"
	"github.com/slipway-build/slipway/engine/rootfs"
	"golang.org/x/sys/unix"
)

var baseTime = time.Date(2021, 6, 7, 8, 9, 10, 0, time.UTC)

// baseLayer is the image every case starts from, extracted with rootfs so
// the index holds content hashes just as a real build's does.
func baseLayer(t testing.TB) *bytes.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h tar.Header, body string) {
		h.ModTime = baseTime
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		}
		if h.Typeflag == tar.TypeDir {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"etc/", "etc/conf.d/", "usr/", "usr/bin/", "var/", "opt/", "opt/app/", "bin/"} {
		add(tar.Header{Typeflag: tar.TypeDir, Name: d}, "")
	}
	for name, body := range map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\n", "etc/hosts": "127.0.0.1 localhost\n",
		"etc/conf.d/a": "a", "etc/conf.d/b": "b", "usr/bin/tool": "tool v1", "var/data": "data",
		"opt/app/x": "x", "bin/busybox": "busybox",
	} {
		add(tar.Header{Typeflag: tar.TypeReg, Name: name}, body)
	}
	add(tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/sh", Linkname: "busybox", Mode: 0o777}, "")
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(buf.Bytes())
}

func newBase(t testing.TB) (string, *rootfs.Index) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the base root is extracted with owners and device nodes: run as root")
	}
	root := t.TempDir()
	idx := rootfs.NewIndex()
	if err := rootfs.Extract(root, baseLayer(t), idx); err != nil {
		t.Fatal(err)
	}
	return root, idx
}

func describe(changes []layer.Change) string {
	var out []string
	for _, c := range changes {
		out = append(out, string("ADO"[c.Kind])+" "+c.Path)
	}
	return strings.Join(out, ", ")
}

// fsOp is one thing a RUN could do, written with plain os calls against
// the root (which is what a process in a chroot does).
type fsOp func(t *testing.T, root string)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func write(p, body string) fsOp {
	return func(t *testing.T, root string) {
		must(t, os.WriteFile(filepath.Join(root, p), []byte(body), 0o644))
	}
}

func mkdir(p string) fsOp {
	return func(t *testing.T, root string) { must(t, os.Mkdir(filepath.Join(root, p), 0o755)) }
}

func remove(p string) fsOp {
	return func(t *testing.T, root string) { must(t, os.RemoveAll(filepath.Join(root, p))) }
}

func rename(from, to string) fsOp {
	return func(t *testing.T, root string) {
		must(t, os.Rename(filepath.Join(root, from), filepath.Join(root, to)))
	}
}

// editKeepingTimes rewrites a file in place with content of the same size
// and puts its mtime back: only ctime shows the edit.
func editKeepingTimes(p, body string) fsOp {
	return func(t *testing.T, root string) {
		full := filepath.Join(root, p)
		fi, err := os.Stat(full)
		must(t, err)
		f, err := os.OpenFile(full, os.O_WRONLY, 0)
		must(t, err)
		_, err = f.WriteAt([]byte(body), 0)
		must(t, err)
		must(t, f.Close())
		must(t, os.Chtimes(full, fi.ModTime(), fi.ModTime()))
	}
}

// Every case runs both the parallel and the single-worker walk.
var walkerCases = []struct {
	name   string
	ops    []fsOp
	ignore []string
	want   string
}{
	{name: "nothing", want: ""},
	{name: "read only", ops: []fsOp{func(t *testing.T, root string) {
		_, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
		must(t, err)
	}}, want: ""},
	{name: "new file", ops: []fsOp{write("etc/new", "n")}, want: "A /etc, A /etc/new"},
	{name: "same size same mtime edit", ops: []fsOp{editKeepingTimes("etc/passwd", "ROOT")}, want: "A /etc/passwd"},
	{name: "same content rewritten, mtime restored", ops: []fsOp{editKeepingTimes("etc/passwd", "root")}, want: ""},
	{name: "chmod", ops: []fsOp{func(t *testing.T, root string) {
		must(t, os.Chmod(filepath.Join(root, "etc/hosts"), 0o600))
	}}, want: "A /etc/hosts"},
	{name: "setuid", ops: []fsOp{func(t *testing.T, root string) {
		must(t, unix.Chmod(filepath.Join(root, "usr/bin/tool"), 0o4755))
	}}, want: "A /usr/bin/tool"},
	{name: "chown", ops: []fsOp{func(t *testing.T, root string) {
		must(t, os.Lchown(filepath.Join(root, "etc/hosts"), 1000, 1000))
	}}, want: "A /etc/hosts"},
	{name: "delete file", ops: []fsOp{remove("etc/hosts")}, want: "A /etc, D /etc/hosts"},
	{name: "delete directory", ops: []fsOp{remove("etc/conf.d")}, want: "A /etc, D /etc/conf.d"},
	{name: "directory removed and made again", ops: []fsOp{
		rename("opt/app", "opt/app.old"), mkdir("opt/app"), write("opt/app/y", "y"), remove("opt/app.old"),
	}, want: "A /opt, A /opt/app, O /opt/app, A /opt/app/y"},
	{name: "file to directory", ops: []fsOp{remove("var/data"), mkdir("var/data"), write("var/data/f", "f")},
		want: "A /var, A /var/data, A /var/data/f"},
	{name: "directory to file", ops: []fsOp{remove("etc/conf.d"), write("etc/conf.d", "file now")},
		want: "A /etc, A /etc/conf.d"},
	{name: "symlink retargeted", ops: []fsOp{remove("bin/sh"), func(t *testing.T, root string) {
		must(t, os.Symlink("/usr/bin/tool", filepath.Join(root, "bin/sh")))
	}}, want: "A /bin, A /bin/sh"},
	{name: "user xattr", ops: []fsOp{func(t *testing.T, root string) {
		must(t, unix.Lsetxattr(filepath.Join(root, "usr/bin/tool"), "user.origin", []byte("test"), 0))
	}}, want: "A /usr/bin/tool"},
	{name: "file capability", ops: []fsOp{func(t *testing.T, root string) {
		must(t, unix.Lsetxattr(filepath.Join(root, "usr/bin/tool"), "security.capability", capNetRaw, 0))
	}}, want: "A /usr/bin/tool"},
	{name: "hardlink to an existing file", ops: []fsOp{func(t *testing.T, root string) {
		must(t, os.Link(filepath.Join(root, "usr/bin/tool"), filepath.Join(root, "usr/bin/tool2")))
	}}, want: "A /usr/bin, A /usr/bin/tool, A /usr/bin/tool2"},
	{name: "device and fifo", ops: []fsOp{mkdir("dev"), func(t *testing.T, root string) {
		must(t, unix.Mknod(filepath.Join(root, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(t, unix.Mkfifo(filepath.Join(root, "dev/fifo"), 0o600))
	}}, want: "A /dev, A /dev/fifo, A /dev/null"},
	{name: "symlink to a host directory is not followed", ops: []fsOp{func(t *testing.T, root string) {
		must(t, os.Symlink("/usr", filepath.Join(root, "escape")))
		must(t, os.Symlink("../../../../../../../usr", filepath.Join(root, "etc/up")))
	}}, want: "A /escape, A /etc, A /etc/up"},
	{name: "ignored paths", ignore: []string{"/var", "/etc/hosts"}, ops: []fsOp{
		write("var/data", "changed"), write("var/new", "n"), remove("etc/hosts"),
	}, want: "A /etc"},
	{name: "ignored directory removed", ignore: []string{"/var"}, ops: []fsOp{remove("var")}, want: ""},
}

var capNetRaw = []byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}

func TestWalker(t *testing.T) {
	for _, workers := range []int{1, 8} {
		for _, tc := range walkerCases {
			t.Run(fmt.Sprintf("%s/workers=%d", tc.name, workers), func(t *testing.T) {
				root, idx := newBase(t)
				for _, op := range tc.ops {
					op(t, root)
				}
				w := NewWalker(root, idx, rootfs.NewIgnoreList(tc.ignore...), WithWorkers(workers))
				got, err := w.Snapshot(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if describe(got) != tc.want {
					t.Errorf("changes\n got: %s\nwant: %s", describe(got), tc.want)
				}
				// The index now matches the tree: a second snapshot is empty.
				again, err := w.Snapshot(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if len(again) != 0 {
					t.Errorf("second snapshot not empty: %s", describe(again))
				}
			})
		}
	}
}

func TestWalkerWithoutHashTreatsTouchedFileAsChanged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("extraction sets owners: run as root")
	}
	root := t.TempDir()
	idx := rootfs.NewIndex()
	if err := rootfs.Extract(root, baseLayer(t), idx, rootfs.WithoutContentHash()); err != nil {
		t.Fatal(err)
	}
	// Re-record once the files are older than the racy window, so only
	// the missing hash is under test.
	time.Sleep(50 * time.Millisecond)
	must(t, idx.Record(root, "/"))
	editKeepingTimes("etc/passwd", "root")(t, root)
	got, err := NewWalker(root, idx, nil).Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if describe(got) != "A /etc/passwd" {
		t.Errorf("changes %s, want A /etc/passwd", describe(got))
	}
}

// TestWalkSessionSettlesOnCommit: a session of the Walk snapshotter leaves
// the entries its snapshot found racy to Commit or Discard, which the
// builder calls after writing the step's layer; the index is settled then,
// and the next snapshot finds nothing changed.
func TestWalkSessionSettlesOnCommit(t *testing.T) {
	for _, end := range []string{"Commit", "Discard"} {
		t.Run(end, func(t *testing.T) {
			root, idx := newBase(t)
			// A write the snapshot sees within the clock tick it was made
			// in is racy; a tick may pass in between, so try a few times.
			var w *Walker
			for i := 0; w == nil && i < 100; i++ {
				write("etc/hosts", fmt.Sprintf("10.0.0.%d host", i))(t, root)
				session, err := Walk{}.Start(root, "", idx, nil)
				must(t, err)
				got, err := session.Snapshot(context.Background())
				must(t, err)
				if describe(got) != "A /etc/hosts" {
					t.Fatalf("changes %q, want A /etc/hosts", describe(got))
				}
				if e, _ := idx.Get("/etc/hosts"); e.Racy {
					w = session.(*Walker)
				} else {
					must(t, session.Commit())
				}
			}
			if w == nil {
				t.Skip("no write was seen within its clock tick in 100 tries")
			}
			if !slices.Contains(w.unsettled, "/etc/hosts") {
				t.Errorf("unsettled %v, want /etc/hosts in it", w.unsettled)
			}
			if end == "Commit" {
				must(t, w.Commit())
			} else {
				must(t, w.Discard())
			}
			idx.Range(func(p string, e rootfs.Entry) bool {
				if e.Racy {
					t.Errorf("%s is still racy after %s", p, end)
				}
				return true
			})
			again, err := NewWalker(root, idx, nil).Snapshot(context.Background())
			must(t, err)
			if len(again) != 0 {
				t.Errorf("snapshot after %s: %s, want nothing", end, describe(again))
			}
		})
	}
}

func TestWalkerLongNames(t *testing.T) {
	root, idx := newBase(t)
	long := filepath.Join(strings.Repeat("d", 90), strings.Repeat("e", 90))
	must(t, os.MkdirAll(filepath.Join(root, "opt", long), 0o755))
	write(filepath.Join("opt", long, strings.Repeat("f", 150)), "long")(t, root)
	got, err := NewWalker(root, idx, nil).Snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	entries := layerEntries(t, root, got)
	name := "opt/" + long + "/" + strings.Repeat("f", 150)
	if e, ok := entries[name]; !ok || e.body != "long" {
		t.Errorf("long name missing from layer: %v", keys(entries))
	}
}

func TestWalkerCancelled(t *testing.T) {
	root, idx := newBase(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewWalker(root, idx, nil).Snapshot(ctx); err == nil {
		t.Error("want an error from a cancelled context")
	}
}

func BenchmarkWalkerUnchanged20k(b *testing.B) {
	root := b.TempDir()
	for d := 0; d < 200; d++ {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", d/20), fmt.Sprintf("sub%03d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := 0; f < 100; f++ {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), []byte("content"), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	idx := rootfs.NewIndex()
	if err := idx.Record(root, "/"); err != nil {
		b.Fatal(err)
	}
	w := NewWalker(root, idx, nil)
	b.ResetTimer()
	for b.Loop() {
		changes, err := w.Snapshot(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if len(changes) != 0 {
			b.Fatalf("unchanged tree gave %d changes", len(changes))
		}
	}
	b.ReportMetric(float64(idx.Len()), "files")
}

// TestWalkerLayerReproducesTheTree applies each step's layer onto a second
// copy of the base and expects the same tree: the changes are complete
// (whiteouts, opaque directories, file↔directory, hardlinks, specials).
func TestWalkerLayerReproducesTheTree(t *testing.T) {
	root, idx := newBase(t)
	replica, _ := newBase(t)
	w := NewWalker(root, idx, nil)
	for i, step := range paritySteps {
		for _, op := range step {
			op(t, root)
		}
		changes, err := w.Snapshot(context.Background())
		must(t, err)
		l, err := layer.Write(root, changes, layer.Options{TempDir: t.TempDir()})
		must(t, err)
		rc, err := l.Uncompressed()
		must(t, err)
		err = rootfs.Extract(replica, rc, nil)
		rc.Close()
		if err != nil {
			t.Fatalf("step %d: applying the layer: %v", i+1, err)
		}
		if diff := diffTrees(t, root, replica); diff != "" {
			t.Errorf("step %d: replica differs:\n%s", i+1, diff)
		}
		if i == 0 {
			// The hardlink made in step 1 arrives as a hardlink.
			var a, b unix.Stat_t
			must(t, unix.Lstat(filepath.Join(replica, "usr/bin/tool"), &a))
			must(t, unix.Lstat(filepath.Join(replica, "usr/bin/tool2"), &b))
			if a.Ino != b.Ino {
				t.Error("usr/bin/tool2 is no longer a hardlink of usr/bin/tool")
			}
		}
	}
}

// TestWalkerRacyEntries simulates a file system with coarse timestamps, where
// an edit right after the index was written keeps the same ctime: the entry
// was marked racy, so its content decides.
func TestWalkerRacyEntries(t *testing.T) {
	for _, racy := range []bool{true, false} {
		t.Run(fmt.Sprintf("racy=%v", racy), func(t *testing.T) {
			root, idx := newBase(t)
			editKeepingTimes("etc/passwd", "ROOT")(t, root)
			var st unix.Stat_t
			must(t, unix.Lstat(filepath.Join(root, "etc/passwd"), &st))
			old, _ := idx.Get("/etc/passwd")
			old.Ctime, old.Racy = st.Ctim.Nano(), racy
			idx.Set("/etc/passwd", old)
			got, err := NewWalker(root, idx, nil).Snapshot(context.Background())
			must(t, err)
			want := ""
			if racy {
				want = "A /etc/passwd"
			}
			// Not racy and every stat field equal is, by design, unchanged:
			// that is the one stat per file the walker relies on.
			if describe(got) != want {
				t.Errorf("changes %q, want %q", describe(got), want)
			}
		})
	}
}
