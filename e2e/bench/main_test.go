package bench

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"

	"github.com/slipway-build/slipway/e2e/harness"
)

// slipwayBinary is slipway-build, built for this run as `make build` does,
// beside the other step binaries (the executor image holds them all).
// benchDir is the run's scratch directory.
var slipwayBinary, benchDir string

// loadAtStart is /proc/loadavg when the run began: the machine is shared,
// and the report says how busy it was.
var loadAtStart string

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
	loadAtStart = loadAverage()
	dir, err := os.MkdirTemp("", "slipway-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	benchDir = dir
	if slipwayBinary, err = slipwayBuild(dir); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	buildkit.stop()
	printReport(os.Stdout)
	if slipwayImage != "" {
		_ = exec.Command("docker", "rmi", "--force", slipwayImage).Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// loadAverage is the 1, 5 and 15 minute load averages.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// slipwayBuild is $SLIPWAY_BUILD_BIN when set (a binary to measure as it
// is, e.g. bin/slipway-build of `make build` by its absolute path: go test
// runs in e2e/bench; its directory holds the other step binaries for the
// executor image), or else the step binaries built from this tree into
// dir/bin with the Makefile's flags, so that the numbers are those of the
// shipped binaries.
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
	mains, err := filepath.Glob("../../steps/*/main.go")
	if err != nil || len(mains) == 0 {
		return "", fmt.Errorf("no step binaries under steps/ (%v)", err)
	}
	bin := filepath.Join(dir, "bin")
	for _, m := range mains {
		step := filepath.Base(filepath.Dir(m))
		build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", filepath.Join(bin, "slipway-"+step), "../../steps/"+step)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building slipway-%s (or set SLIPWAY_BUILD_BIN to a built slipway-build): %v\n%s", step, err, out)
		}
	}
	return filepath.Join(bin, "slipway-build"), nil
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
	// pulls: the tool pulled and unpacked its base inside the timed build.
	pulls bool
	note  string
}

// isSlipway tells Slipway's own rows from its peers'.
func (r row) isSlipway() bool { return strings.HasPrefix(r.tool, "slipway") }

var (
	reportMu sync.Mutex
	report   []row
)

func record(r row) {
	reportMu.Lock()
	defer reportMu.Unlock()
	report = append(report, r)
}

// printReport writes every measurement of the run as tables: each tool's
// time, CPU time and memory, with its time as a multiple of the fastest
// tool's in the same section; Slipway's seconds per phase; the scaling
// points with their slopes. The load average, at the start and at the
// end, says how busy the shared machine was.
func printReport(w io.Writer) {
	reportMu.Lock()
	defer reportMu.Unlock()
	if len(report) == 0 && len(scaling) == 0 {
		return
	}
	// Per section: the fastest row, the fastest peer's, and the fastest
	// of the peers that pull their base in the timed build as Slipway
	// does (as every tool does in a CI pod that starts empty).
	fastest, peer, pullingPeer := map[string]float64{}, map[string]float64{}, map[string]float64{}
	lower := func(m map[string]float64, section string, s float64) {
		if s > 0 && (m[section] == 0 || s < m[section]) {
			m[section] = s
		}
	}
	for _, r := range report {
		s := r.res.total.wall.Seconds()
		lower(fastest, r.section, s)
		if !r.isSlipway() {
			lower(peer, r.section, s)
			if r.pulls {
				lower(pullingPeer, r.section, s)
			}
		}
	}
	fmt.Fprintf(w, "\nSlipway benchmark (load average %s at the start, %s at the end; %d CPUs)\n", loadAtStart, loadAverage(), runtime.NumCPU())
	fmt.Fprintln(w, "wall = build+push, the fastest of the repetitions (peaks: the highest); CPU = user+system (pods: the container's cgroup; docker: dockerd, containerd and the RUN containers' cgroup);")
	fmt.Fprintln(w, "peak = peak RSS of the largest process (pods: highest VmHWM in the container); tree = peak summed RSS of the process tree (docker: dockerd and its children)")
	fmt.Fprintln(w, "vs peer = wall over the fastest other tool's, base preloaded or not; vs pulling = over the fastest other tool that pulled its base in the timed build, as in a CI pod that starts empty")
	if len(report) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "section\ttool\twall s\tCPU s\tpeak MiB\ttree MiB\tvs fastest\tvs peer\tvs pulling\tbuild s\tpush s\tnote\t")
		for _, r := range report {
			if r.res.total.wall == 0 {
				fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t%s\t\n", r.section, r.tool, r.note)
				continue
			}
			note := r.note
			if r.idle > 0 {
				note = strings.TrimPrefix(fmt.Sprintf("%s; dockerd idle %.0f MiB", note, mib(r.idle)), "; ")
			}
			wall := r.res.total.wall.Seconds()
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%s\t%s\t%.0f\t%s\t%s\t%s\t%.2f\t%s\t%s\t\n",
				r.section, r.tool, wall, cpuSeconds(r.res.total), orDash(r.res.total.maxRSS),
				mib(r.res.total.treePeak), ratio(wall, fastest[r.section]), ratio(wall, peer[r.section]),
				ratio(wall, pullingPeer[r.section]), r.res.build.wall.Seconds(), seconds(r.res.push), note)
		}
		tw.Flush()
		printPhases(w, report)
	}
	printScaling(w)
}

// ratio is wall as a multiple of the reference, or a dash without one.
func ratio(wall, reference float64) string {
	if reference == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2fx", wall/reference)
}

// printPhases is Slipway's own account of where its time went (engine/phase):
// pull counts the reading of layer blobs while they are unpacked; phases
// that overlap are each counted in full.
func printPhases(w io.Writer, rows []row) {
	var with []row
	for _, r := range rows {
		if r.res.phases != nil {
			with = append(with, r)
		}
	}
	if len(with) == 0 {
		return
	}
	fmt.Fprintln(w, "\nSlipway seconds per phase, from its debug log. rest = wall minus the phases: the container's or process's start, the context,")
	fmt.Fprintln(w, "cache lookups and waiting (negative where phases overlapped); headers = reading layers' tar headers for a sparse root")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "section\ttool\twall s\t"+strings.Join(phaseNames, "\t")+"\trest\t")
	for _, r := range with {
		wall := r.res.total.wall.Seconds()
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t", r.section, r.tool, wall)
		rest := wall
		for _, p := range phaseNames {
			fmt.Fprintf(tw, "%.2f\t", r.res.phases[p])
			rest -= r.res.phases[p]
		}
		fmt.Fprintf(tw, "%.2f\t\n", rest)
	}
	tw.Flush()
}

func cpuSeconds(m measurement) string {
	if m.cpu == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", m.cpu.Seconds())
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
