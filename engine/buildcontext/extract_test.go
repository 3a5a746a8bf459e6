package buildcontext

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

func TestExtractTree(t *testing.T) {
	plain := makeTar(t, sampleEntries()...)
	var zst bytes.Buffer
	zw, _ := zstd.NewWriter(&zst)
	zw.Write(plain)
	zw.Close()
	var txz bytes.Buffer
	xw, err := xz.NewWriter(&txz)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(plain)
	xw.Close()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"tar", plain},
		{"tar.gz", gzipBytes(t, plain)},
		{"tar.zst", zst.Bytes()},
		{"tar.xz", txz.Bytes()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest := t.TempDir()
			if err := Extract(context.Background(), bytes.NewReader(tc.data), dest, 1<<20); err != nil {
				t.Fatal(err)
			}
			assertTree(t, dest, sampleTree())
			fi, err := os.Stat(filepath.Join(dest, "app/run.sh"))
			if err != nil {
				t.Fatal(err)
			}
			if !fi.ModTime().Equal(fixtureTime) {
				t.Errorf("mtime of app/run.sh = %v, want %v", fi.ModTime(), fixtureTime)
			}
			a, _ := os.Stat(filepath.Join(dest, "app/run.sh"))
			b, _ := os.Stat(filepath.Join(dest, "app/run-again.sh"))
			if !os.SameFile(a, b) {
				t.Error("app/run-again.sh is not a hard link to app/run.sh")
			}
		})
	}
}

func TestExtractLaterEntriesReplaceEarlier(t *testing.T) {
	dest := t.TempDir()
	data := makeTar(t,
		symlink("x", "/etc/passwd"),
		file("x", "mine\n", 0o644), // must replace the link, not write through it
		file("y", "old", 0o644),
		file("y", "new", 0o640),
	)
	if err := Extract(context.Background(), bytes.NewReader(data), dest, 1<<20); err != nil {
		t.Fatal(err)
	}
	assertTree(t, dest, map[string]string{"x": "file 0644 mine\n", "y": "file 0640 new"})
}

// A read-only directory that comes before its entries still takes them,
// and ends read-only.
func TestExtractReadOnlyDirectory(t *testing.T) {
	dest := t.TempDir()
	data := makeTar(t, dir("ro/", 0o555), file("ro/f", "x", 0o444))
	if err := Extract(context.Background(), bytes.NewReader(data), dest, 1<<20); err != nil {
		t.Fatal(err)
	}
	assertTree(t, dest, map[string]string{"ro": "dir 0555", "ro/f": "file 0444 x"})
	os.Chmod(filepath.Join(dest, "ro"), 0o755) // let t.TempDir clean up as non-root
}

func TestExtractRefuses(t *testing.T) {
	outside := t.TempDir()
	for _, tc := range []struct {
		name    string
		entries []entry
		want    error
		msg     string
	}{
		{"dot-dot", []entry{file("../evil", "x", 0o644)}, ErrUnsafePath, `"../evil"`},
		{"dot-dot inside", []entry{file("a/../../evil", "x", 0o644)}, ErrUnsafePath, "climbs out"},
		{"absolute", []entry{file("/etc/evil", "x", 0o644)}, ErrUnsafePath, "absolute"},
		{"through symlink", []entry{symlink("out", outside), file("out/evil", "x", 0o644)}, ErrUnsafePath, "through the symlink out"},
		{"through relative symlink", []entry{symlink("up", ".."), file("up/evil", "x", 0o644)}, ErrUnsafePath, "symlink up"},
		{"dir through symlink", []entry{symlink("out", outside), dir("out/sub/", 0o755)}, ErrUnsafePath, "symlink"},
		{"hardlink out", []entry{hardlink("h", "../../etc/passwd")}, ErrUnsafePath, "outside the context"},
		{"hardlink absolute", []entry{hardlink("h", "/etc/passwd")}, ErrUnsafePath, "outside the context"},
		{"hardlink through symlink", []entry{symlink("etc", "/etc"), hardlink("h", "etc/passwd")}, ErrUnsafePath, "symlink etc"},
		{"hardlink to dir", []entry{dir("d/", 0o755), hardlink("h", "d")}, ErrUnsafePath, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest := t.TempDir()
			err := Extract(context.Background(), bytes.NewReader(makeTar(t, tc.entries...)), dest, 1<<20)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Fatalf("something was written outside the context: %v", ents)
			}
		})
	}
}

// A directory entry replaced by a symlink later in the archive, itself or
// through a parent, must not pass its mode and times on to where the
// symlink points.
func TestExtractDirectoryReplacedBySymlink(t *testing.T) {
	outside := t.TempDir()
	if err := os.Mkdir(filepath.Join(outside, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{outside, filepath.Join(outside, "sub")} {
		if err := os.Chtimes(p, fixtureTime, fixtureTime); err != nil {
			t.Fatal(err)
		}
	}
	dest := t.TempDir()
	data := makeTar(t,
		dir("d/", 0o777), symlink("d", outside),
		dir("p/", 0o755), dir("p/sub/", 0o777), symlink("p", outside),
	)
	if err := Extract(context.Background(), bytes.NewReader(data), dest, 1<<20); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{outside, filepath.Join(outside, "sub")} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() == 0o777 || !fi.ModTime().Equal(fixtureTime) {
			t.Errorf("%s outside the context changed: mode %v, mtime %v", p, fi.Mode(), fi.ModTime())
		}
	}
	assertTree(t, dest, map[string]string{"d": "symlink " + outside, "p": "symlink " + outside})
}

func TestExtractGzipBomb(t *testing.T) {
	// 64 MiB of zeros gzips to about 64 KiB: far past a 4 MiB cap.
	bomb := gzipBytes(t, makeTar(t, entry{name: "zeros", typ: '0', mode: 0o644, size: 64 << 20}))
	if len(bomb) > 1<<20 {
		t.Fatalf("the bomb is %d bytes compressed; the test wants it small", len(bomb))
	}
	dest := t.TempDir()
	err := Extract(context.Background(), bytes.NewReader(bomb), dest, 4<<20)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if fi, err := os.Stat(filepath.Join(dest, "zeros")); err == nil && fi.Size() > 4<<20 {
		t.Errorf("wrote %d bytes, past the 4 MiB cap", fi.Size())
	}
}

func TestExtractNotATarball(t *testing.T) {
	for _, tc := range []struct{ name, data string }{
		{"empty", ""},
		{"html", "<html><body>Sign in</body></html>\n"},
		{"gzip of text", string(gzipBytes(t, []byte("hello, this is not a tar archive at all")))},
		{"bad xz header", "\xfd7zXZ\x00rest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Extract(context.Background(), strings.NewReader(tc.data), t.TempDir(), 1<<20)
			if !errors.Is(err, ErrNotTarball) {
				t.Fatalf("err = %v, want ErrNotTarball", err)
			}
		})
	}
}
