package extracted

import (
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

func TestEvictLeastRecentlyUsed(t *testing.T) {
	d := Dir(t.TempDir())
	layersDir := filepath.Join(string(d), "sha256")
	if err := os.MkdirAll(layersDir, 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, name := range []string{"a.tar", "b.tar", "c.tar", "d.tar"} {
		p := filepath.Join(layersDir, name)
		if err := os.WriteFile(p, make([]byte, 100), 0o644); err != nil {
			t.Fatal(err)
		}
		// a is the oldest use, d the newest.
		used := now.Add(time.Duration(i-4) * time.Minute)
		if err := os.Chtimes(p, used, used); err != nil {
			t.Fatal(err)
		}
	}
	// A temporary file a killed build left, and one a live build writes.
	stale, fresh := filepath.Join(layersDir, ".layer-stale"), filepath.Join(layersDir, ".layer-fresh")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := now.Add(-2 * staleTemp)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	// Using a makes it the most recent.
	if err := os.Chtimes(filepath.Join(layersDir, "a.tar"), now, now); err != nil {
		t.Fatal(err)
	}
	if err := d.Evict(250); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(layersDir)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	sort.Strings(got)
	want := []string{".layer-fresh", "a.tar", "d.tar"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("after Evict(250): %v, want %v", got, want)
	}
}
