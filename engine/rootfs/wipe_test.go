package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// wipeTree lays out files (content "x"), directories (a trailing "/") and
// symlinks ("name -> target") under dir.
func wipeTree(t *testing.T, dir string, entries ...string) {
	t.Helper()
	for _, e := range entries {
		name, target, _ := strings.Cut(e, " -> ")
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case target != "":
			err = os.Symlink(target, p)
		case name[len(name)-1] == '/':
			err = os.MkdirAll(p, 0o755)
		default:
			err = os.WriteFile(p, []byte("x"), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// names lists every path under dir, relative, sorted.
func names(t *testing.T, dir string) []string {
	t.Helper()
	out, err := listNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func listNames(dir string) ([]string, error) {
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWipeNeverFollowsSymlinksOut(t *testing.T) {
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	wipeTree(t, outside, "keep.txt", "sub/deep.txt")
	before := names(t, outside)
	wipeTree(t, root,
		"abs -> "+outside,
		"rel -> ../outside",
		"file-link -> "+filepath.Join(outside, "keep.txt"),
		"dir/inner -> ../../outside/sub",
		"loop -> loop",
		"etc/passwd",
	)
	if err := Wipe(root, nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := names(t, root); len(got) != 0 {
		t.Errorf("left in the root: %v", got)
	}
	if got := names(t, outside); !sameNames(got, before) {
		t.Errorf("outside the root: %v, want %v untouched", got, before)
	}
}

func TestWipeKeepsKernelTreesAndIgnoredPaths(t *testing.T) {
	root := t.TempDir()
	wipeTree(t, root,
		"proc/1/status", "sys/kernel/x", "dev/null",
		"workspace/src/main.go",
		"var/run/secrets/token", "var/lib/gone",
		"etc/passwd",
	)
	ignore := NewIgnoreList("/workspace", "/var/run/secrets")
	if err := Wipe(root, ignore, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"dev", "dev/null",
		"proc", "proc/1", "proc/1/status",
		"sys", "sys/kernel", "sys/kernel/x",
		"var", "var/run", "var/run/secrets", "var/run/secrets/token",
		"workspace", "workspace/src", "workspace/src/main.go",
	}
	if got := names(t, root); !sameNames(got, want) {
		t.Errorf("after the wipe %v, want %v", got, want)
	}
}

func TestWipeKeepsTheRunningExecutable(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A hard link is the executable under another name; it must be on the
	// executable's filesystem, so the root is made beside it.
	root, err := os.MkdirTemp(filepath.Dir(exe), "wipe-root-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	wipeTree(t, root, "usr/local/bin/other", "usr/share/doc/x", "etc/passwd")
	if err := os.Link(exe, filepath.Join(root, "usr/local/bin/slipway-build")); err != nil {
		t.Fatal(err)
	}
	if err := Wipe(root, nil, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"usr", "usr/local", "usr/local/bin", "usr/local/bin/slipway-build"}
	if got := names(t, root); !sameNames(got, want) {
		t.Errorf("after the wipe %v, want %v", got, want)
	}
}

// TestWipeStopsAtMounts mounts a tmpfs, a bind mount of a directory on the
// same filesystem and a bind-mounted file under the root, none of them in
// the ignore list, in a mount namespace of the test's own thread, which
// dies with it: the host's mount table never sees them.
func TestWipeStopsAtMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root")
	}
	base := t.TempDir()
	root, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
	wipeTree(t, outside, "data/a.txt", "data/sub/b.txt", "resolv.conf")
	wipeTree(t, root, "mnt/tmp/", "srv/bound/", "etc/resolv.conf", "etc/passwd", "usr/bin/sh")
	before := names(t, outside)

	errc := make(chan error, 1)
	var got []string
	go func() {
		// The thread is never unlocked: it exits with the goroutine, and
		// its mount namespace with it.
		runtime.LockOSThread()
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return err
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return err
			}
			if err := unix.Mount("tmpfs", filepath.Join(root, "mnt/tmp"), "tmpfs", 0, "size=1m"); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(root, "mnt/tmp/on-tmpfs"), []byte("x"), 0o644); err != nil {
				return err
			}
			if err := unix.Mount(filepath.Join(outside, "data"), filepath.Join(root, "srv/bound"), "", unix.MS_BIND, ""); err != nil {
				return err
			}
			if err := unix.Mount(filepath.Join(outside, "resolv.conf"), filepath.Join(root, "etc/resolv.conf"), "", unix.MS_BIND, ""); err != nil {
				return err
			}
			if err := Wipe(root, nil, nil); err != nil {
				return err
			}
			var err error
			got, err = listNames(root)
			return err
		}()
	}()
	if err := <-errc; err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("no mount namespace here: %v", err)
		}
		t.Fatal(err)
	}
	want := []string{
		"etc", "etc/resolv.conf",
		"mnt", "mnt/tmp", "mnt/tmp/on-tmpfs",
		"srv", "srv/bound", "srv/bound/a.txt", "srv/bound/sub", "srv/bound/sub/b.txt",
	}
	if !sameNames(got, want) {
		t.Errorf("after the wipe, seen inside the mount namespace: %v, want %v", got, want)
	}
	if after := names(t, outside); !sameNames(after, before) {
		t.Errorf("the bind mounts' sources: %v, want %v untouched", after, before)
	}
}

// TestWipeOfAWideTree: directories are emptied on several goroutines; what
// is kept deep in one of them keeps its parents, and everything else goes
// (run with -race too).
func TestWipeOfAWideTree(t *testing.T) {
	root := t.TempDir()
	var entries []string
	for d := range 40 {
		for f := range 15 {
			entries = append(entries, fmt.Sprintf("usr/d%02d/sub/f%02d", d, f))
		}
		entries = append(entries, fmt.Sprintf("usr/d%02d/link -> /etc", d))
	}
	entries = append(entries, "usr/d17/sub/keep/secret", "etc/passwd")
	wipeTree(t, root, entries...)
	if err := Wipe(root, NewIgnoreList("/usr/d17/sub/keep"), nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"usr", "usr/d17", "usr/d17/sub", "usr/d17/sub/keep", "usr/d17/sub/keep/secret"}
	if got := names(t, root); !sameNames(got, want) {
		t.Errorf("after the wipe %v, want %v", got, want)
	}
}
