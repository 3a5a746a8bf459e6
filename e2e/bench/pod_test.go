package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slipway-build/slipway/e2e/harness"
)

// Pod-model images, each made once per run when a benchmark first needs
// it: Slipway's executor image built by steps/image/build.sh from this
// run's step binaries, and kaniko's by kaniko.sh.
var (
	slipwayImageOnce sync.Once
	slipwayImage     string
	slipwayImageErr  error

	kanikoImages sync.Map // version label → *kanikoImage
)

type kanikoImage struct {
	once sync.Once
	ref  string
	err  error
}

var loadedRe = regexp.MustCompile(`Loaded image: (\S+)`)

// executorImage builds the Slipway executor image as `make image` does and
// loads it into dockerd as slipway-bench:PID; TestMain removes it.
func executorImage(b *testing.B) string {
	b.Helper()
	slipwayImageOnce.Do(func() {
		tag := fmt.Sprintf("slipway-bench:%d", os.Getpid())
		tarPath := filepath.Join(benchDir, "executor.tar")
		cmd := exec.Command("./steps/image/build.sh", "-b", filepath.Dir(slipwayBinary), "-t", "executor",
			"--no-push", "--destination", tag, "--tar-path", tarPath)
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			slipwayImageErr = fmt.Errorf("steps/image/build.sh: %v\n%s", err, tail(string(out), 40))
			return
		}
		out, err := exec.Command("docker", "load", "-i", tarPath).CombinedOutput()
		if err != nil {
			slipwayImageErr = fmt.Errorf("docker load -i %s: %v\n%s", tarPath, err, out)
			return
		}
		m := loadedRe.FindSubmatch(out)
		if m == nil {
			slipwayImageErr = fmt.Errorf("docker load named no image:\n%s", out)
			return
		}
		slipwayImage = string(m[1])
		os.Remove(tarPath)
	})
	if slipwayImageErr != nil {
		b.Fatalf("the Slipway executor image: %v", slipwayImageErr)
	}
	return slipwayImage
}

// kanikoExecutorImage runs kaniko.sh for module@version (module "" is
// upstream) and returns the image it made. The image stays in dockerd
// between runs, like the binary in ~/.cache/slipway-kaniko.
func kanikoExecutorImage(b *testing.B, module, version string) string {
	b.Helper()
	v, _ := kanikoImages.LoadOrStore(module+"@"+version, &kanikoImage{})
	k := v.(*kanikoImage)
	k.once.Do(func() {
		cmd := exec.Command("./kaniko.sh", version)
		cmd.Env = os.Environ()
		if module != "" {
			cmd.Env = append(cmd.Env, "SLIPWAY_KANIKO_MODULE="+module)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			k.err = fmt.Errorf("e2e/bench/kaniko.sh %s: %v\n%s", version, err, tail(stderr.String(), 30))
			return
		}
		for _, line := range strings.Split(string(out), "\n") {
			if ref, ok := strings.CutPrefix(line, "SLIPWAY_KANIKO_IMAGE="); ok {
				k.ref = ref
			}
		}
		if k.ref == "" {
			k.err = fmt.Errorf("e2e/bench/kaniko.sh printed no image: %q", out)
		}
	})
	if k.err != nil {
		b.Fatal(k.err)
	}
	return k.ref
}

var podSeq atomic.Int64

// podCommand runs image as a Tekton or Argo pod runs it: `docker run`
// with no --privileged, the default capabilities and seccomp profile, the
// build context as the /workspace volume and a docker config (empty: the
// registry has no auth) as the /kaniko/.docker volume. The network is the
// host's, only so that the container reaches the registry on loopback.
// Each run is a fresh container: nothing carries over but the registry.
// CPU time is the container's cgroup's; peak memory the highest VmHWM of
// its processes, sampled.
//
// The clock stops when the container exits (docker's FinishedAt), as a
// Tekton or Argo step ends when its process does: the container's
// teardown and removal come after, untimed, as a finished pod is
// garbage-collected off the pipeline's critical path. `docker run --rm`
// would wait for the removal of the container's upper directory, which
// an in-place build (Slipway's, kaniko's) fills with the whole image:
// seconds of unlinking that no pipeline waits for.
func podCommand(b *testing.B, image, contextDir string, args ...string) command {
	name := fmt.Sprintf("slipway-bench-%d-%d", os.Getpid(), podSeq.Add(1))
	config := filepath.Join(b.TempDir(), "docker")
	harness.WriteFile(b, filepath.Join(config, "config.json"), "{}\n")
	parent := newCgroupParent()
	b.Cleanup(func() {
		_ = exec.Command("docker", "rm", "--force", name).Run()
		parent.remove()
	})
	argv := []string{"docker", "run", "--name", name, "--network", "host"}
	argv = append(argv, parent.dockerArgs()...)
	if dir := os.Getenv("SLIPWAY_BENCH_CPU_PROFILE"); dir != "" {
		// A volume: in-place mode neither wipes nor snapshots a mount.
		argv = append(argv, "-v", dir+":/slipway-profile", "-e", "SLIPWAY_CPU_PROFILE=/slipway-profile/"+name+".pprof")
	}
	argv = append(argv, "-v", contextDir+":/workspace", "-v", config+":/kaniko/.docker:ro", image)
	return command{
		argv:   append(argv, args...),
		env:    os.Environ(),
		roots:  func(int) []int { return parent.pids() },
		memory: sampledHWM,
		cpu: func() func() time.Duration {
			return func() time.Duration { return parent.cpu() }
		},
		showOutput: verboseOutput(name),
		after:      func() time.Time { return removeContainer(name) },
	}
}

// removeContainer removes a pod's exited container and returns when it
// exited (docker's FinishedAt), or the zero time. docker run returns only
// after dockerd tore the container down: the unmount of its root, which
// syncs the overlay's upper directory, takes seconds once an in-place
// build wrote a whole image there (3.3 s after 100k files). A Tekton or
// Argo step is done when its process exits; the next one does not wait
// for that. With SLIPWAY_BENCH_VERBOSITY it prints how long the container
// ran and how long the removal took.
func removeContainer(name string) time.Time {
	verbose := os.Getenv("SLIPWAY_BENCH_VERBOSITY") != ""
	var exited time.Time
	if out, err := exec.Command("docker", "inspect", "--format", "{{.State.StartedAt}} {{.State.FinishedAt}}", name).Output(); err == nil {
		if f := strings.Fields(string(out)); len(f) == 2 {
			started, err1 := time.Parse(time.RFC3339Nano, f[0])
			finished, err2 := time.Parse(time.RFC3339Nano, f[1])
			if err1 == nil && err2 == nil {
				exited = finished
				if verbose {
					fmt.Fprintf(os.Stderr, "--- %s: the container ran %.2f s (started %s, exited %s)\n", name, finished.Sub(started).Seconds(), f[0], f[1])
				}
			}
		}
	}
	start := time.Now()
	_ = exec.Command("docker", "rm", "--force", name).Run()
	if verbose {
		fmt.Fprintf(os.Stderr, "--- %s: removing the container took %.2f s (untimed)\n", name, time.Since(start).Seconds())
	}
	return exited
}

// verboseOutput prints a tool's output after it succeeded when
// SLIPWAY_BENCH_VERBOSITY is set, to see where a build spends its time.
func verboseOutput(what string) func(string) {
	if os.Getenv("SLIPWAY_BENCH_VERBOSITY") == "" {
		return nil
	}
	return func(out string) { fmt.Fprintf(os.Stderr, "--- %s:\n%s", what, out) }
}

// slipwayPodArgs are slipway-build's flags for j in its executor image (in-place
// mode, the image's default), with its debug log in JSON for the phase times.
func slipwayPodArgs(reg *harness.Registry, j job, extra ...string) []string {
	return append([]string{
		"--context", "dir:///workspace",
		"--build-arg", "BASE=" + j.base,
		"--destination", j.dest,
		"--insecure-registry", reg.Host,
		"--verbosity", "debug", "--log-format", "json",
	}, extra...)
}

// kanikoArgs are kaniko's executor flags for j, as a kaniko user passes
// them; everything else is kaniko's default (snapshot mode full, no cache).
func kanikoArgs(reg *harness.Registry, j job, extra ...string) []string {
	return append([]string{
		"--context", "dir:///workspace",
		"--dockerfile", "Dockerfile",
		"--build-arg", "BASE=" + j.base,
		"--destination", j.dest,
		"--insecure", "--insecure-pull", "--insecure-registry", reg.Host,
	}, extra...)
}

// runSlipway runs c, a slipway-build process or container, and attaches
// the phase times it printed.
func runSlipway(b *testing.B, c command) (result, error) {
	var out string
	show := c.showOutput
	c.showOutput = func(s string) {
		out = s
		if show != nil {
			show(s)
		}
	}
	m, err := c.run(timeout(b))
	return result{total: m, build: m, phases: parsePhases(out)}, err
}

// runKaniko runs c, a kaniko container.
func runKaniko(b *testing.B, c command) (result, error) {
	m, err := c.run(timeout(b))
	return result{total: m, build: m}, err
}

// phaseMessage starts the debug line in which slipway-build reports its
// seconds per phase (engine/phase, logged by engine/job).
const phaseMessage = "Seconds per phase"

// phaseNames are engine/phase's phases in the order of a build.
var phaseNames = []string{"pull", "headers", "unpack", "copy", "run", "snapshot", "compress", "push", "remove"}

// parsePhases reads the phase times out of slipway-build's JSON log; nil
// when there is none (another tool, or a build that failed).
func parsePhases(out string) map[string]float64 {
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !strings.Contains(string(line), phaseMessage) {
			continue
		}
		var entry map[string]any
		if json.Unmarshal(line, &entry) != nil {
			continue
		}
		if msg, _ := entry["msg"].(string); !strings.HasPrefix(msg, phaseMessage) {
			continue
		}
		phases := map[string]float64{}
		for _, p := range phaseNames {
			if v, ok := entry[p].(float64); ok {
				phases[p] = v
			}
		}
		return phases
	}
	return nil
}

// A tool is one builder as users run it: its cold build of a context, and
// its rebuild with the cache it can keep between CI runs.
type tool struct {
	name string
	// pod is set for a tool run as its image in the pod model.
	pod bool
	// pulls is set for a tool that pulls and unpacks its base inside the
	// timed cold build, as every tool does in a CI pod that starts empty
	// (and as the issue's own table measured the peers).
	pulls bool
	// prepare does the untimed set-up of a context for cold builds (the
	// base pulled into a local store, where the tool keeps one) and
	// returns the cold build: no cache, then the push.
	prepare func(b *testing.B, reg *harness.Registry, base string) func(job) (result, error)
	// rebuild sets the tool up for the rebuild benchmark (nil: none).
	rebuild rebuilder
	note    string
}

// peers are the tools compared, in the order they run within a
// repetition. Where a tool has a native mode and a pod mode both are
// here; kaniko has no native mode (it rewrites /). BuildKit, docker and
// buildah run natively only: in a default pod (no --privileged, default
// capabilities) buildah cannot mount or unshare, and neither buildkitd nor
// dockerd can run. SLIPWAY_BENCH_KANIKO_FORK=module@version adds a kaniko
// fork built by kaniko.sh (the proxy did not serve
// github.com/osscontainertools/kaniko@v1.28.3 on 2026-11-30).
func peers() []tool {
	ts := []tool{
		{name: "slipway-pod", pod: true, pulls: true, prepare: slipwayPodCold, rebuild: slipwayPodRebuild,
			note: "executor image, in-place"},
		{name: "slipway-host", pulls: true, prepare: slipwayHostCold, rebuild: slipwayRebuild, note: "binary, chroot mode"},
		{name: "kaniko-pod", pod: true, pulls: true, prepare: kanikoCold("", kanikoVersion), rebuild: kanikoRebuild("", kanikoVersion),
			note: "kaniko " + kanikoVersion},
	}
	if fork := os.Getenv("SLIPWAY_BENCH_KANIKO_FORK"); fork != "" {
		module, version, _ := strings.Cut(fork, "@")
		ts = append(ts, tool{name: "kaniko-fork-pod", pod: true, pulls: true, prepare: kanikoCold(module, version),
			rebuild: kanikoRebuild(module, version), note: fork})
	}
	return append(ts,
		tool{name: "buildkit", prepare: buildkitCold, rebuild: buildkitRebuild, note: "buildkitd v0.34.2 (docker's BuildKit needs buildx)"},
		tool{name: "docker", prepare: dockerCold, rebuild: dockerRebuild, note: "legacy builder; rebuild: warm daemon cache"},
		tool{name: "buildah", prepare: buildahCold, rebuild: buildahRegistryRebuild, note: "--isolation chroot; rebuild: registry cache"},
		tool{name: "buildkit-pull", pulls: true, prepare: buildkitPullCold, note: "an emptied daemon per build: pulls its base in the timed build"},
		tool{name: "buildah-pull", pulls: true, prepare: buildahPullCold, note: "a fresh store per build: pulls its base in the timed build"},
	)
}

// kanikoVersion is the last release of kaniko upstream.
const kanikoVersion = "v1.24.0"

func slipwayHostCold(b *testing.B, reg *harness.Registry, _ string) func(job) (result, error) {
	return func(j job) (result, error) { return slipwayCold(b, reg, j) }
}

func slipwayPodCold(b *testing.B, reg *harness.Registry, _ string) func(job) (result, error) {
	image := executorImage(b)
	return func(j job) (result, error) {
		return runSlipway(b, podCommand(b, image, j.contextDir, slipwayPodArgs(reg, j)...))
	}
}

func kanikoCold(module, version string) func(*testing.B, *harness.Registry, string) func(job) (result, error) {
	return func(b *testing.B, reg *harness.Registry, _ string) func(job) (result, error) {
		image := kanikoExecutorImage(b, module, version)
		return func(j job) (result, error) {
			return runKaniko(b, podCommand(b, image, j.contextDir, kanikoArgs(reg, j)...))
		}
	}
}

func dockerCold(b *testing.B, _ *harness.Registry, base string) func(job) (result, error) {
	dockerPreload(b, base)
	return func(j job) (result, error) { return dockerBuildPush(b, j, false) }
}

func buildahCold(b *testing.B, _ *harness.Registry, base string) func(job) (result, error) {
	store := newBuildahStore(b)
	store.preload(b, base)
	return func(j job) (result, error) { return store.buildPush(b, j, false) }
}

// buildahPullCold is buildah as a CI runner that keeps nothing has it: a
// new store for every build, so that it pulls and unpacks its base inside
// the timed build, as Slipway and kaniko do. The report takes the ratios
// against both kinds of peer (printReport). The stores go at the end of the
// context's benchmark, not between the tools' turns.
func buildahPullCold(b *testing.B, _ *harness.Registry, _ string) func(job) (result, error) {
	buildahDriver(b)
	return func(j job) (result, error) { return newBuildahStore(b).buildPush(b, j, false) }
}

// slipwayPodRebuild is a fresh executor container for every build, its
// only state the cache repository in the registry: a CI pod.
func slipwayPodRebuild(b *testing.B, reg *harness.Registry, _ string) (buildFunc, error) {
	image := executorImage(b)
	repo := fmt.Sprintf("%s/bench/slipway-pod-cache-%d", reg.Host, podSeq.Add(1))
	return func(j job) (result, error) {
		return runSlipway(b, podCommand(b, image, j.contextDir, slipwayPodArgs(reg, j, "--cache=true", "--cache-repo", repo)...))
	}, nil
}

// kanikoRebuild is kaniko's --cache with its cache repository in the
// registry, a fresh container for every build.
func kanikoRebuild(module, version string) rebuilder {
	return func(b *testing.B, reg *harness.Registry, _ string) (buildFunc, error) {
		image := kanikoExecutorImage(b, module, version)
		repo := fmt.Sprintf("%s/bench/kaniko-cache-%d", reg.Host, podSeq.Add(1))
		return func(j job) (result, error) {
			return runKaniko(b, podCommand(b, image, j.contextDir, kanikoArgs(reg, j, "--cache=true", "--cache-repo", repo)...))
		}, nil
	}
}
