package parity

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"

	"github.com/slipway-build/slipway/engine/run"
)

func TestMain(m *testing.M) {
	// RUN's init re-executes this test binary; it must take over before
	// the test framework parses its flags.
	run.MaybeReexec()
	// A case spends most of its time waiting on buildkitd, dockerd and the
	// registry, so more cases than cores run side by side, unless -parallel
	// says otherwise.
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet && runtime.GOMAXPROCS(0) < 4 {
		_ = flag.Set("test.parallel", "4")
	}
	if testing.Short() {
		// `make unit` promises Go only; these need root, dockerd and the
		// registry.
		fmt.Println("parity: skipped with -short: the tests compare against docker build as root")
		os.Exit(0)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "parity tests need root: chroot-mode RUN, device nodes, buildkitd and dockerd's socket")
		os.Exit(1)
	}
	// BuildKit is the reference and docker the second opinion: without
	// them these tests would prove nothing, so they fail instead of
	// skipping (CI's .ci/deps starts both).
	if err := startBuildKit(); err != nil {
		fmt.Fprintf(os.Stderr, "BuildKit %s, the parity reference, is not available: %v\n", buildkitVersion, err)
		os.Exit(1)
	}
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "dockerd is not reachable (`docker version` failed: %v): %s\nstart it (CI's .ci/run does: apt-get install docker.io; dockerd &)\n", err, out)
		os.Exit(1)
	}
	os.Exit(m.Run())
}
