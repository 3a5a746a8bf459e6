package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slipway-build/slipway/e2e/harness"
)

// buildTimeout bounds one tool's build of one context; the slowest, the
// Debian app, takes about a minute here.
const buildTimeout = 15 * time.Minute

// job is one build of a context by one tool: where the context is, the
// base image it builds FROM (passed as the BASE build-arg) and where the
// result goes.
type job struct {
	contextDir string
	base       string
	dest       string
}

// result is a tool's measurement of a job, with build and push apart where
// the tool runs them as separate commands, and slipway-build's seconds per
// phase.
type result struct {
	total, build, push measurement
	phases             map[string]float64
}

// slipwayCold runs slipway-build as a user does: chroot mode, a fresh work
// directory, pulling the base and pushing the result.
func slipwayCold(b *testing.B, reg *harness.Registry, j job) (result, error) {
	return runSlipway(b, slipwayCommand(b, reg, j))
}

// slipwayCommand runs slipway-build with its debug log in JSON, which ends
// with the seconds per phase. SLIPWAY_BENCH_VERBOSITY (any value) prints
// the log, with its timestamps, to stderr, to see where a build spends its
// time; the benchmark's own log would truncate it.
func slipwayCommand(b *testing.B, reg *harness.Registry, j job, extra ...string) command {
	work := b.TempDir()
	argv := []string{slipwayBinary,
		"--mode", "chroot",
		"--context", "dir://" + j.contextDir,
		"--build-arg", "BASE=" + j.base,
		"--destination", j.dest,
		"--insecure-registry", reg.Host,
		"--work-dir", filepath.Join(work, "work"),
		"--verbosity", "debug", "--log-format", "json",
	}
	if !slices.Contains(extra, "--cache-dir") {
		// The default, /cache, is on the host: a cold build gets an
		// empty one of its own.
		argv = append(argv, "--cache-dir", filepath.Join(work, "cache"))
	}
	argv = append(argv, extra...)
	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + work}
	if dir := os.Getenv("SLIPWAY_BENCH_CPU_PROFILE"); dir != "" {
		env = append(env, "SLIPWAY_CPU_PROFILE="+filepath.Join(dir, fmt.Sprintf("slipway-host-%d.pprof", podSeq.Add(1))))
	}
	return command{
		argv:       argv,
		env:        env,
		memory:     ownRusage,
		showOutput: verboseOutput(j.dest),
	}
}

// docker runs the docker CLI against the running dockerd with the legacy
// builder, which is the Docker 20.10 reference the parity tests use.
func docker(ctx context.Context, args ...string) error {
	_, err := dockerCommand(args...).run(ctx)
	return err
}

// dockerDaemons are the processes that do docker's work.
var dockerDaemons = []string{"dockerd", "containerd", "containerd-shim"}

func dockerCommand(args ...string) command {
	return command{
		argv: append([]string{"docker"}, args...),
		// No buildx is installed: the client must not look for it.
		env: append(os.Environ(), "DOCKER_BUILDKIT=0"),
		// The client only streams the context and prints; the work is
		// done by dockerd and what it starts (containerd, shims, RUN
		// containers), so that is the tree sampled.
		roots:  func(int) []int { return pidsNamed(dockerDaemons...) },
		memory: clientOnly,
		cpu:    daemonCPU(cgroupParent{}, dockerDaemons...),
	}
}

// dockerIdleRSS is the summed RSS of dockerd's tree when it builds nothing,
// to read docker's tree-MiB against.
func dockerIdleRSS() int64 {
	return treeRSS(pidsNamed(dockerDaemons...))
}

// dockerPreload puts the base image into dockerd before any timed build,
// and takes it out when b ends.
func dockerPreload(b *testing.B, base string) {
	b.Helper()
	if err := docker(context.Background(), "pull", "-q", base); err != nil {
		b.Fatalf("making the base image available to dockerd: %v", err)
	}
	b.Cleanup(func() { dockerRemove(b, base) })
}

func dockerRemove(b *testing.B, ref string) {
	if err := docker(context.Background(), "rmi", "-f", ref); err != nil {
		b.Logf("removing %s from dockerd: %v", ref, err)
	}
}

// dockerBuildPush builds j's context and pushes it. cached keeps dockerd's
// build cache in play (the rebuild benchmark); a cold build passes
// --no-cache. The tag is removed when b ends, which prunes its parent
// images too.
func dockerBuildPush(b *testing.B, j job, cached bool) (result, error) {
	argv := []string{"build", "--network", "host", "--force-rm", "-t", j.dest, "--build-arg", "BASE=" + j.base}
	if !cached {
		argv = append(argv, "--no-cache")
	}
	// The RUN containers go under a cgroup of their own, whose CPU time
	// is added to the daemons'.
	parent := newCgroupParent()
	b.Cleanup(parent.remove)
	argv = append(argv, parent.dockerArgs()...)
	ctx := timeout(b)
	c := dockerCommand(append(argv, j.contextDir)...)
	c.cpu = daemonCPU(parent, dockerDaemons...)
	build, err := c.run(ctx)
	if err != nil {
		return result{}, err
	}
	b.Cleanup(func() { dockerRemove(b, j.dest) })
	push, err := dockerCommand("push", j.dest).run(ctx)
	if err != nil {
		return result{}, err
	}
	return result{total: build.add(push), build: build, push: push}, nil
}

// buildahStore is a private buildah storage: its own --root and --runroot
// under a temp dir, so that nothing in /var/lib/containers is touched and
// every cold build starts empty.
type buildahStore struct {
	root, runroot, driver string
}

func newBuildahStore(b *testing.B) *buildahStore {
	b.Helper()
	dir := b.TempDir()
	s := &buildahStore{root: filepath.Join(dir, "root"), runroot: filepath.Join(dir, "run"), driver: buildahDriver(b)}
	// Registered after TempDir, so it runs first: the store's mounts must
	// be gone before the directory is removed.
	b.Cleanup(func() { s.remove(b) })
	return s
}

var buildahDriverChoice string

// buildahDriver is overlay where buildah can mount it here, vfs otherwise
// (vfs copies each layer in full, which makes buildah slower).
func buildahDriver(b *testing.B) string {
	if buildahDriverChoice != "" {
		return buildahDriverChoice
	}
	dir := b.TempDir()
	probe := exec.Command("buildah", "--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
		"--storage-driver", "overlay", "from", "scratch")
	if out, err := probe.CombinedOutput(); err != nil {
		b.Logf("buildah cannot use overlay here, using vfs: %v: %s", err, out)
		buildahDriverChoice = "vfs"
	} else {
		buildahDriverChoice = "overlay"
	}
	s := &buildahStore{root: filepath.Join(dir, "root"), runroot: filepath.Join(dir, "run"), driver: "overlay"}
	s.remove(b)
	return buildahDriverChoice
}

func (s *buildahStore) command(args ...string) command {
	return command{
		argv:   append([]string{"buildah", "--root", s.root, "--runroot", s.runroot, "--storage-driver", s.driver}, args...),
		env:    append(os.Environ(), "BUILDAH_ISOLATION=chroot"),
		memory: ownRusage,
	}
}

func (s *buildahStore) run(ctx context.Context, args ...string) (measurement, error) {
	return s.command(args...).run(ctx)
}

// remove deletes the store's containers and images, then unmounts what
// containers/storage left mounted under the root, so that the temp dir can
// be removed.
func (s *buildahStore) remove(b *testing.B) {
	ctx := context.Background()
	if _, err := s.run(ctx, "rm", "--all"); err != nil {
		b.Logf("buildah rm --all: %v", err)
	}
	if _, err := s.run(ctx, "rmi", "--all", "--force"); err != nil && !strings.Contains(err.Error(), "no images") {
		b.Logf("buildah rmi --all: %v", err)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	var under []string
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (strings.HasPrefix(f[4], s.root) || strings.HasPrefix(f[4], s.runroot)) {
			under = append(under, f[4])
		}
	}
	// Deepest first, so that no mount hides another.
	for i := len(under) - 1; i >= 0; i-- {
		if err := exec.Command("umount", under[i]).Run(); err != nil {
			b.Logf("umount %s: %v", under[i], err)
		}
	}
}

// buildahPreload pulls the base into the store before any timed build.
func (s *buildahStore) preload(b *testing.B, base string) {
	b.Helper()
	if _, err := s.run(timeout(b), "pull", "--quiet", "--tls-verify=false", base); err != nil {
		b.Fatalf("pulling the base image into buildah's store: %v", err)
	}
}

// buildPush runs `buildah bud` then `buildah push`. layers is buildah's
// own layer cache: off for cold builds, on for the rebuild benchmark;
// extra goes to bud.
func (s *buildahStore) buildPush(b *testing.B, j job, layers bool, extra ...string) (result, error) {
	ctx := timeout(b)
	argv := append([]string{"bud", "--isolation", "chroot", "--network", "host",
		fmt.Sprintf("--layers=%t", layers), "--tls-verify=false", "--quiet",
		"--build-arg", "BASE=" + j.base, "-t", j.dest}, extra...)
	build, err := s.run(ctx, append(argv, j.contextDir)...)
	if err != nil {
		return result{}, err
	}
	push, err := s.run(ctx, "push", "--quiet", "--tls-verify=false", j.dest, "docker://"+j.dest)
	if err != nil {
		return result{}, err
	}
	return result{total: build.add(push), build: build, push: push}, nil
}

// timeout is a context that ends when one build has taken too long, or
// when b ends.
func timeout(b *testing.B) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	b.Cleanup(cancel)
	return ctx
}
