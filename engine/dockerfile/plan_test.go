package dockerfile

import (
	"reflect"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestPlanFromExpansion(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		opts      PlanOptions
		wantBase  string
		wantPlat  *ocispec.Platform
		wantWarns []string
	}{
		{
			name:     "global args with defaults",
			src:      "ARG IMG=busybox\nARG TAG=1.36\nFROM ${IMG}:${TAG}\n",
			wantBase: "busybox:1.36",
		},
		{
			name:     "build arg overrides global default",
			src:      "ARG IMG=busybox\nARG TAG=1.36\nFROM ${IMG}:${TAG}\n",
			opts:     PlanOptions{BuildArgs: map[string]string{"TAG": "musl"}},
			wantBase: "busybox:musl",
		},
		{
			name:     "global default refers to an earlier global",
			src:      "ARG A=box\nARG B=\"busy$A\"\nFROM $B\n",
			wantBase: "busybox",
		},
		{
			name:     "build arg for an undeclared global is not used",
			src:      "FROM busybox${SUFFIX}\n",
			opts:     PlanOptions{BuildArgs: map[string]string{"SUFFIX": ":x"}},
			wantBase: "busybox",
			wantWarns: []string{
				`Dockerfile:1: FROM uses ARG "SUFFIX", which is not defined before the first FROM`,
				`Dockerfile: build-args [SUFFIX] were not consumed`,
			},
		},
		{
			name:     "declared global without default takes the build arg",
			src:      "ARG SUFFIX\nFROM busybox${SUFFIX}\n",
			opts:     PlanOptions{BuildArgs: map[string]string{"SUFFIX": ":x"}},
			wantBase: "busybox:x",
		},
		{
			name:     "predefined platform args need no declaration in FROM",
			src:      "FROM --platform=$BUILDPLATFORM golang:1-$TARGETARCH\n",
			opts:     PlanOptions{TargetPlatform: linuxARM64, BuildPlatform: linuxAMD64},
			wantBase: "golang:1-arm64",
			wantPlat: &linuxAMD64,
		},
		{
			name:     "TARGETPLATFORM with variant",
			src:      "FROM --platform=${TARGETPLATFORM} scratch\n",
			opts:     PlanOptions{TargetPlatform: linuxARMv7, BuildPlatform: linuxAMD64},
			wantBase: "scratch",
			wantPlat: &linuxARMv7,
		},
		{
			name:     "target platform defaults to build platform",
			src:      "FROM --platform=$TARGETPLATFORM scratch\n",
			opts:     PlanOptions{BuildPlatform: linuxARM64},
			wantBase: "scratch",
			wantPlat: &linuxARM64,
		},
		{
			name:     "default with :- for an unset arg",
			src:      "ARG V\nFROM alpine:${V:-3.20}\n",
			wantBase: "alpine:3.20",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPlan(t, tt.src, tt.opts)
			st := p.Stages[len(p.Stages)-1]
			if st.Base != tt.wantBase {
				t.Errorf("Base = %q, want %q", st.Base, tt.wantBase)
			}
			if !reflect.DeepEqual(st.Platform, tt.wantPlat) {
				t.Errorf("Platform = %+v, want %+v", st.Platform, tt.wantPlat)
			}
			if len(p.Warnings) != len(tt.wantWarns) {
				t.Fatalf("Warnings = %q, want %q", p.Warnings, tt.wantWarns)
			}
			for i, w := range tt.wantWarns {
				if !strings.HasPrefix(p.Warnings[i], w) {
					t.Errorf("Warnings[%d] = %q, want prefix %q", i, p.Warnings[i], w)
				}
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		opts PlanOptions
		want string
	}{
		{
			name: "blank base name",
			src:  "FROM busybox\n\nFROM ${NOPE}\n",
			want: "Dockerfile:3: base name (${NOPE}) should not be blank",
		},
		{
			name: "error operator in FROM",
			src:  "ARG TAG\nFROM busybox:${TAG:?required}\n",
			want: "Dockerfile:2: failed to process \"busybox:${TAG:?required}\": TAG: required",
		},
		{
			name: "error operator in a global default",
			src:  "ARG FOO=${FOO:?\"custom error\"}\nFROM busybox\n",
			want: "Dockerfile:1: failed to process",
		},
		{
			name: "empty platform",
			src:  "FROM --platform=$NOPE busybox\n",
			want: "Dockerfile:1: empty platform value from expression $NOPE",
		},
		{
			name: "bad platform",
			src:  "FROM --platform=linux/nonsense/x/y busybox\n",
			want: "Dockerfile:1: failed to parse platform linux/nonsense/x/y",
		},
		{
			name: "unknown target lists stages",
			src:  "FROM busybox AS build\nFROM busybox AS test\nFROM scratch\n",
			opts: PlanOptions{Target: "prod"},
			want: `Dockerfile: target stage "prod" could not be found; the stages are: build, test`,
		},
		{
			name: "unknown target without named stages",
			src:  "FROM busybox\n",
			opts: PlanOptions{Target: "prod"},
			want: `Dockerfile: target stage "prod" could not be found: no stage has a name`,
		},
		{
			name: "variable in COPY --from",
			src:  "FROM busybox\nCOPY --from=$X /a /b\n",
			want: "Dockerfile:2: variable expansion is not supported for --from",
		},
		{
			name: "stage index out of range",
			src:  "FROM busybox\nCOPY --from=3 /a /b\n",
			want: "Dockerfile:2: invalid stage index 3",
		},
		{
			name: "copy from a later stage",
			src:  "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /x /x\n",
			opts: PlanOptions{Target: "a"},
			want: `Dockerfile:2: cannot copy from stage "b", it needs to be defined before current stage "a"`,
		},
		{
			name: "copy from itself by index",
			src:  "FROM busybox\nCOPY --from=0 /x /y\n",
			want: `Dockerfile:2: cannot copy from stage "0", it needs to be defined before current stage "stage-0"`,
		},
		{
			name: "mount from a later stage",
			src:  "FROM busybox AS a\nRUN --mount=from=b,target=/b true\nFROM busybox AS b\n",
			opts: PlanOptions{Target: "a"},
			want: `Dockerfile:2: cannot mount from stage "b", stage needs to be defined before current command`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := mustParse(t, tt.src).Plan(tt.opts)
			if err == nil {
				t.Fatal("want an error, got none")
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant prefix %q", err, tt.want)
			}
		})
	}
}

// A forward reference in a stage the target does not need is not an
// error: BuildKit only checks the stages it builds.
func TestPlanForwardReferenceInUnusedStage(t *testing.T) {
	src := "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\n"
	if _, err := mustParse(t, src).Plan(PlanOptions{}); err != nil {
		t.Fatalf("unused stage a should not be checked: %v", err)
	}
	if _, err := mustParse(t, src).Plan(PlanOptions{SkipUnusedStages: ptr(false)}); err == nil {
		t.Fatal("with SkipUnusedStages=false stage a is built and must be refused")
	}
}

const multiStage = `ARG GO=1.22
FROM golang:${GO} AS deps
RUN go mod download

FROM deps AS build
RUN go build -o /out/app

FROM busybox AS assets
RUN mkdir /assets

FROM alpine AS unused
RUN false

FROM scratch AS release
COPY --from=build /out/app /app
COPY --from=2 /assets /assets
COPY --from=docker.io/library/nginx:1 /etc/nginx /etc/nginx
RUN --mount=from=assets,target=/a --mount=from=registry.example/tools:1,target=/t --mount=type=cache,target=/c true

FROM release AS debug
COPY --from=Unused /bin/sh /bin/sh
`

func TestPlanStageGraph(t *testing.T) {
	tests := []struct {
		name       string
		opts       PlanOptions
		wantStages []int
		wantTarget int
	}{
		{"default target is the last stage", PlanOptions{}, []int{0, 1, 2, 3, 4, 5}, 5},
		{"target release skips unused and debug", PlanOptions{Target: "release"}, []int{0, 1, 2, 4}, 4},
		{"target is case-insensitive", PlanOptions{Target: "RELEASE"}, []int{0, 1, 2, 4}, 4},
		{"target build needs its base", PlanOptions{Target: "build"}, []int{0, 1}, 1},
		{"target assets alone", PlanOptions{Target: "assets"}, []int{2}, 2},
		{"all stages", PlanOptions{Target: "assets", SkipUnusedStages: ptr(false)}, []int{0, 1, 2, 3, 4, 5}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := mustPlan(t, multiStage, tt.opts)
			var got []int
			for _, st := range p.Stages {
				got = append(got, st.Index)
			}
			if !reflect.DeepEqual(got, tt.wantStages) {
				t.Errorf("stages = %v, want %v", got, tt.wantStages)
			}
			if p.Target != tt.wantTarget {
				t.Errorf("Target = %d, want %d", p.Target, tt.wantTarget)
			}
		})
	}

	p := mustPlan(t, multiStage, PlanOptions{SkipUnusedStages: ptr(false)})
	want := []struct {
		name      string
		base      string
		baseStage int
		deps      []int
		images    []string
		line      int
	}{
		{"deps", "golang:1.22", -1, nil, nil, 2},
		{"build", "deps", 0, []int{0}, nil, 5},
		{"assets", "busybox", -1, nil, nil, 8},
		{"unused", "alpine", -1, nil, nil, 11},
		{"release", "scratch", -1, []int{1, 2}, []string{"docker.io/library/nginx:1", "registry.example/tools:1"}, 14},
		{"debug", "release", 4, []int{3, 4}, nil, 20},
	}
	for i, w := range want {
		st := p.Stages[i]
		if st.Index != i || st.Name != w.name || st.Base != w.base || st.BaseStage != w.baseStage || st.Line != w.line {
			t.Errorf("stage %d = {%d %q base %q/%d line %d}, want {%q base %q/%d line %d}",
				i, st.Index, st.Name, st.Base, st.BaseStage, st.Line, w.name, w.base, w.baseStage, w.line)
		}
		if len(st.DependsOn) != 0 || len(w.deps) != 0 {
			if !reflect.DeepEqual(st.DependsOn, w.deps) {
				t.Errorf("stage %s DependsOn = %v, want %v", w.name, st.DependsOn, w.deps)
			}
		}
		if !reflect.DeepEqual(st.Images, w.images) {
			t.Errorf("stage %s Images = %q, want %q", w.name, st.Images, w.images)
		}
		// Dependency order: every dependency is planned earlier.
		for _, dep := range st.DependsOn {
			if dep >= st.Index {
				t.Errorf("stage %d depends on later stage %d", st.Index, dep)
			}
		}
	}

	for _, tt := range []struct {
		from       string
		allowIndex bool
		want       int
		ok         bool
	}{
		{"build", true, 1, true},
		{"BUILD", false, 1, true},
		{"2", true, 2, true},
		{"2", false, 0, false}, // RUN --mount from= takes names only, as in BuildKit
		{"9", true, 0, false},
		{"nginx", true, 0, false},
	} {
		got, ok := p.StageRef(tt.from, tt.allowIndex)
		if ok != tt.ok || (ok && got != tt.want) {
			t.Errorf("StageRef(%q, %v) = %d, %v; want %d, %v", tt.from, tt.allowIndex, got, ok, tt.want, tt.ok)
		}
	}
	if p.Stage(3) == nil || p.Stage(3).Name != "unused" || p.Stage(42) != nil {
		t.Error("Stage lookup by index is wrong")
	}
}

// Commands come back as parsed; each Plan gets its own copies so that
// expanding one plan's commands (say for linux/amd64) leaves another's
// (linux/arm64) untouched.
func TestPlanCommandsAreUnexpandedAndPrivate(t *testing.T) {
	d := mustParse(t, "FROM busybox\nARG TARGETARCH\nWORKDIR /w/$TARGETARCH\n")
	opts1 := PlanOptions{TargetPlatform: linuxAMD64}
	opts2 := PlanOptions{TargetPlatform: linuxARM64}
	p1, err := d.Plan(opts1)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := d.Plan(opts2)
	if err != nil {
		t.Fatal(err)
	}
	wd2 := p2.Stages[0].Commands[1].(*instructions.WorkdirCommand)
	if wd2.Path != "/w/$TARGETARCH" {
		t.Fatalf("planned command already expanded: %q", wd2.Path)
	}
	runPlan(t, p1, opts1, nil)
	runPlan(t, p2, opts2, nil)
	wd1 := p1.Stages[0].Commands[1].(*instructions.WorkdirCommand)
	if wd1.Path != "/w/amd64" || wd2.Path != "/w/arm64" {
		t.Errorf("WORKDIR = %q and %q, want /w/amd64 and /w/arm64", wd1.Path, wd2.Path)
	}
}

func TestPlanOnbuildFromStage(t *testing.T) {
	src := `FROM busybox AS tools
RUN touch /tool

FROM busybox AS base
ONBUILD COPY --from=tools /tool /tool
ONBUILD RUN echo triggered

FROM base AS app
RUN echo app
`
	p := mustPlan(t, src, PlanOptions{})
	app := p.Stage(2)
	if app == nil {
		t.Fatal("app not planned")
	}
	if len(app.Triggers) != 2 {
		t.Fatalf("Triggers = %d, want 2", len(app.Triggers))
	}
	if c, ok := app.Triggers[0].(*instructions.CopyCommand); !ok || c.From != "tools" {
		t.Errorf("Triggers[0] = %#v", app.Triggers[0])
	}
	if r, ok := app.Triggers[1].(*instructions.RunCommand); !ok || r.CmdLine[0] != "echo triggered" {
		t.Errorf("Triggers[1] = %#v", app.Triggers[1])
	}
	// The trigger's COPY --from makes tools a dependency of app, not of
	// base, where the ONBUILD is only recorded.
	if !reflect.DeepEqual(app.DependsOn, []int{0, 1}) {
		t.Errorf("app.DependsOn = %v, want [0 1]", app.DependsOn)
	}
	if base := p.Stage(1); len(base.DependsOn) != 0 || len(base.Triggers) != 0 {
		t.Errorf("base: DependsOn %v, Triggers %d", base.DependsOn, len(base.Triggers))
	}
	if len(p.Stages) != 3 {
		t.Errorf("planned %d stages, want 3", len(p.Stages))
	}

	_, err := mustParse(t, "FROM busybox AS base\nONBUILD BOGUS x\nFROM base\n").Plan(PlanOptions{})
	if err == nil || !strings.HasPrefix(err.Error(), `Dockerfile:3: ONBUILD trigger from stage "base" (line 2): unknown instruction: BOGUS`) {
		t.Errorf("bad trigger error = %v", err)
	}
}

func TestPlanGlobalArgs(t *testing.T) {
	p := mustPlan(t, "ARG A=1\nARG B\nFROM scratch AS final\n", PlanOptions{
		TargetPlatform: linuxARMv7,
		BuildPlatform:  linuxAMD64,
	})
	got := envMap(t, p.GlobalArgs())
	want := map[string]string{
		"A":               "1",
		"BUILDPLATFORM":   "linux/amd64",
		"BUILDOS":         "linux",
		"BUILDARCH":       "amd64",
		"BUILDVARIANT":    "",
		"BUILDOSVERSION":  "",
		"TARGETPLATFORM":  "linux/arm/v7",
		"TARGETOS":        "linux",
		"TARGETARCH":      "arm",
		"TARGETVARIANT":   "v7",
		"TARGETOSVERSION": "",
		"TARGETSTAGE":     "final",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GlobalArgs = %v\nwant %v", got, want)
	}
}

func TestPlanUnconsumedBuildArgs(t *testing.T) {
	src := "ARG GLOBAL\nFROM busybox AS a\nARG USED_A\nFROM busybox AS b\nARG USED_B\n"
	args := map[string]string{
		"GLOBAL": "1", "USED_A": "1", "USED_B": "1", "TYPO": "1",
		"http_proxy": "p", "TARGETARCH": "amd64", "SOURCE_DATE_EPOCH": "0",
	}
	p := mustPlan(t, src, PlanOptions{BuildArgs: args})
	// Stage a is not built, so USED_A is not consumed either.
	want := []string{"Dockerfile: build-args [TYPO USED_A] were not consumed: no ARG declares them in the stages built"}
	if !reflect.DeepEqual(p.Warnings, want) {
		t.Errorf("Warnings = %q\nwant %q", p.Warnings, want)
	}
}

func TestPlanTriggerDeps(t *testing.T) {
	src := "FROM busybox AS tools\nFROM busybox AS other\nFROM example/onbuild-base AS app\nFROM busybox AS late\n"
	p := mustPlan(t, src, PlanOptions{Target: "app"})
	app := p.Stage(2)
	if len(p.Stages) != 1 {
		t.Fatalf("planned %d stages, want only app", len(p.Stages))
	}
	triggers, err := ParseTriggers([]string{
		"COPY --from=tools /t /t",
		"COPY --from=1 /o /o",
		"RUN --mount=from=example/cache:1,target=/c true",
		"COPY --from=example/assets:2 /a /a",
	})
	if err != nil {
		t.Fatal(err)
	}
	stages, images, err := p.TriggerDeps(app, triggers)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(stages, []int{0, 1}) {
		t.Errorf("stages = %v, want [0 1]", stages)
	}
	if !reflect.DeepEqual(images, []string{"example/cache:1", "example/assets:2"}) {
		t.Errorf("images = %q", images)
	}

	late, err := ParseTriggers([]string{"COPY --from=late /x /x"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = p.TriggerDeps(app, late)
	if err == nil || !strings.HasPrefix(err.Error(), "Dockerfile:3: ONBUILD trigger of base image example/onbuild-base reads from stage 3") {
		t.Errorf("forward reference error = %v", err)
	}
	bad, err := ParseTriggers([]string{"COPY --from=$X /x /x"})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = p.TriggerDeps(app, bad)
	if err == nil || !strings.Contains(err.Error(), "variable expansion is not supported for --from") {
		t.Errorf("variable error = %v", err)
	}
}
