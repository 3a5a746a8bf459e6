package build

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway-build/slipway/engine/cache"
	"github.com/slipway-build/slipway/engine/dockerfile"
)

// The plan pass on its own, as BuildKit's dispatch tests: a Dockerfile in
// a string, a base config in memory and a fake keySource. No root, no
// registry, no executor.

// fakeKeys is a keySource that knows some --from refs and digests the
// context by the paths alone.
type fakeKeys struct {
	from    map[string]cache.Key
	digests map[string]string
	calls   []string
}

func (k *fakeKeys) fromKey(_ context.Context, ref string, _ bool) (cache.Key, bool, error) {
	k.calls = append(k.calls, "from "+ref)
	if ref == "broken" {
		return "", false, errors.New("--from=broken: manifest unknown")
	}
	key, ok := k.from[ref]
	return key, ok, nil
}

func (k *fakeKeys) sourceDigest(paths []string) (string, error) {
	k.calls = append(k.calls, "digest "+strings.Join(paths, ","))
	d, ok := k.digests[strings.Join(paths, ",")]
	if !ok {
		d = "sha256:" + strings.Join(paths, ",")
	}
	return d, nil
}

// testBaseConfig is a Debian-like base's config.
func testBaseConfig() *v1.ConfigFile {
	return &v1.ConfigFile{
		OS: "linux", Architecture: "amd64",
		Config: v1.Config{
			Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd: []string{"bash"},
		},
	}
}

type planCase struct {
	dockerfile string
	buildArgs  map[string]string
	base       *v1.ConfigFile
	key        cache.Key
	keys       *fakeKeys
	noRunKeys  bool
}

// plan plans the last stage of the case's Dockerfile.
func (c planCase) plan(t *testing.T) *stagePlan {
	t.Helper()
	df, err := dockerfile.Parse(strings.NewReader(c.dockerfile), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	linux := ocispec.Platform{OS: "linux", Architecture: "amd64"}
	opts := dockerfile.PlanOptions{BuildArgs: c.buildArgs, TargetPlatform: linux, BuildPlatform: linux}
	plan, err := df.Plan(opts)
	if err != nil {
		t.Fatal(err)
	}
	ps := &plan.Stages[len(plan.Stages)-1]
	base := c.base
	if base == nil {
		base = testBaseConfig()
	}
	keys := c.keys
	if keys == nil {
		keys = &fakeKeys{}
	}
	return planStage(context.Background(), planInput{
		stage: ps, base: base, scope: dockerfile.NewScope(plan, ps, base.Config.Env, opts),
		key: c.key, keys: keys, keyRuns: !c.noRunKeys, keyCopies: true, buildArgs: c.buildArgs,
	})
}

func stepTexts(p *stagePlan) []string {
	var out []string
	for _, st := range p.steps {
		out = append(out, commandText(st.cmd))
	}
	return out
}

// Each step carries the config after it, and the config instructions'
// histories are BuildKit's.
func TestPlanConfigEffects(t *testing.T) {
	p := planCase{dockerfile: `FROM base
ENV A=1 B="two words"
WORKDIR /srv
WORKDIR app
USER app:app
LABEL a=b
EXPOSE 80 53/udp
SHELL ["/bin/bash", "-c"]
CMD echo hi
ENTRYPOINT ["/bin/app"]
STOPSIGNAL SIGTERM
VOLUME /data
MAINTAINER someone
`}.plan(t)
	if p.err != nil {
		t.Fatal(p.err)
	}
	if len(p.steps) != 12 {
		t.Fatalf("%d steps: %q", len(p.steps), stepTexts(p))
	}
	wd := p.steps[1].config.WorkingDir
	if wd != "/srv" || p.steps[2].config.WorkingDir != "/srv/app" {
		t.Errorf("WORKDIRs give %q then %q", wd, p.steps[2].config.WorkingDir)
	}
	if p.steps[2].config.User != "" || p.steps[3].config.User != "app:app" {
		t.Errorf("USER is seen before its step, or not after it")
	}
	// CMD in shell form takes the SHELL before it; ENTRYPOINT after a CMD
	// of the same stage keeps it.
	if got := p.config.Config.Cmd; !reflect.DeepEqual(got, []string{"/bin/bash", "-c", "echo hi"}) {
		t.Errorf("Cmd = %q", got)
	}
	if got := p.config.Config.Entrypoint; !reflect.DeepEqual(got, []string{"/bin/app"}) {
		t.Errorf("Entrypoint = %q", got)
	}
	if p.config.Author != "someone" || p.config.Config.StopSignal != "SIGTERM" {
		t.Errorf("Author %q StopSignal %q", p.config.Author, p.config.Config.StopSignal)
	}
	want := map[int]string{
		0:  "ENV A=1 B=two words",
		5:  "EXPOSE map[53/udp:{} 80:{}]",
		7:  `CMD ["/bin/bash" "-c" "echo hi"]`,
		10: "VOLUME [/data]",
	}
	for i, h := range want {
		if p.steps[i].history != h {
			t.Errorf("step %d history %q, want %q", i, p.steps[i].history, h)
		}
	}
	// WORKDIR makes a directory, the rest only edit the config.
	for i, st := range p.steps {
		_, isWorkdir := st.cmd.(*instructions.WorkdirCommand)
		if (st.action != nil) != isWorkdir {
			t.Errorf("step %d (%s) has action %T", i, commandText(st.cmd), st.action)
		}
	}
	// The base's config is the plan's input: it stays as it was.
	if base := testBaseConfig(); !reflect.DeepEqual(base.Config.Cmd, []string{"bash"}) {
		t.Errorf("base config changed")
	}
}

// Every instruction is expanded once, with the ARG and ENV state at its
// place; a RUN keeps the environment it runs with.
func TestPlanExpandsOnce(t *testing.T) {
	p := planCase{dockerfile: `FROM base
ARG DIR=/opt
ENV NAME=app
COPY $NAME.conf ${DIR}/$NAME/
RUN echo $NAME
ENV NAME=changed
WORKDIR $DIR/$NAME
`, buildArgs: map[string]string{"DIR": "/usr/local"}}.plan(t)
	if p.err != nil {
		t.Fatal(p.err)
	}
	cp := p.steps[2].action.(copyAction).spec
	if !reflect.DeepEqual(cp.sources, []string{"app.conf"}) || cp.dest != "/usr/local/app/" {
		t.Errorf("COPY %q %q", cp.sources, cp.dest)
	}
	run := p.steps[3].action.(runAction)
	if !contains(run.env, "NAME=app") || !contains(run.env, "DIR=/usr/local") {
		t.Errorf("RUN env %q", run.env)
	}
	if !reflect.DeepEqual(run.buildArgs, []string{"DIR=/usr/local"}) {
		t.Errorf("RUN build args %q", run.buildArgs)
	}
	if got := p.steps[5].action.(workdirAction).path; got != "/usr/local/changed" {
		t.Errorf("WORKDIR %q", got)
	}
	if !contains(p.config.Config.Env, "NAME=changed") || contains(p.config.Config.Env, "DIR=/usr/local") {
		t.Errorf("config Env %q: ENV reaches it, ARG does not", p.config.Config.Env)
	}
	if got := p.steps[0].history; got != "ARG DIR=/opt" {
		t.Errorf("ARG history %q: a --build-arg value never shows", got)
	}
}

// The base image's ONBUILD triggers come first, marked, and leave the
// config.
func TestPlanTriggersFirst(t *testing.T) {
	base := testBaseConfig()
	base.Config.OnBuild = []string{"ENV FROM_TRIGGER=1", "WORKDIR /t"}
	p := planCase{dockerfile: "FROM base\nONBUILD RUN later\nUSER app\n", base: base}.plan(t)
	if p.err != nil {
		t.Fatal(p.err)
	}
	if got := stepTexts(p); !reflect.DeepEqual(got, []string{"ENV FROM_TRIGGER=1", "WORKDIR /t", "ONBUILD RUN later", "USER app"}) {
		t.Fatalf("steps %q", got)
	}
	if !p.steps[0].trigger || !p.steps[1].trigger || p.steps[2].trigger {
		t.Errorf("triggers are not the first two steps")
	}
	if !reflect.DeepEqual(p.config.Config.OnBuild, []string{"RUN later"}) {
		t.Errorf("OnBuild %q: the base's triggers run, the stage's own are kept", p.config.Config.OnBuild)
	}
}

// A failing instruction ends the plan: the steps before it are planned,
// and its error names its line.
func TestPlanStopsAtTheFailingInstruction(t *testing.T) {
	p := planCase{dockerfile: "FROM base\nENV A=1\nEXPOSE 80/xyz\nUSER app\n"}.plan(t)
	if len(p.steps) != 1 || p.err == nil || !strings.Contains(p.err.Error(), "line 3") {
		t.Fatalf("steps %q err %v", stepTexts(p), p.err)
	}
}

// The keys chain from the base's, change from the first step whose input
// changes, and stop at a step that cannot be keyed.
func TestPlanKeys(t *testing.T) {
	const df = `FROM base
RUN apt-get update
COPY src/ /src/
ARG VERSION=1
RUN make VERSION=$VERSION
COPY --from=builder /out /out
ADD https://example.invalid/x /x
RUN after
`
	keysOf := func(c planCase) []cache.Key {
		t.Helper()
		c.dockerfile = df
		if c.key == "" {
			c.key = cache.BaseKey(v1.Hash{}, v1.Platform{OS: "linux", Architecture: "amd64"})
		}
		if c.keys == nil {
			c.keys = &fakeKeys{from: map[string]cache.Key{"builder": "builder-key"}}
		}
		p := c.plan(t)
		if p.err != nil {
			t.Fatal(p.err)
		}
		var out []cache.Key
		for _, st := range p.steps {
			if st.action != nil {
				out = append(out, st.key)
			}
		}
		return out
	}
	first := keysOf(planCase{})
	if len(first) != 6 {
		t.Fatalf("%d keyed steps", len(first))
	}
	for i, k := range first[:4] {
		if k == "" {
			t.Errorf("step %d has no key", i)
		}
	}
	if first[4] != "" || first[5] != "" {
		t.Errorf("ADD of a URL without --checksum is keyed, or the RUN after it: %q", first[4:])
	}
	if again := keysOf(planCase{}); !reflect.DeepEqual(first, again) {
		t.Errorf("the same plan gives other keys")
	}
	arg := keysOf(planCase{buildArgs: map[string]string{"VERSION": "2"}})
	if arg[0] != first[0] || arg[1] != first[1] || arg[2] == first[2] || arg[3] == first[3] {
		t.Errorf("a new VERSION must change the keys from the RUN that reads it on:\n%q\n%q", first, arg)
	}
	src := keysOf(planCase{keys: &fakeKeys{from: map[string]cache.Key{"builder": "builder-key"}, digests: map[string]string{"src/": "sha256:new"}}})
	if src[0] != first[0] || src[1] == first[1] {
		t.Errorf("new context files must change the COPY's key on:\n%q\n%q", first, src)
	}
	other := keysOf(planCase{keys: &fakeKeys{from: map[string]cache.Key{"builder": "other"}}})
	if other[2] != first[2] || other[3] == first[3] {
		t.Errorf("another builder stage must change COPY --from's key on:\n%q\n%q", first, other)
	}
	if noRun := keysOf(planCase{noRunKeys: true}); noRun[0] != "" || noRun[1] != "" {
		t.Errorf("without --cache-run-layers the first RUN ends the chain: %q", noRun)
	}
}

// Without a base key the plan keys nothing and asks nothing; a key that
// cannot be read is the step's error, for the executor to report.
func TestPlanKeySource(t *testing.T) {
	keys := &fakeKeys{}
	p := planCase{dockerfile: "FROM base\nCOPY a /a\nRUN true\n", keys: keys}.plan(t)
	if len(keys.calls) != 0 || p.key != "" || p.steps[0].key != "" {
		t.Errorf("without the cache the plan asked %q and keyed %q", keys.calls, p.key)
	}
	keys = &fakeKeys{}
	p = planCase{dockerfile: "FROM base\nCOPY --from=broken /a /a\nRUN true\n", keys: keys, key: "base-key"}.plan(t)
	if p.steps[0].keyErr == nil || p.steps[0].key != "" || p.steps[1].key != "" || p.key != "" {
		t.Errorf("keyErr %v keys %q %q", p.steps[0].keyErr, p.steps[0].key, p.steps[1].key)
	}
}

// Steps that only write files use sparse roots unless a RUN comes later.
func TestPlanRunsLater(t *testing.T) {
	p := planCase{dockerfile: "FROM base\nCOPY a /a\nRUN true\nCOPY b /b\nENV X=1\n"}.plan(t)
	for i, want := range []bool{true, false, false, false} {
		if got := p.runsLater(i); got != want {
			t.Errorf("runsLater(%d) = %v", i, got)
		}
	}
}
