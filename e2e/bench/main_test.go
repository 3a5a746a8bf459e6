package bench

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"

	"github.com/slipway-build/slipway/e2e/harness"
)

// slipwayBinary is slipway-build, built for this run as `make build` does.
var slipwayBinary string

func TestMain(m *testing.M) {
	// `make test` runs this package too, for the unit tests of the
	// measuring code: the tools and the binary are only for benchmarks.
	flag.Parse()
	if flag.Lookup("test.bench").Value.String() == "" {
		os.Exit(m.Run())
	}
	if err := checkTools(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "slipway-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if slipwayBinary, err = slipwayBuild(dir); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	printReport(os.Stdout)
	os.RemoveAll(dir)
	os.Exit(code)
}

// slipwayBuild is $SLIPWAY_BUILD_BIN when set (a binary to measure as it
// is, e.g. bin/slipway-build of `make build` by its absolute path: go test
// runs in e2e/bench), or else a binary built from this tree into dir with
// the Makefile's flags, so that the numbers are those of the shipped
// binary.
func slipwayBuild(dir string) (string, error) {
	if bin := os.Getenv("SLIPWAY_BUILD_BIN"); bin != "" {
		abs, err := filepath.Abs(bin)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(abs); err != nil {
			return "", fmt.Errorf("SLIPWAY_BUILD_BIN (relative paths start in e2e/bench): %w", err)
		}
		return abs, nil
	}
	bin := filepath.Join(dir, "slipway-build")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "../../steps/build")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building slipway-build (or set SLIPWAY_BUILD_BIN to a built one): %v\n%s", err, out)
	}
	return bin, nil
}

// checkTools fails early, with the command that fixes it, when something
// the benchmarks compare against is missing: a benchmark with a tool left
// out would report ratios against nothing.
func checkTools() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the benchmarks need root: chroot-mode RUN, dockerd's socket and buildah's storage")
	}
	for _, tool := range []struct{ path, pkg string }{
		{"docker", "docker.io"},
		{"buildah", "buildah"},
		{harness.RegistryBinary, "docker-registry"},
		{harness.BusyboxBinary, "busybox-static"},
		{"debootstrap", "debootstrap"},
	} {
		if _, err := exec.LookPath(tool.path); err != nil {
			return fmt.Errorf("%s is missing: apt-get install -y %s", tool.path, tool.pkg)
		}
	}
	if out, err := exec.Command("docker", "version", "--format", "{{.Server.Version}}").CombinedOutput(); err != nil {
		return fmt.Errorf("dockerd is not reachable (`docker version`: %v): %s\nstart it: dockerd &", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// row is one line of the final table.
type row struct {
	section, tool string
	res           result
	// idle is dockerd's tree RSS before the build, beside docker's peak.
	idle int64
	note string
}

var (
	reportMu sync.Mutex
	report   []row
)

func record(r row) {
	reportMu.Lock()
	defer reportMu.Unlock()
	report = append(report, r)
}

// printReport writes every measurement of the run as one table, with each
// tool's time as a multiple of slipway's in the same section.
func printReport(w *os.File) {
	reportMu.Lock()
	defer reportMu.Unlock()
	if len(report) == 0 {
		return
	}
	slipway := map[string]float64{}
	for _, r := range report {
		if r.tool == "slipway" && r.note == "" {
			slipway[r.section] = r.res.total.wall.Seconds()
		}
	}
	// Rows are in the order they were recorded: by section, tools in a
	// fixed order within it.
	rows := report
	fmt.Fprintln(w, "\nSlipway benchmark: wall time is build+push; peak = ru_maxrss of the largest process; tree = peak summed RSS of the process tree (docker: dockerd and its children)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "section\ttool\ttotal s\tbuild s\tpush s\tvs slipway\tpeak MiB\ttree MiB\tidle MiB\tnote\t")
	for _, r := range rows {
		if r.note != "" && r.res.total.wall == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\t%s\t\n", r.section, r.tool, r.note)
			continue
		}
		ratio := "-"
		if s := slipway[r.section]; s > 0 {
			ratio = fmt.Sprintf("%.2fx", r.res.total.wall.Seconds()/s)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%s\t%s\t%s\t%.0f\t%s\t%s\t\n",
			r.section, r.tool, r.res.total.wall.Seconds(), r.res.build.wall.Seconds(), seconds(r.res.push), ratio,
			orDash(r.res.total.maxRSS), mib(r.res.total.treePeak), orDash(r.idle), r.note)
	}
	tw.Flush()
}

func seconds(m measurement) string {
	if m.wall == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", m.wall.Seconds())
}

func orDash(bytes int64) string {
	if bytes == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", mib(bytes))
}
