package dockerfile

import (
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	linuxAMD64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	linuxARMv7 = ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	linuxARM64 = ocispec.Platform{OS: "linux", Architecture: "arm64"}
)

func mustParse(t *testing.T, src string) *Dockerfile {
	t.Helper()
	d, err := Parse(strings.NewReader(src), "Dockerfile")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

func mustPlan(t *testing.T, src string, opts PlanOptions) *Plan {
	t.Helper()
	p, err := mustParse(t, src).Plan(opts)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return p
}

// stageRun is what a builder would see while running a stage: the RUN
// environment at each RUN, and the scope at the end.
type stageRun struct {
	runEnvs [][]string
	runs    []*instructions.RunCommand
	scope   *Scope
}

// runPlan drives every planned stage through Scope the way the builder
// does (triggers first, Expand then Apply), deriving stage-based stages
// from their base's final scope. imageEnv is the config Env of every base
// image.
func runPlan(t *testing.T, p *Plan, opts PlanOptions, imageEnv []string) map[int]*stageRun {
	t.Helper()
	out := map[int]*stageRun{}
	for i := range p.Stages {
		ps := &p.Stages[i]
		var s *Scope
		if ps.BaseStage >= 0 {
			s = out[ps.BaseStage].scope.Derive()
		} else {
			s = NewScope(p, ps, imageEnv, opts)
		}
		sr := &stageRun{scope: s}
		for _, cmd := range append(append([]instructions.Command{}, ps.Triggers...), ps.Commands...) {
			if err := s.Expand(cmd); err != nil {
				t.Fatalf("stage %d: Expand %s: %v", ps.Index, cmd.Name(), err)
			}
			s.Apply(cmd)
			if r, ok := cmd.(*instructions.RunCommand); ok {
				sr.runEnvs = append(sr.runEnvs, s.RunEnv())
				sr.runs = append(sr.runs, r)
			}
		}
		out[ps.Index] = sr
	}
	return out
}

// envMap turns KEY=value pairs into a map, failing on duplicates, which
// would make the environment a RUN sees ambiguous.
func envMap(t *testing.T, env []string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := m[k]; dup {
			t.Fatalf("duplicate %s in %q", k, env)
		}
		m[k] = v
	}
	return m
}

func ptr[T any](v T) *T { return &v }
