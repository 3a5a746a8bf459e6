package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCommitAndDiscard(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "made")
	f, err := Create(dir, ".tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("whole")
	final := filepath.Join(dir, "final")
	if _, err := os.Stat(final); !os.IsNotExist(err) {
		t.Fatalf("final path exists before the commit: %v", err)
	}
	if err := f.Commit(final); err != nil {
		t.Fatal(err)
	}
	f.Discard() // a deferred Discard after a commit leaves the file
	if b, err := os.ReadFile(final); err != nil || string(b) != "whole" {
		t.Errorf("final = %q, %v", b, err)
	}
	if err := f.Commit(final); err == nil {
		t.Error("a second commit succeeded")
	}

	g, err := Create(dir, ".tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	g.Discard()
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("the directory holds %d entries after a discard, want only the committed file", len(entries))
	}
}

func TestWriteFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "index.json")
	if err := WriteFile(p, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("stat = %v, %v; want mode 0644", fi, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("%d entries, want no temporary file left", len(entries))
	}
}
