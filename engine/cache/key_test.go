package cache

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/slipway-build/slipway/engine/dockerfile"
)

// scenario is one build of a two-stage Dockerfile, reduced to what the
// cache key of the final stage's COPY depends on:
//
//	FROM <depBase> AS dep        (its final key is depStep on depBase)
//	FROM <base>
//	ARG USED
//	ENV MODE=<env>
//	COPY --from=dep /out /out    (chained into the key through From)
//	COPY <sources> /app          (the step whose key is compared)
type scenario struct {
	base, depBase v1.Hash
	platform      v1.Platform
	depStep       string
	env           string
	buildArgs     map[string]string
	instruction   string
	mounts        string
	files         map[string]file
	ignore        []string
}

type file struct {
	content string
	mode    os.FileMode
	link    string // a symlink to this target when set
}

func hashOf(t *testing.T, s string) v1.Hash {
	t.Helper()
	h, _, err := v1.SHA256(strings.NewReader(s))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func baseline(t *testing.T) scenario {
	return scenario{
		base:        hashOf(t, "debian"),
		depBase:     hashOf(t, "golang"),
		platform:    v1.Platform{OS: "linux", Architecture: "amd64"},
		depStep:     "RUN go build -o /out ./...",
		env:         "prod",
		buildArgs:   map[string]string{"USED": "1", "UNUSED": "a"},
		instruction: "COPY . /app",
		files: map[string]file{
			"main.go":        {content: "package main", mode: 0o644},
			"run.sh":         {content: "#!/bin/sh", mode: 0o755},
			"lib/util.go":    {content: "package lib", mode: 0o644},
			"lib/current":    {link: "util.go"},
			"logs/debug.log": {content: "noise", mode: 0o644},
		},
		ignore: []string{"logs", "*.tmp"},
	}
}

// key computes the scenario's key the way the builder does: the stage's
// scope from the real Dockerfile front end, the source digest over a real
// context directory with its .dockerignore.
func (s scenario) key(t *testing.T) Key {
	t.Helper()
	src := "FROM dep-base AS dep\nRUN true\nFROM app-base\nARG USED\nENV MODE=" + s.env + "\nCOPY . /app\n"
	df, err := dockerfile.Parse(strings.NewReader(src), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	opts := dockerfile.PlanOptions{BuildArgs: s.buildArgs}
	plan, err := df.Plan(opts)
	if err != nil {
		t.Fatal(err)
	}
	stage := plan.Stage(1)
	scope := dockerfile.NewScope(plan, stage, nil, opts)
	for _, cmd := range stage.Commands {
		if err := scope.Expand(cmd); err != nil {
			t.Fatal(err)
		}
		scope.Apply(cmd)
		if _, ok := cmd.(*instructions.CopyCommand); ok {
			break
		}
	}
	env := ScopeEnv(scope)

	dir := t.TempDir()
	for name, f := range s.files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if f.link != "" {
			if err := os.Symlink(f.link, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(p, []byte(f.content), f.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.mode); err != nil {
			t.Fatal(err)
		}
	}
	ignore, err := dockerfile.NewIgnore(s.ignore)
	if err != nil {
		t.Fatal(err)
	}
	sources, err := SourceDigest(dir, []string{"."}, ignore.Excluded)
	if err != nil {
		t.Fatal(err)
	}

	depFinal := BaseKey(s.depBase, s.platform).Next(StepInput{Instruction: s.depStep})
	k := BaseKey(s.base, s.platform).
		Next(StepInput{Instruction: "COPY --from=dep /out /out", Env: env, From: []Key{depFinal}}).
		Next(StepInput{Instruction: s.instruction, Env: env, Mounts: s.mounts, SourceDigest: sources})
	return k
}

func TestKeyMissesAndHits(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, s *scenario)
		hit    bool
	}{
		{"nothing changed", func(*testing.T, *scenario) {}, true},
		{"base image digest", func(t *testing.T, s *scenario) { s.base = hashOf(t, "debian:13") }, false},
		// kaniko #1833: a change in an earlier stage's base must reach
		// the stages that COPY --from it.
		{"base image of a COPY --from stage", func(t *testing.T, s *scenario) { s.depBase = hashOf(t, "golang:2") }, false},
		{"instruction of a COPY --from stage", func(_ *testing.T, s *scenario) { s.depStep = "RUN go build -tags x -o /out ./..." }, false},
		{"platform architecture", func(_ *testing.T, s *scenario) { s.platform.Architecture = "arm64" }, false},
		{"platform variant", func(_ *testing.T, s *scenario) {
			s.platform.Variant = "v3"
		}, false},
		{"instruction text", func(_ *testing.T, s *scenario) { s.instruction = "COPY --chmod=700 . /app" }, false},
		{"build arg the stage declares", func(_ *testing.T, s *scenario) { s.buildArgs["USED"] = "2" }, false},
		{"build arg the stage does not declare", func(_ *testing.T, s *scenario) { s.buildArgs["UNUSED"] = "b" }, true},
		{"new build arg nobody declares", func(_ *testing.T, s *scenario) { s.buildArgs["OTHER"] = "x" }, true},
		// BuildKit passes proxy args to RUN but keeps them out of its keys.
		{"proxy build arg", func(_ *testing.T, s *scenario) { s.buildArgs["HTTP_PROXY"] = "http://127.0.0.1:3128" }, true},
		{"ENV value", func(_ *testing.T, s *scenario) { s.env = "dev" }, false},
		{"file content", func(_ *testing.T, s *scenario) { s.files["main.go"] = file{content: "package main // v2", mode: 0o644} }, false},
		{"file mode", func(_ *testing.T, s *scenario) { s.files["main.go"] = file{content: "package main", mode: 0o755} }, false},
		{"file added", func(_ *testing.T, s *scenario) { s.files["lib/new.go"] = file{content: "package lib", mode: 0o644} }, false},
		{"empty file added", func(_ *testing.T, s *scenario) { s.files["lib/.keep"] = file{mode: 0o644} }, false},
		{"file removed", func(_ *testing.T, s *scenario) { delete(s.files, "run.sh") }, false},
		{"file renamed, same content", func(_ *testing.T, s *scenario) {
			s.files["start.sh"] = s.files["run.sh"]
			delete(s.files, "run.sh")
		}, false},
		{"file moved into a directory", func(_ *testing.T, s *scenario) {
			s.files["lib/main.go"] = s.files["main.go"]
			delete(s.files, "main.go")
		}, false},
		{"symlink target", func(_ *testing.T, s *scenario) { s.files["lib/current"] = file{link: "main.go"} }, false},
		{".dockerignore'd file changed", func(_ *testing.T, s *scenario) { s.files["logs/debug.log"] = file{content: "more noise", mode: 0o600} }, true},
		{".dockerignore'd file added", func(_ *testing.T, s *scenario) { s.files["scratch.tmp"] = file{content: "x", mode: 0o644} }, true},
		{"RUN mount definition", func(_ *testing.T, s *scenario) { s.mounts = "type=cache,target=/root/.cache" }, false},
	}
	want := baseline(t).key(t)
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(string(want)) {
		t.Fatalf("key %q is not a 64-character hex string, so not a valid tag", want)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := baseline(t)
			tt.change(t, &s)
			got := s.key(t)
			if hit := got == want; hit != tt.hit {
				t.Errorf("hit = %v, want %v (key %s, baseline %s)", hit, tt.hit, got, want)
			}
		})
	}
}

// A file's modification time is not content: a fresh checkout must hit.
func TestKeyIgnoresModTime(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	before, err := SourceDigest(dir, []string{"a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, time.Unix(1, 0), time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	after, err := SourceDigest(dir, []string{"a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if before != after {
		t.Errorf("digest changed with mtime only: %s vs %s", before, after)
	}
}

// Fields are length-prefixed: moving bytes from one field to the next
// must never give the same key.
func TestKeyFieldsCannotCollide(t *testing.T) {
	root := BaseKey(v1.Hash{}, v1.Platform{OS: "linux", Architecture: "amd64"})
	inputs := []StepInput{
		{Instruction: "RUN ab"},
		{Instruction: "RUN a", Mounts: "b"},
		{Instruction: "RUN a", SourceDigest: "b"},
		{Instruction: "RUN a", Env: []string{"b"}},
		{Instruction: "RUN a", Env: []string{"A=1", "B=2"}},
		{Instruction: "RUN a", Env: []string{"A=1B=2"}},
		{Instruction: "RUN a", Env: []string{"A=1", "B=2"}, Mounts: "x"},
		{Instruction: "RUN a", Env: []string{"A=1"}, Mounts: "B=2x"},
		{Instruction: "RUN a", From: []Key{"k1", "k2"}},
		{Instruction: "RUN a", From: []Key{"k2", "k1"}},
		{Instruction: "RUN a", From: []Key{"k1k2"}},
		{Instruction: "RUN a", SourceDigest: "k1"},
	}
	seen := map[Key]int{}
	for i, in := range inputs {
		k := root.Next(in)
		if j, dup := seen[k]; dup {
			t.Errorf("inputs %d and %d give the same key: %+v, %+v", j, i, inputs[j], in)
		}
		seen[k] = i
	}
	platforms := []v1.Platform{
		{OS: "linux", Architecture: "arm", Variant: "v7"},
		{OS: "linux", Architecture: "armv", Variant: "7"},
		{OS: "linux", Architecture: "arm", OSFeatures: []string{"v7"}},
	}
	seenBase := map[Key]int{}
	for i, p := range platforms {
		k := BaseKey(v1.Hash{}, p)
		if j, dup := seenBase[k]; dup {
			t.Errorf("platforms %d and %d give the same key", j, i)
		}
		seenBase[k] = i
	}
	if root.Next(StepInput{Instruction: "RUN a"}) == BaseKey(v1.Hash{}, v1.Platform{}).Next(StepInput{Instruction: "RUN a"}) {
		t.Error("the parent key does not count")
	}
	if a, b := root.Next(StepInput{Env: []string{"A=1", "B=2"}}), root.Next(StepInput{Env: []string{"B=2", "A=1"}}); a != b {
		t.Error("the order of Env changed the key; it is a set")
	}
}
