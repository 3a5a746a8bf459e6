package dockerfile

import (
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

func newIgnore(t *testing.T, file string) *Ignore {
	t.Helper()
	patterns, err := ignorefile.ReadAll(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	ig, err := NewIgnore(patterns)
	if err != nil {
		t.Fatal(err)
	}
	return ig
}

func TestIgnoreExcluded(t *testing.T) {
	tests := []struct {
		name     string
		patterns string
		path     string
		want     bool
	}{
		{"no patterns", "", "a", false},
		{"root-level glob", "*.md", "README.md", true},
		{"root-level glob does not reach subdirs", "*.md", "docs/a.md", false},
		{"double star reaches subdirs", "**/*.md", "docs/a.md", true},
		{"double star matches at root", "**/*.md", "README.md", true},
		{"directory excludes its contents", "node_modules", "node_modules/x/y.js", true},
		{"name only matches at the root", "node_modules", "web/node_modules/x", false},
		{"double star directory anywhere", "**/node_modules", "web/node_modules/x", true},
		{"exception re-includes", "*.md\n!README.md", "README.md", false},
		{"exception leaves others excluded", "*.md\n!README.md", "CHANGES.md", true},
		{"last pattern wins", "!README.md\n*.md", "README.md", true},
		{"exception inside an excluded dir", "docs\n!docs/keep.txt", "docs/keep.txt", false},
		{"rest of the dir stays excluded", "docs\n!docs/keep.txt", "docs/other.txt", true},
		{"exclude all but src", "*\n!src", "src/main.go", false},
		{"exclude all but src, others out", "*\n!src", "Dockerfile", true},
		{"leading slash is the context root", "/build", "build/out", true},
		{"dot-slash is the context root", "./build", "build/out", true},
		{"trailing slash is cleaned", "build/", "build/out", true},
		{"comment lines are ignored", "# *.go\n", "main.go", false},
		{"question mark is one character", "file?.txt", "file1.txt", true},
		{"question mark needs one character", "file?.txt", "file10.txt", false},
		{"character class", "file[0-9].txt", "file7.txt", true},
		{"middle double star", "a/**/b", "a/x/y/b", true},
		{"middle double star matches zero dirs", "a/**/b", "a/b", true},
		{"escaped star is literal", `a\*`, "a*", true},
		{"escaped star does not glob", `a\*`, "ab", false},
		{"path given with leading slash", "secret", "/secret", true},
		{"Dockerfile is not special", "Dockerfile\n.dockerignore", "Dockerfile", true},
		{"root is never excluded", "*", ".", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := newIgnore(t, tt.patterns).Excluded(tt.path, false)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("patterns %q: Excluded(%q) = %v, want %v", tt.patterns, tt.path, got, tt.want)
			}
		})
	}
	var nilIgnore *Ignore
	if ex, err := nilIgnore.Excluded("a", false); ex || err != nil {
		t.Errorf("nil Ignore excludes: %v %v", ex, err)
	}
}

func TestIgnoreSkipDir(t *testing.T) {
	tests := []struct {
		patterns string
		dir      string
		want     bool
	}{
		{"docs", "docs", true},
		{"docs", "src", false},
		{"docs\n!docs/keep.txt", "docs", false},
		{"docs\n!src/x", "docs", true},
		// A wildcard exception could match anywhere: no pruning at all,
		// as in fsutil.
		{"docs\n!**/keep.txt", "docs", false},
		{"*\n!src", "src", false},
		{"*\n!src", "vendor", true},
		{"*\n!src/app", "src", false},
	}
	for _, tt := range tests {
		got, err := newIgnore(t, tt.patterns).SkipDir(tt.dir)
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("patterns %q: SkipDir(%q) = %v, want %v", tt.patterns, tt.dir, got, tt.want)
		}
	}
}

func writeTree(t *testing.T, root string, files ...string) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join(root, filepath.FromSlash(f))
		if strings.HasSuffix(f, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadIgnore(t *testing.T) {
	tests := []struct {
		name       string
		files      map[string]string
		dockerfile string
		wantFile   string // relative to the context; "" for none
		excluded   string
		kept       string
	}{
		{
			name:       "root .dockerignore",
			files:      map[string]string{".dockerignore": "*.log\n"},
			dockerfile: "Dockerfile",
			wantFile:   ".dockerignore",
			excluded:   "a.log",
			kept:       "a.txt",
		},
		{
			name:       "Dockerfile-specific file wins",
			files:      map[string]string{".dockerignore": "*.log\n", "Dockerfile.dockerignore": "*.txt\n"},
			dockerfile: "Dockerfile",
			wantFile:   "Dockerfile.dockerignore",
			excluded:   "a.txt",
			kept:       "a.log",
		},
		{
			name:       "Dockerfile in a subdirectory",
			files:      map[string]string{".dockerignore": "*.log\n", "build/app.Dockerfile.dockerignore": "secret\n"},
			dockerfile: "build/app.Dockerfile",
			wantFile:   "build/app.Dockerfile.dockerignore",
			excluded:   "secret",
			kept:       "a.log",
		},
		{
			name:       "falls back to the root file",
			files:      map[string]string{".dockerignore": "*.log\n", "other.Dockerfile.dockerignore": "*\n"},
			dockerfile: "build/app.Dockerfile",
			wantFile:   ".dockerignore",
			excluded:   "a.log",
			kept:       "a.txt",
		},
		{
			name:       "no ignore file",
			files:      map[string]string{},
			dockerfile: "Dockerfile",
			kept:       "anything",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tt.files {
				p := filepath.Join(dir, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ig, err := ReadIgnore(dir, tt.dockerfile)
			if err != nil {
				t.Fatal(err)
			}
			wantFile := ""
			if tt.wantFile != "" {
				wantFile = filepath.Join(dir, filepath.FromSlash(tt.wantFile))
			}
			if ig.File != wantFile {
				t.Errorf("File = %q, want %q", ig.File, wantFile)
			}
			if tt.excluded != "" {
				if ex, _ := ig.Excluded(tt.excluded, false); !ex {
					t.Errorf("%s not excluded", tt.excluded)
				}
			}
			if ex, _ := ig.Excluded(tt.kept, false); ex {
				t.Errorf("%s excluded", tt.kept)
			}
			// An absolute Dockerfile path works the same.
			ig2, err := ReadIgnore(dir, filepath.Join(dir, filepath.FromSlash(tt.dockerfile)))
			if err != nil || ig2.File != ig.File {
				t.Errorf("absolute Dockerfile path: File = %q, %v", ig2.File, err)
			}
		})
	}

	t.Run("bad pattern", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ".dockerignore"), []byte("[\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadIgnore(dir, "Dockerfile")
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, ".dockerignore")) {
			t.Errorf("error = %v, want one naming the file", err)
		}
	})
}

func TestIgnoreWalk(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root,
		".dockerignore", "Dockerfile", "main.go",
		"docs/a.md", "docs/keep/b.md", "docs/keep/c.txt",
		"node_modules/x/index.js", "logs/", "src/app/app.go", "src/app/app_test.go",
	)
	if err := os.Symlink("../main.go", filepath.Join(root, "src", "link")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		patterns string
		want     []string
	}{
		{
			name:     "nothing excluded",
			patterns: "",
			want: []string{".dockerignore", "Dockerfile", "docs", "docs/a.md", "docs/keep", "docs/keep/b.md", "docs/keep/c.txt",
				"logs", "main.go", "node_modules", "node_modules/x", "node_modules/x/index.js",
				"src", "src/app", "src/app/app.go", "src/app/app_test.go", "src/link"},
		},
		{
			name:     "excluded directories are pruned",
			patterns: "node_modules\ndocs\nlogs\n*_test.go\n**/*_test.go",
			want:     []string{".dockerignore", "Dockerfile", "main.go", "src", "src/app", "src/app/app.go", "src/link"},
		},
		{
			name:     "exception inside an excluded dir brings its parents",
			patterns: "docs\n!docs/keep/b.md",
			want: []string{".dockerignore", "Dockerfile", "docs", "docs/keep", "docs/keep/b.md", "logs", "main.go",
				"node_modules", "node_modules/x", "node_modules/x/index.js",
				"src", "src/app", "src/app/app.go", "src/app/app_test.go", "src/link"},
		},
		{
			name:     "allow-list style",
			patterns: "*\n!src\n!Dockerfile\nsrc/**/*_test.go",
			want:     []string{"Dockerfile", "src", "src/app", "src/app/app.go", "src/link"},
		},
		{
			name:     "wildcard exception",
			patterns: "*\n!**/*.md",
			want:     []string{"docs", "docs/a.md", "docs/keep", "docs/keep/b.md"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ig := newIgnore(t, tt.patterns)
			var got []string
			err := ig.Walk(root, func(rel string, d fs.DirEntry) error {
				got = append(got, rel)
				// Every walked path must agree with Excluded, except the
				// parents of re-included paths, which are sent anyway.
				if ex, _ := ig.Excluded(rel, d.IsDir()); ex && !d.IsDir() {
					t.Errorf("walked excluded file %s", rel)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("walked:\n %q\nwant\n %q", got, tt.want)
			}
		})
	}

	t.Run("pruned directories are not read", func(t *testing.T) {
		for _, tt := range []struct {
			patterns string
			want     []string
		}{
			{"node_modules\ndocs", []string{"", "logs", "src", "src/app"}},
			// The exception lies under docs, so docs must be read, but
			// docs/keep/.. siblings and node_modules need not.
			{"node_modules\ndocs\n!docs/keep", []string{"", "docs", "docs/keep", "logs", "src", "src/app"}},
			// A wildcard exception forbids pruning.
			{"node_modules\ndocs\n!**/keep", []string{"", "docs", "docs/keep", "logs", "node_modules", "node_modules/x", "src", "src/app"}},
		} {
			var read []string
			w := &walker{ig: newIgnore(t, tt.patterns), root: root, fn: func(string, fs.DirEntry) error { return nil },
				readDir: func(dir string) ([]os.DirEntry, error) {
					rel, _ := filepath.Rel(root, dir)
					if rel == "." {
						rel = ""
					}
					read = append(read, filepath.ToSlash(rel))
					return os.ReadDir(dir)
				}}
			if err := w.dir("", patternmatcher.MatchInfo{}, nil); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(read, tt.want) {
				t.Errorf("patterns %q read %q, want %q", tt.patterns, read, tt.want)
			}
		}
	})

	t.Run("SkipDir from the callback", func(t *testing.T) {
		var got []string
		err := (*Ignore)(nil).Walk(root, func(rel string, d fs.DirEntry) error {
			got = append(got, rel)
			if rel == "docs" || rel == "node_modules" || rel == "src" {
				return filepath.SkipDir
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{".dockerignore", "Dockerfile", "docs", "logs", "main.go", "node_modules", "src"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("walked %q, want %q", got, want)
		}
	})
}

func TestIgnoredSource(t *testing.T) {
	tests := []struct {
		patterns, src string
		want          bool
	}{
		{"*.log", "app.log", true},
		{"*.log", "app.txt", false},
		{"build", "build/out/bin", true},
		{"build", "./build", true},
		{"*.log\n!keep.log", "app.log", false}, // exceptions: BuildKit does not judge
		{"secret", ".", false},
		{"*", ".", true},
		{"**", "/", true},
		{"", "anything", false},
	}
	for _, tt := range tests {
		got, err := newIgnore(t, tt.patterns).IgnoredSource(tt.src)
		if err != nil {
			t.Fatal(err)
		}
		if got != tt.want {
			t.Errorf("patterns %q: IgnoredSource(%q) = %v, want %v", tt.patterns, tt.src, got, tt.want)
		}
	}
}
