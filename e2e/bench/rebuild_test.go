package bench

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/slipway-build/slipway/e2e/harness"
)

// buildFunc is one fresh build and push of the app in dir by one tool, with
// whatever cache that tool keeps between builds.
type buildFunc func(j job) (result, error)

// rebuilder sets a tool up for issue 4's rebuild benchmark: it prepares the
// tool's cache (empty) and returns how the tool builds with it.
type rebuilder func(b *testing.B, reg *harness.Registry, base string) (buildFunc, error)

// rebuildScenario is one of issue 4's three rebuilds: a change to the app
// context (none for (a)) made just before the timed build. The change
// differs in each repetition rep: a cache that outlives one repetition (a
// docker daemon's) must not find the previous repetition's result, which
// would make the fastest of the runs a build with nothing to do.
type rebuildScenario struct {
	name   string
	change func(b *testing.B, dir string, rep int)
}

var rebuildScenarios = []rebuildScenario{
	{"a-unchanged", func(*testing.B, string, int) {}},
	{"b-app-code", func(b *testing.B, dir string, rep int) {
		harness.WriteFile(b, filepath.Join(dir, "src", "main.sh"), fmt.Sprintf("#!/bin/sh\necho \"hello again (%d) from $(jq --version)\"\n", rep))
	}},
	{"c-dependency", func(b *testing.B, dir string, rep int) {
		// The RUN reads the list with $(cat): the blank lines change the
		// file, and with it every cache key, but not what apt installs.
		harness.WriteFile(b, filepath.Join(dir, "packages.txt"), strings.TrimSpace(debianPackages)+" "+debianExtraPackage+strings.Repeat("\n", rep+1))
	}},
}

// BenchmarkRebuild is the cache benchmark on the Debian app: each tool
// builds it once to fill its cache (warm, not part of the scenarios), then
// rebuilds it after each scenario's change, in order, pushing every time.
// Slipway (in a pod and as a binary), kaniko and buildah ("buildah": an
// empty store each time, --cache-from/--cache-to) have only the registry:
// a fresh container or process and store for every build, as in a CI pod.
// docker keeps its daemon's build cache and buildah-local its store: the
// local cache of a long-lived runner, the reference to beat. Metrics are
// <scenario>-<tool>-s and <scenario>-<tool>-vs-fastest.
func BenchmarkRebuild(b *testing.B) {
	reg := harness.StartRegistry(b)
	app := debianApp()
	base := app.base(b, reg)
	type rebuildTool struct {
		name  string
		setup rebuilder
		note  string
	}
	var tools []rebuildTool
	for _, t := range peers() {
		if t.rebuild != nil { // nil: a cold-build row only (buildah-pull)
			tools = append(tools, rebuildTool{t.name, t.rebuild, t.note})
		}
	}
	tools = append(tools, rebuildTool{"buildah-local", buildahRebuild, "--layers, store kept"})
	// scenario → tool → result, the fastest of reps(b).
	results := map[string]map[string]result{}
	for _, s := range rebuildScenarios {
		results[s.name] = map[string]result{}
	}
	b.ResetTimer()
	for i := range reps(b) {
		for _, tool := range tools {
			if !benchTool(tool.name) {
				continue
			}
			build, err := tool.setup(b, reg, base)
			if errors.Is(err, errNoSlipwayCache) {
				if i == 0 {
					b.Logf("%s: %v", tool.name, err)
					record(row{section: "rebuild", tool: tool.name, note: "no --cache yet: see slipwayRebuild"})
				}
				continue
			}
			if err != nil {
				b.Fatalf("setting up %s for the rebuild benchmark: %v", tool.name, err)
			}
			dir := app.write(b)
			j := func(step string) job {
				return job{contextDir: dir, base: base, dest: fmt.Sprintf("%s/bench/rebuild-%s:%s-%d", reg.Host, tool.name, step, i)}
			}
			warm, err := build(j("warm"))
			if err != nil {
				b.Fatalf("%s: the warm build: %v", tool.name, err)
			}
			if i == 0 {
				record(row{section: "rebuild/0-warm", tool: tool.name, res: warm, note: tool.note})
			}
			for _, s := range rebuildScenarios {
				if !benchScenario(s.name) {
					continue
				}
				s.change(b, dir, i)
				r, err := build(j(s.name))
				if err != nil {
					b.Fatalf("%s: rebuild %s: %v", tool.name, s.name, err)
				}
				results[s.name][tool.name] = fastest(results[s.name][tool.name], r)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	for _, s := range rebuildScenarios {
		per := map[string]result{}
		for _, tool := range tools {
			r, ok := results[s.name][tool.name]
			if !ok {
				continue
			}
			per[tool.name] = r
			record(row{section: "rebuild/" + s.name, tool: tool.name, res: per[tool.name], note: tool.note})
		}
		reportTools(b, s.name[:1]+"-", per)
	}
}

// benchTool reports whether SLIPWAY_BENCH_TOOLS names tool, so that one
// tool's half can be rerun alone while tuning it.
func benchTool(tool string) bool { return envNames("SLIPWAY_BENCH_TOOLS", tool) }

// benchScenario reports whether SLIPWAY_BENCH_SCENARIOS names scenario,
// e.g. b-app-code alone.
func benchScenario(scenario string) bool { return envNames("SLIPWAY_BENCH_SCENARIOS", scenario) }

// reps is how many times each tool builds each context
// (SLIPWAY_BENCH_REPS, default 1; `make bench` takes 2). The table keeps
// each tool's fastest run. It is not b.N: with -benchtime Nx the testing
// package runs a benchmark once with N=1 and then again with N, which
// would build everything N+1 times.
func reps(b *testing.B) int {
	v := os.Getenv("SLIPWAY_BENCH_REPS")
	if v == "" {
		return 1
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("SLIPWAY_BENCH_REPS=%q: want a whole number of at least 1", v)
	}
	return n
}

// envNames reports whether the comma-separated list in the environment
// variable env names name; an unset or empty list names everything.
func envNames(env, name string) bool {
	only := os.Getenv(env)
	return only == "" || slices.Contains(strings.Split(only, ","), name)
}

// errNoSlipwayCache marks slipway's half of the rebuild benchmark as not
// runnable yet: the benchmark reports docker and buildah alone.
var errNoSlipwayCache = errors.New("slipway-build has no registry cache yet (--cache is issue 4)")

// slipwayRebuild is Slipway's binary in the rebuild benchmark: each build
// is a fresh slipway-build process with a fresh work and --cache-dir, its
// only state the cache repository in the registry, as in a CI pod. It runs
// only when slipway-build's --cache is more than kaniko's placeholder
// (slipwayHasCache).
func slipwayRebuild(b *testing.B, reg *harness.Registry, _ string) (buildFunc, error) {
	if !slipwayHasCache() {
		return nil, errNoSlipwayCache
	}
	repo := fmt.Sprintf("%s/bench/slipway-host-cache-%d", reg.Host, podSeq.Add(1))
	return func(j job) (result, error) {
		return runSlipway(b, slipwayCommand(b, reg, j, "--cache=true", "--cache-repo", repo))
	}, nil
}

// slipwayHasCache tells from slipway-build's help whether --cache is still
// the placeholder that refuses to run.
func slipwayHasCache() bool {
	out, err := exec.Command(slipwayBinary, "--help").CombinedOutput()
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "--cache ") {
			return !strings.Contains(line, "not yet supported")
		}
	}
	return false
}

// dockerRebuild uses dockerd's build cache: the base is loaded first (as
// for the cold builds) and every build leaves its layers in the daemon for
// the next one.
func dockerRebuild(b *testing.B, _ *harness.Registry, base string) (buildFunc, error) {
	dockerPreload(b, base)
	return func(j job) (result, error) { return dockerBuildPush(b, j, true) }, nil
}

// buildahRebuild uses buildah --layers in one private store kept across the
// builds: the local layer cache of a long-lived CI runner.
func buildahRebuild(b *testing.B, _ *harness.Registry, base string) (buildFunc, error) {
	store := newBuildahStore(b)
	store.preload(b, base)
	return func(j job) (result, error) { return store.buildPush(b, j, true) }, nil
}

// buildahRegistryRebuild is buildah under slipway's constraints: a fresh
// store for every build (an ephemeral pod), with its layer cache in the
// registry (--cache-from/--cache-to, which buildah 1.28 has). The base is
// pulled inside the timed build, as slipway does.
func buildahRegistryRebuild(b *testing.B, reg *harness.Registry, _ string) (buildFunc, error) {
	// A cache repository of its own per repetition, as the other tools'.
	cacheRepo := fmt.Sprintf("%s/bench/buildah-cache-%d", reg.Host, podSeq.Add(1))
	return func(j job) (result, error) {
		store := newBuildahStore(b)
		return store.buildPush(b, j, true, "--cache-from", cacheRepo, "--cache-to", cacheRepo)
	}, nil
}
