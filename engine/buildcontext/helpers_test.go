package buildcontext

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// entry is one archive member for fixtures.
type entry struct {
	name     string
	typ      byte
	mode     int64
	body     string
	linkname string
	size     int64 // for zero-filled bodies; overrides body
}

func file(name, body string, mode int64) entry {
	return entry{name: name, typ: tar.TypeReg, mode: mode, body: body}
}
func dir(name string, mode int64) entry { return entry{name: name, typ: tar.TypeDir, mode: mode} }
func symlink(name, target string) entry {
	return entry{name: name, typ: tar.TypeSymlink, mode: 0o777, linkname: target}
}
func hardlink(name, target string) entry {
	return entry{name: name, typ: tar.TypeLink, mode: 0o644, linkname: target}
}

var fixtureTime = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func makeTar(t testing.TB, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.linkname, ModTime: fixtureTime, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
			if e.size > 0 {
				hdr.Size = e.size
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if e.size > 0 {
				zero := make([]byte, 64<<10)
				for left := e.size; left > 0; {
					n := min(left, int64(len(zero)))
					if _, err := tw.Write(zero[:n]); err != nil {
						t.Fatal(err)
					}
					left -= n
				}
			} else if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sampleEntries is the tree most tests fetch: files with distinct modes,
// a nested directory, a relative and an absolute symlink, a hard link.
func sampleEntries() []entry {
	return []entry{
		dir("app/", 0o755),
		file("Dockerfile", "FROM scratch\nCOPY . /\n", 0o644),
		file("app/run.sh", "#!/bin/sh\necho hi\n", 0o755),
		file("app/secret.txt", "only me\n", 0o600),
		symlink("app/current", "run.sh"),
		symlink("zone", "/usr/share/zoneinfo/UTC"),
		hardlink("app/run-again.sh", "app/run.sh"),
	}
}

// sampleTree is what sampleEntries extract to, in treeOf's notation.
func sampleTree() map[string]string {
	return map[string]string{
		"Dockerfile":       "file 0644 FROM scratch\nCOPY . /\n",
		"app":              "dir 0755",
		"app/run.sh":       "file 0755 #!/bin/sh\necho hi\n",
		"app/secret.txt":   "file 0600 only me\n",
		"app/current":      "symlink run.sh",
		"app/run-again.sh": "file 0755 #!/bin/sh\necho hi\n",
		"zone":             "symlink /usr/share/zoneinfo/UTC",
	}
}

// treeOf describes every entry under root, skipping .git directories.
func treeOf(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		if d.Name() == ".git" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil // a submodule's gitlink file
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "symlink " + target
		case fi.IsDir():
			out[rel] = fmt.Sprintf("dir %04o", fi.Mode().Perm())
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = fmt.Sprintf("file %04o %s", fi.Mode().Perm(), b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func assertTree(t testing.TB, root string, want map[string]string) {
	t.Helper()
	got := treeOf(t, root)
	var diffs []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("missing %s (want %q)", k, w))
		} else if g != w {
			diffs = append(diffs, fmt.Sprintf("%s: got %q, want %q", k, g, w))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("unexpected %s (%q)", k, g))
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("tree %s differs:\n  %s", root, strings.Join(diffs, "\n  "))
	}
}

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}
