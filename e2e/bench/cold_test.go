package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/slipway-build/slipway/e2e/harness"
)

// BenchmarkColdBuild builds each context with slipway-build, docker and
// buildah, none of them with a cache, and pushes each result. Metrics:
// <tool>-s is the wall time of build+push, <tool>-peak-MiB ru_maxrss (the
// largest process), <tool>-tree-MiB the peak summed RSS of the process tree
// (for docker: dockerd and its children), ratio-<tool> slipway's time over
// that tool's (below 1: slipway is faster).
func BenchmarkColdBuild(b *testing.B) {
	reg := harness.StartRegistry(b)
	for _, c := range []buildContext{busyboxApp(), debianApp(), manyFiles(), largeFile()} {
		b.Run(c.name, func(b *testing.B) { coldBuild(b, reg, c) })
	}
}

func coldBuild(b *testing.B, reg *harness.Registry, c buildContext) {
	// Everything up to the timer reset is set-up none of the tools is
	// measured on: the base image pushed, and loaded where a tool keeps a
	// local store.
	base := c.base(b, reg)
	dir := c.write(b)
	dockerPreload(b, base)
	store := newBuildahStore(b)
	store.preload(b, base)
	idle := dockerIdleRSS()
	b.ResetTimer()

	var slip, dock, bah result
	for i := range b.N {
		dest := func(tool string) job {
			return job{contextDir: dir, base: base, dest: fmt.Sprintf("%s/bench/%s-%s:%d", reg.Host, c.name, tool, i)}
		}
		r, err := slipwayCold(b, reg, dest("slipway"))
		if err != nil {
			b.Fatalf("slipway-build of %s: %v", c.name, err)
		}
		slip = accumulate(slip, r)
		if r, err = dockerBuildPush(b, dest("docker"), false); err != nil {
			b.Fatalf("docker build of %s: %v", c.name, err)
		}
		dock = accumulate(dock, r)
		if r, err = store.buildPush(b, dest("buildah"), false); err != nil {
			b.Fatalf("buildah bud of %s: %v", c.name, err)
		}
		bah = accumulate(bah, r)
	}
	b.StopTimer()
	slip, dock, bah = slip.per(b.N), dock.per(b.N), bah.per(b.N)

	section := "cold/" + c.name
	record(row{section: section, tool: "slipway", res: slip})
	record(row{section: section, tool: "docker", res: dock, idle: idle})
	record(row{section: section, tool: "buildah", res: bah, note: "storage " + store.driver})
	reportTools(b, "", map[string]result{"slipway": slip, "docker": dock, "buildah": bah})
}

// reportTools reports each tool's metrics, with prefix before the names
// (a rebuild scenario's letter), and slipway's time ratios to the others.
// The framework's own ns/op would add the three tools up and is dropped.
func reportTools(b *testing.B, prefix string, results map[string]result) {
	b.ReportMetric(0, "ns/op")
	for tool, r := range results {
		b.ReportMetric(r.total.wall.Seconds(), prefix+tool+"-s")
		if r.total.maxRSS > 0 {
			b.ReportMetric(mib(r.total.maxRSS), prefix+tool+"-peak-MiB")
		}
		b.ReportMetric(mib(r.total.treePeak), prefix+tool+"-tree-MiB")
	}
	s, ok := results["slipway"]
	if !ok {
		return
	}
	for tool, r := range results {
		if tool != "slipway" && r.total.wall > 0 {
			b.ReportMetric(s.total.wall.Seconds()/r.total.wall.Seconds(), prefix+"ratio-"+tool)
		}
	}
}

// accumulate adds up times over b.N runs and keeps the highest peaks.
func accumulate(sum, r result) result {
	return result{total: sum.total.add(r.total), build: sum.build.add(r.build), push: sum.push.add(r.push)}
}

// per turns accumulated times into the mean of n runs.
func (r result) per(n int) result {
	div := func(m measurement) measurement {
		m.wall /= time.Duration(n)
		return m
	}
	return result{total: div(r.total), build: div(r.build), push: div(r.push)}
}
