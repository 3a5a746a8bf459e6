package bench

import (
	"fmt"
	"testing"

	"github.com/slipway-build/slipway/e2e/harness"
)

// emulatedRun is a RUN that does CPU work in the shell itself (busybox sh
// arithmetic), so that its time is the emulator's cost, not I/O.
const emulatedRun = `ARG BASE
FROM ${BASE}
RUN i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; uname -m > /arch
`

// BenchmarkEmulatedRun builds the same Dockerfile natively (linux/amd64)
// and for linux/arm64, whose RUN runs under the machine's QEMU binfmt
// handler, from one busybox index base. Metrics: native-s and emulated-s
// are the wall times of build+push, ratio-emulated the emulated time over
// the native one (the cost of a foreign RUN).
func BenchmarkEmulatedRun(b *testing.B) {
	reg := harness.StartRegistry(b)
	base := harness.BusyboxMulti(b, reg, "arm64")
	dir := buildContext{name: "emulated-run", files: map[string]string{"Dockerfile": emulatedRun}}.write(b)
	b.ResetTimer()
	var native, emulated result
	for i := range reps(b) {
		for _, p := range []struct {
			platform string
			best     *result
		}{{"linux/amd64", &native}, {"linux/arm64", &emulated}} {
			j := job{contextDir: dir, base: base, dest: fmt.Sprintf("%s/bench/emulated-%s:%d", reg.Host, p.platform[len("linux/"):], i)}
			m, err := slipwayCommand(b, reg, j, "--custom-platform", p.platform).run(timeout(b))
			if err != nil {
				b.Fatalf("slipway-build --custom-platform %s: %v", p.platform, err)
			}
			*p.best = fastest(*p.best, result{total: m, build: m})
		}
	}
	b.StopTimer()
	record(row{section: "emulated-run", tool: "slipway linux/amd64", res: native})
	record(row{section: "emulated-run", tool: "slipway linux/arm64", res: emulated, note: "RUN under QEMU"})
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(native.total.wall.Seconds(), "native-s")
	b.ReportMetric(emulated.total.wall.Seconds(), "emulated-s")
	b.ReportMetric(emulated.total.wall.Seconds()/native.total.wall.Seconds(), "ratio-emulated")
}
