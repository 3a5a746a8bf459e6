package cache

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-build/slipway/engine/dockerfile"
)

func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func digest(t *testing.T, dir string, paths []string, ignore []string, opts ...SourceOption) string {
	t.Helper()
	ig, err := dockerfile.NewIgnore(ignore)
	if err != nil {
		t.Fatal(err)
	}
	d, err := SourceDigest(dir, paths, ig.Excluded, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestSourceDigestIgnoreExceptions(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a.txt": "a", "vendor/keep/x.go": "x", "vendor/drop/y.go": "y"})
	ignore := []string{"vendor", "!vendor/keep"}
	before := digest(t, dir, []string{"."}, ignore)

	// A re-included file inside an excluded directory still counts.
	writeTree(t, dir, map[string]string{"vendor/keep/x.go": "x2"})
	if after := digest(t, dir, []string{"."}, ignore); after == before {
		t.Error("changing a file re-included by a ! exception did not change the digest")
	}
	before = digest(t, dir, []string{"."}, ignore)
	writeTree(t, dir, map[string]string{"vendor/drop/y.go": "y2"})
	if after := digest(t, dir, []string{"."}, ignore); after != before {
		t.Error("changing an excluded file changed the digest")
	}
	// Pruning with SkipDir must give the same answer where it is allowed.
	ig, err := dockerfile.NewIgnore([]string{"vendor/drop"})
	if err != nil {
		t.Fatal(err)
	}
	walked := digest(t, dir, []string{"."}, []string{"vendor/drop"})
	pruned := digest(t, dir, []string{"."}, []string{"vendor/drop"}, WithSkipDir(ig.SkipDir))
	if walked != pruned {
		t.Error("pruning excluded directories changed the digest")
	}
}

func TestSourceDigestParallelIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{}
	for i := 0; i < 200; i++ {
		files[filepath.Join(string(rune('a'+i%7)), strings.Repeat("f", 1+i%5)+string(rune('a'+i%26))+".txt")] = strings.Repeat("x", i*97)
	}
	writeTree(t, dir, files)
	serial := digest(t, dir, []string{"."}, nil, WithWorkers(1))
	for i := 0; i < 3; i++ {
		if got := digest(t, dir, []string{"."}, nil, WithWorkers(8)); got != serial {
			t.Fatalf("8 workers gave %s, 1 worker %s", got, serial)
		}
	}
}

func TestSourceDigestSources(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a/x": "1", "b/x": "1", "real/f": "content"})
	if err := os.Symlink("real", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if digest(t, dir, []string{"a"}, nil) == digest(t, dir, []string{"b"}, nil) {
		t.Error("two directories with the same content but different names gave the same digest")
	}
	if digest(t, dir, []string{"a", "b"}, nil) == digest(t, dir, []string{"b", "a"}, nil) {
		t.Error("the order of sources did not count")
	}
	if digest(t, dir, []string{"/a"}, nil) != digest(t, dir, []string{"a"}, nil) {
		t.Error("an absolute source is not read relative to the context, as docker does")
	}
	// COPY follows a symlink named as a source, so its target's content
	// is part of what is copied.
	before := digest(t, dir, []string{"link"}, nil)
	writeTree(t, dir, map[string]string{"real/f": "changed"})
	if digest(t, dir, []string{"link"}, nil) == before {
		t.Error("a change behind a symlinked source did not change the digest")
	}
}

func TestSourceDigestErrors(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	writeTree(t, outside, map[string]string{"secret": "s"})
	if err := os.Symlink(outside, filepath.Join(dir, "escape")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, want string
	}{
		{"missing", "not found in the build context"},
		{"../x", "outside the build context"},
		// Resolved inside the context, as COPY does: the target is not
		// there, so nothing outside is ever read.
		{"escape/secret", "not found in the build context"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			_, err := SourceDigest(dir, []string{tt.path}, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestSourceDigestWildcardsAndRootMode(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"a.txt": "a", "b.txt": "b", "c.md": "c", "sub/d.txt": "d"})
	tests := []struct {
		name   string
		change map[string]string
		ignore []string
		hit    bool
	}{
		{"matching file changed", map[string]string{"b.txt": "b2"}, nil, false},
		{"matching file added", map[string]string{"e.txt": "e"}, nil, false},
		{"non-matching file changed", map[string]string{"c.md": "c2"}, nil, true},
		{"file in a subdirectory, not matched", map[string]string{"sub/d.txt": "d2"}, nil, true},
		{"matching but ignored file added", map[string]string{"f.txt": "f"}, []string{"f.txt"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := t.TempDir()
			writeTree(t, d, map[string]string{"a.txt": "a", "b.txt": "b", "c.md": "c", "sub/d.txt": "d"})
			before := digest(t, d, []string{"*.txt"}, tt.ignore)
			writeTree(t, d, tt.change)
			if hit := digest(t, d, []string{"*.txt"}, tt.ignore) == before; hit != tt.hit {
				t.Errorf("hit = %v, want %v", hit, tt.hit)
			}
		})
	}

	// COPY copies a directory's contents, so the mode of the named
	// directory itself is not part of the result.
	before := digest(t, dir, []string{"."}, nil)
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if digest(t, dir, []string{"."}, nil) != before {
		t.Error("the mode of the context root changed the digest")
	}
	if err := os.Chmod(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if digest(t, dir, []string{"."}, nil) == before {
		t.Error("the mode of a directory inside the source did not change the digest")
	}
}
