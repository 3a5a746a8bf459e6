package snapshot

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/slipway-build/slipway/engine/layer"
	"github.com/slipway-build/slipway/engine/rootfs"
	"golang.org/x/sys/unix"
)

func needOverlay(t *testing.T) {
	t.Helper()
	if !OverlaySupported(t.TempDir()) {
		t.Skip("overlayfs cannot be mounted here (needs root and a kernel with overlay); the walker tests still run")
	}
}

// newOverlay extracts the base into dir/root and prepares an overlay over it.
func newOverlay(t *testing.T) (*Overlay, *rootfs.Index, string) {
	t.Helper()
	dir := t.TempDir()
	lower := filepath.Join(dir, "root")
	must(t, os.Mkdir(lower, 0o755))
	idx := rootfs.NewIndex()
	must(t, rootfs.Extract(lower, baseLayer(t), idx))
	o, err := NewOverlay(lower, filepath.Join(dir, "ovl"), idx, nil)
	must(t, err)
	t.Cleanup(func() { o.Discard() })
	if _, err := o.Prepare(); err != nil {
		t.Fatal(err)
	}
	return o, idx, lower
}

// The steps of a build, each run against both snapshotters. They avoid
// renaming directories that exist in the lower layer, which overlayfs
// without redirect_dir refuses with EXDEV (tools like mv then copy).
var paritySteps = [][]fsOp{{
	write("etc/new", "n"),
	editKeepingTimes("etc/passwd", "ROOT"),
	func(t *testing.T, root string) { must(t, os.Chmod(filepath.Join(root, "etc/hosts"), 0o600)) },
	remove("etc/conf.d/a"),
	// /opt/app removed and made again: an opaque directory.
	mkdir("opt/app.new"), write("opt/app.new/y", "y"), remove("opt/app"), rename("opt/app.new", "opt/app"),
	// A file becomes a directory.
	remove("var/data"), mkdir("var/data"), write("var/data/f", "f"),
	remove("bin/sh"),
	func(t *testing.T, root string) {
		must(t, os.Symlink("/usr/bin/tool", filepath.Join(root, "bin/sh")))
		tool := filepath.Join(root, "usr/bin/tool")
		must(t, unix.Lsetxattr(tool, "user.origin", []byte("test"), 0))
		must(t, unix.Lsetxattr(tool, "security.capability", capNetRaw, 0))
		must(t, unix.Chmod(tool, 0o4755))
		must(t, os.Link(tool, filepath.Join(root, "usr/bin/tool2")))
		must(t, os.Mkdir(filepath.Join(root, "dev"), 0o755))
		must(t, unix.Mknod(filepath.Join(root, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(t, unix.Chmod(filepath.Join(root, "dev/null"), 0o666)) // past the umask
		must(t, unix.Mkfifo(filepath.Join(root, "dev/fifo"), 0o600))
		long := filepath.Join(root, "srv", strings.Repeat("d", 120))
		must(t, os.MkdirAll(long, 0o750))
		must(t, os.WriteFile(filepath.Join(long, strings.Repeat("f", 130)), []byte("long"), 0o640))
		must(t, os.Lchown(filepath.Join(root, "srv"), 1000, 1001))
		// An absolute symlink that the next step turns into a directory.
		must(t, os.Symlink("/usr/bin", filepath.Join(root, "lib")))
	},
	// Opened for writing and read back unchanged: no change at all.
	func(t *testing.T, root string) {
		f, err := os.OpenFile(filepath.Join(root, "bin/busybox"), os.O_RDWR, 0)
		must(t, err)
		must(t, f.Close())
	},
}, {
	remove("usr/bin/tool2"),
	// A directory becomes a file.
	remove("etc/conf.d"), write("etc/conf.d", "now a file"),
	write("opt/app/z", "z"),
	remove("var"),
	editKeepingTimes("etc/hosts", "127.0.0.2"),
	remove("lib"), mkdir("lib"), write("lib/tool", "tool v1"),
}}

func TestOverlayAndWalkerGiveTheSameLayers(t *testing.T) {
	needOverlay(t)
	wroot, widx := newBase(t)
	walker := NewWalker(wroot, widx, nil)
	o, oidx, lower := newOverlay(t)

	for i, step := range paritySteps {
		for _, op := range step {
			op(t, wroot)
			op(t, o.Root())
		}
		wch, err := walker.Snapshot(context.Background())
		must(t, err)
		och, err := o.Snapshot(context.Background())
		must(t, err)
		wl := layerEntries(t, wroot, wch)
		ol := layerEntries(t, o.Root(), och)
		if diff := diffEntries(wl, ol); diff != "" {
			t.Errorf("step %d: layers differ (walker changes: %s; overlay changes: %s):\n%s", i+1, describe(wch), describe(och), diff)
		}
		if len(wl) == 0 {
			t.Fatalf("step %d: empty layer", i+1)
		}
		if err := o.Commit(); err != nil {
			t.Fatal(err)
		}
		// After Commit the root is what the walker saw, and so is its index.
		if diff := diffTrees(t, wroot, lower); diff != "" {
			t.Errorf("step %d: committed root differs from the walker's:\n%s", i+1, diff)
		}
		again, err := NewWalker(lower, oidx, nil).Snapshot(context.Background())
		must(t, err)
		if len(again) != 0 {
			t.Errorf("step %d: index after Commit is stale: %s", i+1, describe(again))
		}
		if _, err := o.Prepare(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOverlayLayerContents pins what the first step's layer holds, so the
// parity test cannot pass by both snapshotters being wrong the same way.
func TestOverlayLayerContents(t *testing.T) {
	needOverlay(t)
	o, _, _ := newOverlay(t)
	for _, op := range paritySteps[0] {
		op(t, o.Root())
	}
	changes, err := o.Snapshot(context.Background())
	must(t, err)
	got := layerEntries(t, o.Root(), changes)
	long := "srv/" + strings.Repeat("d", 120) + "/" + strings.Repeat("f", 130)
	checks := []struct {
		name  string
		check func(e tarEntry) bool
	}{
		{"etc/.wh.conf.d", nil},
		{"etc/conf.d/.wh.a", func(e tarEntry) bool { return e.typ == '0' }},
		{"opt/app/.wh..wh..opq", nil},
		{"opt/app/y", func(e tarEntry) bool { return e.body == "y" }},
		{"var/data/", func(e tarEntry) bool { return e.typ == '5' }},
		{"bin/sh", func(e tarEntry) bool { return e.typ == '2' && e.link == "/usr/bin/tool" }},
		{"usr/bin/tool", func(e tarEntry) bool {
			return e.typ == '0' && e.mode == 0o4755 && strings.Contains(e.xattrs, "security.capability=") && strings.Contains(e.xattrs, "user.origin=")
		}},
		{"usr/bin/tool2", func(e tarEntry) bool { return e.typ == '1' && e.link == "usr/bin/tool" }},
		{"dev/null", func(e tarEntry) bool { return e.typ == '3' && e.dev == "1:3" && e.mode == 0o666 }},
		{"dev/fifo", func(e tarEntry) bool { return e.typ == '6' && e.mode == 0o600 }},
		{long, func(e tarEntry) bool { return e.body == "long" && e.mode == 0o640 }},
		{"srv/", func(e tarEntry) bool { return e.uid == 1000 && e.gid == 1001 }},
		{"etc/passwd", func(e tarEntry) bool { return strings.HasPrefix(e.body, "ROOT") }},
	}
	for _, c := range checks {
		e, ok := got[c.name]
		switch {
		case c.name == "etc/.wh.conf.d":
			if ok {
				t.Errorf("%s: conf.d was only changed, not removed", c.name)
			}
		case !ok:
			t.Errorf("%s missing; layer has %v", c.name, keys(got))
		case c.check != nil && !c.check(e):
			t.Errorf("%s: unexpected entry %+v", c.name, e)
		}
	}
	for _, unchanged := range []string{"bin/busybox", "etc/conf.d/b", "opt/app/x"} {
		if _, ok := got[unchanged]; ok {
			t.Errorf("%s is in the layer but did not change", unchanged)
		}
	}
}

func TestOverlayDiscard(t *testing.T) {
	needOverlay(t)
	o, idx, lower := newOverlay(t)
	write("etc/new", "n")(t, o.Root())
	must(t, o.Discard())
	if _, err := os.Lstat(filepath.Join(lower, "etc/new")); !os.IsNotExist(err) {
		t.Errorf("discarded change reached the root: %v", err)
	}
	if _, ok := idx.Get("/etc/new"); ok {
		t.Error("discarded change reached the index")
	}
	if _, err := o.Snapshot(context.Background()); err == nil {
		t.Error("Snapshot without Prepare: want an error")
	}
}

func TestNewOverlayRejectsBadWorkDir(t *testing.T) {
	if _, err := NewOverlay(t.TempDir(), filepath.Join(t.TempDir(), "a,b"), nil, nil); err == nil || !strings.Contains(err.Error(), "','") {
		t.Errorf("want an error naming the comma, got %v", err)
	}
}

func diffEntries(a, b map[string]tarEntry) string {
	var out []string
	for _, k := range unionKeys(a, b) {
		ea, oka := a[k]
		eb, okb := b[k]
		switch {
		case !oka:
			out = append(out, "only overlay: "+k)
		case !okb:
			out = append(out, "only walker:  "+k)
		case ea != eb:
			out = append(out, fmt.Sprintf("%s: walker %+v, overlay %+v", k, ea, eb))
		}
	}
	return strings.Join(out, "\n")
}

func unionKeys(a, b map[string]tarEntry) []string {
	seen := map[string]bool{}
	for k := range a {
		seen[k] = true
	}
	for k := range b {
		seen[k] = true
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// diffTrees compares two roots as flattened file systems: type, mode,
// owner, link target, device, xattrs and content.
func diffTrees(t *testing.T, a, b string) string {
	t.Helper()
	return diffEntries(flatten(t, a), flatten(t, b))
}

func flatten(t *testing.T, root string) map[string]tarEntry {
	t.Helper()
	var changes []layer.Change
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			changes = append(changes, layer.Change{Path: strings.TrimPrefix(p, root), Kind: layer.Add})
		}
		return nil
	})
	must(t, err)
	return layerEntries(t, root, changes)
}
