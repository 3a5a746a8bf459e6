package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slipway-build/slipway/e2e/harness"
)

// buildkitDaemon is a buildkitd of the benchmark's own: BuildKit v0.34.2
// as e2e/parity/buildkit.sh builds it, started with its own socket and
// state directory, so that its CPU time is this run's alone and its cache
// can be emptied between rebuilds without touching the daemon the parity
// tests share. It runs as the test binary's child; TestMain stops it.
type buildkitDaemon struct {
	once     sync.Once
	err      error
	cmd      *exec.Cmd
	addr     string
	buildctl string
	root     string
}

var buildkit buildkitDaemon

// start builds (once per machine) and starts the daemon.
func (d *buildkitDaemon) start(b *testing.B) *buildkitDaemon {
	b.Helper()
	d.once.Do(func() { d.err = d.launch() })
	if d.err != nil {
		b.Fatal(d.err)
	}
	return d
}

func (d *buildkitDaemon) launch() error {
	script := exec.Command("./buildkit.sh")
	script.Dir = "../parity"
	var stderr strings.Builder
	script.Stderr = &stderr
	out, err := script.Output()
	if err != nil {
		return fmt.Errorf("e2e/parity/buildkit.sh: %v\n%s", err, stderr.String())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "SLIPWAY_BUILDCTL="); ok {
			d.buildctl = v
		}
	}
	if d.buildctl == "" {
		return fmt.Errorf("e2e/parity/buildkit.sh named no buildctl: %q", out)
	}
	d.root = filepath.Join(benchDir, "buildkit")
	d.addr = "unix://" + filepath.Join(d.root, "buildkitd.sock")
	log, err := os.Create(filepath.Join(benchDir, "buildkitd.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	// Host networking: the registry listens on loopback.
	d.cmd = exec.Command(filepath.Join(filepath.Dir(d.buildctl), "buildkitd"),
		"--oci-worker-net=host", "--addr", d.addr, "--root", d.root)
	d.cmd.Stdout, d.cmd.Stderr = log, log
	// It goes with the benchmark binary, even one killed by a timeout.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("starting buildkitd: %w", err)
	}
	for range 100 {
		if exec.Command(d.buildctl, "--addr", d.addr, "debug", "workers").Run() == nil {
			return nil
		}
		time.Sleep(300 * time.Millisecond)
	}
	d.stop()
	logged, _ := os.ReadFile(log.Name())
	return fmt.Errorf("buildkitd did not answer on %s:\n%s", d.addr, tail(string(logged), 20))
}

// stop ends the daemon, if this run started one, and waits for it.
func (d *buildkitDaemon) stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
	}
	d.cmd = nil
}

// command runs buildctl against the daemon. The daemon does the work: its
// CPU time (with the runc processes it waited for, which ran the RUN
// steps) and its process tree are what is measured.
func (d *buildkitDaemon) command(args ...string) command {
	pid := d.cmd.Process.Pid
	return command{
		argv:   append([]string{d.buildctl, "--addr", d.addr}, args...),
		env:    os.Environ(),
		roots:  func(int) []int { return []int{pid} },
		memory: clientOnly,
		cpu: func() func() time.Duration {
			before := processCPU(pid)
			return func() time.Duration { return processCPU(pid) - before }
		},
	}
}

// buildArgs are buildctl's flags to build j with the Dockerfile frontend and
// push it.
func buildArgs(j job, extra ...string) []string {
	return append([]string{"build", "--progress=plain",
		"--frontend", "dockerfile.v0",
		"--local", "context=" + j.contextDir, "--local", "dockerfile=" + j.contextDir,
		"--opt", "build-arg:BASE=" + j.base,
		"--output", "type=image,name=" + j.dest + ",push=true,registry.insecure=true",
	}, extra...)
}

// prune empties the daemon's cache and content store: a fresh daemon.
func (d *buildkitDaemon) prune(ctx context.Context) error {
	_, err := d.command("prune", "--all").run(ctx)
	return err
}

// buildkitCold preloads the base into the daemon (a build of FROM it
// alone), as docker and buildah get it, and then builds with --no-cache.
func buildkitCold(b *testing.B, reg *harness.Registry, base string) func(job) (result, error) {
	d := buildkit.start(b)
	if err := d.preload(b, reg, base); err != nil {
		b.Fatal(err)
	}
	return func(j job) (result, error) {
		m, err := d.command(buildArgs(j, "--no-cache")...).run(timeout(b))
		return result{total: m, build: m}, err
	}
}

// buildkitPullCold is BuildKit as a CI pod that starts empty has it: the
// daemon is emptied before the build, so that it pulls and unpacks its
// base inside the timed build, as Slipway and kaniko do. The daemon is
// shared with the buildkit row: the build leaves the base pulled, as the
// preload does, for that row's next turn.
func buildkitPullCold(b *testing.B, _ *harness.Registry, _ string) func(job) (result, error) {
	d := buildkit.start(b)
	return func(j job) (result, error) {
		if err := d.prune(timeout(b)); err != nil {
			return result{}, fmt.Errorf("emptying buildkitd: %w", err)
		}
		m, err := d.command(buildArgs(j, "--no-cache")...).run(timeout(b))
		return result{total: m, build: m}, err
	}
}

// preload has the daemon pull base, by building a Dockerfile of FROM it
// alone.
func (d *buildkitDaemon) preload(b *testing.B, reg *harness.Registry, base string) error {
	dir := buildContext{name: "buildkit-preload", files: map[string]string{"Dockerfile": "ARG BASE\nFROM ${BASE}\nRUN true\n"}}.write(b)
	pre := job{contextDir: dir, base: base, dest: reg.Host + "/bench/buildkit-preload:latest"}
	if _, err := d.command(buildArgs(pre)...).run(timeout(b)); err != nil {
		return fmt.Errorf("preloading %s into buildkitd: %w", base, err)
	}
	return nil
}

// buildkitRebuild empties the daemon before every build, which then has
// only its cache in the registry (--import-cache/--export-cache
// type=registry, mode=max): a fresh BuildKit in a CI pod.
func buildkitRebuild(b *testing.B, reg *harness.Registry, _ string) (buildFunc, error) {
	d := buildkit.start(b)
	cache := fmt.Sprintf("type=registry,ref=%s/bench/buildkit-cache-%d:cache,registry.insecure=true", reg.Host, podSeq.Add(1))
	return func(j job) (result, error) {
		if err := d.prune(timeout(b)); err != nil {
			return result{}, fmt.Errorf("emptying buildkitd: %w", err)
		}
		m, err := d.command(buildArgs(j, "--import-cache", cache, "--export-cache", cache+",mode=max")...).run(timeout(b))
		return result{total: m, build: m}, err
	}, nil
}
