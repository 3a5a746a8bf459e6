package dockerfile

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/patternmatcher/ignorefile"
)

// testLiterals returns the string literals of this package's test files
// that keep says are seeds: the fuzz targets start from what the tests
// already exercise.
func testLiterals(f *testing.F, keep func(string) bool) []string {
	f.Helper()
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		f.Fatal(err)
	}
	var out []string
	fset := token.NewFileSet()
	for _, name := range files {
		file, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			f.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if s, err := strconv.Unquote(lit.Value); err == nil && keep(s) {
				out = append(out, s)
			}
			return true
		})
	}
	return out
}

// maxFuzzInput bounds inputs to what a Dockerfile line or file plausibly
// is, so that the fuzzer's time goes to structure, not length.
const maxFuzzInput = 4096

// FuzzParsePlan parses a Dockerfile, plans it for a target and a build
// arg, and expands and applies every planned instruction as the builder
// does. Nothing may panic, errors from Parse must be located *Errors, and
// the plan must list every stage after the stages it depends on.
func FuzzParsePlan(f *testing.F) {
	for _, src := range testLiterals(f, func(s string) bool { return strings.Contains(s, "FROM ") }) {
		f.Add(src, "", "A=b")
	}
	for _, glob := range []string{"../../examples/*/Dockerfile", "../../e2e/parity/testdata/*/Dockerfile", "../../steps/image/Dockerfile"} {
		files, _ := filepath.Glob(glob)
		for _, name := range files {
			if b, err := os.ReadFile(name); err == nil {
				f.Add(string(b), "", "BASE=busybox")
			}
		}
	}
	f.Fuzz(func(t *testing.T, src, target, buildArg string) {
		if len(src) > maxFuzzInput {
			t.Skip("input too large")
		}
		d, err := Parse(strings.NewReader(src), "Dockerfile")
		if err != nil {
			var de *Error
			if !errors.As(err, &de) || de.File != "Dockerfile" {
				t.Fatalf("Parse error %v (%T) does not name the Dockerfile", err, err)
			}
			return
		}
		k, v, _ := strings.Cut(buildArg, "=")
		opts := PlanOptions{Target: target, BuildArgs: map[string]string{k: v}}
		p, err := d.Plan(opts)
		if err != nil {
			return
		}
		seen := map[int]bool{}
		for _, st := range p.Stages {
			for _, dep := range st.DependsOn {
				if !seen[dep] {
					t.Fatalf("stage %d comes before stage %d, which it depends on", st.Index, dep)
				}
			}
			seen[st.Index] = true
		}
		if !seen[p.Target] {
			t.Fatalf("the target stage %d is not planned", p.Target)
		}
		scopes := map[int]*Scope{}
		for i := range p.Stages {
			ps := &p.Stages[i]
			var s *Scope
			if base, ok := scopes[ps.BaseStage]; ps.BaseStage >= 0 && ok {
				s = base.Derive()
			} else {
				s = NewScope(p, ps, []string{"PATH=/usr/bin:/bin"}, opts)
			}
			scopes[ps.Index] = s
			for _, cmd := range append(append([]instructions.Command{}, ps.Triggers...), ps.Commands...) {
				if s.Expand(cmd) != nil {
					continue
				}
				s.Apply(cmd)
				switch c := cmd.(type) {
				case *instructions.RunCommand:
					_, _, _ = RunArgv(c, DefaultShell("linux"))
				case *instructions.OnbuildCommand:
					_, _ = ParseTriggers([]string{c.Expression})
				}
			}
			_, _, _ = p.TriggerDeps(ps, ps.Triggers)
			_ = s.RunEnv()
			_ = s.BuildArgs()
		}
	})
}

// FuzzExpandWord expands a word in a scope holding set, empty and unset
// variables, with both escape characters: no panic, and the same answer
// every time.
func FuzzExpandWord(f *testing.F) {
	for _, w := range testLiterals(f, func(s string) bool { return strings.ContainsAny(s, "$\\'\"") && len(s) < 200 }) {
		f.Add(w, false)
	}
	scopes := map[bool]*Scope{}
	for _, backtick := range []bool{false, true} {
		src := "FROM scratch\nARG A=1\nENV FOO=bar EMPTY= PATHLIKE=/a/b/c.tar.gz\n"
		if backtick {
			src = "# escape=`\n" + src
		}
		d, err := Parse(strings.NewReader(src), "Dockerfile")
		if err != nil {
			f.Fatal(err)
		}
		opts := PlanOptions{BuildArgs: map[string]string{"A": "2"}}
		p, err := d.Plan(opts)
		if err != nil {
			f.Fatal(err)
		}
		s := NewScope(p, &p.Stages[0], nil, opts)
		for _, cmd := range p.Stages[0].Commands {
			if err := s.Expand(cmd); err != nil {
				f.Fatal(err)
			}
			s.Apply(cmd)
		}
		scopes[backtick] = s
	}
	f.Fuzz(func(t *testing.T, word string, backtick bool) {
		if len(word) > maxFuzzInput {
			t.Skip("input too large")
		}
		s := scopes[backtick]
		got, err := s.Word(word)
		again, err2 := s.Word(word)
		if got != again || (err == nil) != (err2 == nil) {
			t.Fatalf("Word(%q) = %q, %v, then %q, %v", word, got, err, again, err2)
		}
	})
}

// FuzzIgnore matches a path against .dockerignore patterns. SkipDir is
// what lets a walk prune a directory, so it must never claim a directory
// whose child is still included.
func FuzzIgnore(f *testing.F) {
	patterns := testLiterals(f, func(s string) bool { return strings.ContainsAny(s, "*?[!\n/") && len(s) < 100 })
	paths := []string{"a", "README.md", "docs/a.md", "node_modules/x/y.js", "web/node_modules/x", "src/main.go", "build/out", "a/x/y/b", "a*", ".", ""}
	for i, p := range patterns {
		f.Add(p, paths[i%len(paths)], "keep.txt")
	}
	f.Fuzz(func(t *testing.T, file, rel, child string) {
		if len(file) > maxFuzzInput {
			t.Skip("input too large")
		}
		list, err := ignorefile.ReadAll(strings.NewReader(file))
		if err != nil {
			return
		}
		ig, err := NewIgnore(list)
		if err != nil {
			return
		}
		excluded, err := ig.Excluded(rel, true)
		if err != nil {
			return
		}
		skip, err := ig.SkipDir(rel)
		if err != nil {
			t.Fatalf("SkipDir(%q) fails where Excluded did not: %v", rel, err)
		}
		if skip && !excluded {
			t.Fatalf("SkipDir(%q) with %q, but the directory is not excluded", rel, list)
		}
		_, _ = ig.IgnoredSource(rel)
		if !skip || child == "" || strings.Contains(child, "..") || cleanRel(rel) == "" {
			return
		}
		inner := rel + "/" + child
		if ex, err := ig.Excluded(inner, false); err == nil && !ex {
			t.Fatalf("patterns %q: SkipDir(%q) prunes %q, which they include", list, rel, inner)
		}
	})
}
