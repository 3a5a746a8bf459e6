package dockerfile

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestGlob(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"a.txt", "b.txt", "c.md", "dir/x.txt", "dir/sub/y.txt", "other/x.txt", "skip.txt"} {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/", filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	excluded := func(rel string, _ bool) (bool, error) { return rel == "skip.txt", nil }
	tests := []struct {
		pattern string
		want    []string
	}{
		{"*.txt", []string{"a.txt", "b.txt"}},
		{"?.md", []string{"c.md"}},
		{"*/x.txt", []string{"dir/x.txt", "other/x.txt"}},
		{"dir/*/y.txt", []string{"dir/sub/y.txt"}},
		{"[ab].txt", []string{"a.txt", "b.txt"}},
		{"nothing*", nil},
		{"escape/etc/pass*", nil},
	}
	for _, tt := range tests {
		got, err := Glob(root, tt.pattern, excluded)
		if err != nil {
			t.Fatalf("%s: %v", tt.pattern, err)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Glob(%q) = %v, want %v", tt.pattern, got, tt.want)
		}
	}
	if _, err := Glob(root, "[", nil); err == nil || !strings.Contains(err.Error(), "bad pattern") {
		t.Errorf("a malformed pattern gave %v", err)
	}
}
