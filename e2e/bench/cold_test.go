package bench

import (
	"fmt"
	"testing"

	"github.com/slipway-build/slipway/e2e/harness"
)

// BenchmarkColdBuild builds each context with every peer (peers(): Slipway
// in a pod and as a binary, kaniko in a pod, docker and buildah), none of
// them with a cache, and pushes each result; the tools take turns within
// each repetition. Metrics: <tool>-s is the wall time of build+push,
// <tool>-cpu-s its CPU time, <tool>-peak-MiB the peak RSS of the largest
// process, <tool>-tree-MiB the peak summed RSS of the process tree (for
// docker: dockerd and its children), <tool>-vs-fastest the time over the
// fastest tool's.
func BenchmarkColdBuild(b *testing.B) {
	reg := harness.StartRegistry(b)
	for _, c := range []buildContext{busyboxApp(), debianApp(), multiStageGo(), manyFiles(), largeFile()} {
		b.Run(c.name, func(b *testing.B) { coldBuild(b, reg, c) })
	}
}

func coldBuild(b *testing.B, reg *harness.Registry, c buildContext) {
	var tools []tool
	for _, t := range peers() {
		if benchTool(t.name) {
			tools = append(tools, t)
		}
	}
	var idle int64
	results := buildInTurns(b, reg, c, tools, func() { idle = dockerIdleRSS() })
	for _, t := range tools {
		r := row{section: "cold/" + c.name, tool: t.name, res: results[t.name], pulls: t.pulls, note: t.note}
		if t.name == "docker" {
			r.idle = idle
		}
		record(r)
	}
}

// buildInTurns builds c with each of tools reps(b) times, the tools taking
// turns within each repetition, and returns each tool's fastest run. Everything
// before the timer starts is set-up none of the tools is measured on: the
// base image pushed, loaded where a tool keeps a local store, the pod
// images built; then ready runs. Before each turn, startFromQuietDisk.
// The metrics go to b.
func buildInTurns(b *testing.B, reg *harness.Registry, c buildContext, tools []tool, ready func()) map[string]result {
	base := c.base(b, reg)
	dir := c.write(b)
	builds := map[string]func(job) (result, error){}
	for _, t := range tools {
		builds[t.name] = t.prepare(b, reg, base)
	}
	if ready != nil {
		ready()
	}
	b.ResetTimer()
	results := map[string]result{}
	for i := range reps(b) {
		for _, t := range tools {
			j := job{contextDir: dir, base: base, dest: fmt.Sprintf("%s/bench/%s-%s:%d", reg.Host, c.name, t.name, i)}
			if err := startFromQuietDisk(); err != nil {
				b.Fatal(err)
			}
			r, err := builds[t.name](j)
			if err != nil {
				b.Fatalf("%s, build of %s: %v", t.name, c.name, err)
			}
			results[t.name] = fastest(results[t.name], r)
		}
	}
	b.StopTimer()
	reportTools(b, "", results)
	return results
}

// reportTools reports each tool's metrics, with prefix before the names
// (a rebuild scenario's letter), and each tool's time over the fastest's.
// The framework's own ns/op would add the tools up and is dropped.
func reportTools(b *testing.B, prefix string, results map[string]result) {
	b.ReportMetric(0, "ns/op")
	var fastest float64
	for _, r := range results {
		if s := r.total.wall.Seconds(); s > 0 && (fastest == 0 || s < fastest) {
			fastest = s
		}
	}
	for tool, r := range results {
		b.ReportMetric(r.total.wall.Seconds(), prefix+tool+"-s")
		b.ReportMetric(r.total.cpu.Seconds(), prefix+tool+"-cpu-s")
		if r.total.maxRSS > 0 {
			b.ReportMetric(mib(r.total.maxRSS), prefix+tool+"-peak-MiB")
		}
		b.ReportMetric(mib(r.total.treePeak), prefix+tool+"-tree-MiB")
		if fastest > 0 {
			b.ReportMetric(r.total.wall.Seconds()/fastest, prefix+tool+"-vs-fastest")
		}
	}
}

// fastest keeps, of two runs of one tool, the one with the lower wall time
// (its CPU time and phases with it) and the higher memory peaks of the two:
// the minimum is the figure least disturbed by load from elsewhere, the
// peak the one a pod's memory limit must allow for.
func fastest(best, r result) result {
	if best.total.wall == 0 && best.phases == nil {
		return r
	}
	out := best
	if r.total.wall < best.total.wall {
		out = r
	}
	out.total.maxRSS = max(best.total.maxRSS, r.total.maxRSS)
	out.total.treePeak = max(best.total.treePeak, r.total.treePeak)
	return out
}
