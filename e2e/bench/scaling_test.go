package bench

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"

	"github.com/slipway-build/slipway/e2e/harness"
)

// scalePoint is one point of the scaling table: one tool's build of a
// context with x files, or one file of x MiB.
type scalePoint struct {
	dimension, unit string // "files"/"1k files", "file size"/"GiB"
	perUnit         float64
	x               float64
	label, tool     string
	res             result
}

// scaling holds the points of the run, under reportMu.
var scaling []scalePoint

// scalingTools are the tools BenchmarkScaling measures:
// SLIPWAY_BENCH_SCALING_TOOLS (a comma-separated list of peers' names), or
// Slipway in both its forms.
func scalingTools() []tool {
	names := []string{"slipway-pod", "slipway-host"}
	if v := os.Getenv("SLIPWAY_BENCH_SCALING_TOOLS"); v != "" {
		names = strings.Split(v, ",")
	}
	var ts []tool
	for _, t := range peers() {
		if slices.Contains(names, t.name) {
			ts = append(ts, t)
		}
	}
	return ts
}

// BenchmarkScaling is how a build's cost grows with what it changes. Two
// dimensions: the number of files a COPY brings in and a RUN then changes
// (1k, 10k, 100k), followed by a RUN that changes one file; and the size of
// one file a RUN writes (100 MiB, 1 GiB, 4 GiB of random data, which
// compresses as real content does), followed by a RUN that changes a small
// file. Each point gets a registry of its own, removed with its data when
// the point is done, so that the disk holds one point at a time (4 GiB
// takes about 13 GiB: the root, the layer and the registry's copy). The
// report gives time and peak memory per point and the slope from the
// previous point: the cost of a step must grow with what it changed, and
// memory must stay flat.
func BenchmarkScaling(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("files-%dk", n/1000), func(b *testing.B) {
			scale(b, filesChanged(n), scalePoint{dimension: "files", unit: "1k files", perUnit: 1000, x: float64(n), label: fmt.Sprintf("%dk files", n/1000)})
		})
	}
	for _, mib := range []int{100, 1024, 4096} {
		label := fmt.Sprintf("%d MiB", mib)
		if mib >= 1024 {
			label = fmt.Sprintf("%d GiB", mib/1024)
		}
		b.Run("size-"+strings.ReplaceAll(label, " ", ""), func(b *testing.B) {
			scale(b, oneLargeFile(mib), scalePoint{dimension: "file size", unit: "GiB", perUnit: 1024, x: float64(mib), label: label})
		})
	}
}

func scale(b *testing.B, c buildContext, point scalePoint) {
	tools := scalingTools()
	results := buildInTurns(b, harness.StartRegistry(b), c, tools, nil)
	for _, t := range tools {
		record(row{section: "scale/" + c.name, tool: t.name, res: results[t.name], note: t.note})
		p := point
		p.tool, p.res = t.name, results[t.name]
		reportMu.Lock()
		scaling = append(scaling, p)
		reportMu.Unlock()
	}
}

// filesChanged is n small files COPY'd in, all of them changed by the next
// RUN (touch), then one of them changed by the last RUN: that step's cost
// must not grow with n. 100 files a directory. The base links no find,
// xargs or touch applets, hence /bin/busybox.
func filesChanged(n int) buildContext {
	files := map[string]string{
		"Dockerfile": `ARG BASE
FROM ${BASE}
COPY files/ /data/
RUN /bin/busybox find /data -type f | /bin/busybox xargs /bin/busybox touch
RUN echo changed > /data/d0000/f00
`,
	}
	for i := range n {
		files[fmt.Sprintf("files/d%04d/f%02d", i/100, i%100)] = fmt.Sprintf("file %d\n", i)
	}
	return buildContext{name: fmt.Sprintf("files-%dk", n/1000), about: fmt.Sprintf("COPY %d files, RUN touching them all, RUN changing one", n),
		files: files, base: harness.Busybox}
}

// oneLargeFile is one file of mib MiB of random data written by RUN, then
// a RUN that changes a small file: that step's cost must not grow with the
// large one.
func oneLargeFile(mib int) buildContext {
	return buildContext{
		name:  fmt.Sprintf("size-%dmib", mib), // repository names are lower case
		about: fmt.Sprintf("RUN writing one file of %d MiB of random data, RUN changing a small file", mib),
		files: map[string]string{
			"Dockerfile": fmt.Sprintf(`ARG BASE
FROM ${BASE}
RUN /bin/busybox dd if=/dev/urandom of=/big.bin bs=1048576 count=%d 2>/dev/null
RUN echo changed > /small
`, mib),
		},
		base: harness.Busybox,
	}
}

// printScaling writes the scaling points by dimension and tool, each with
// the slope from the point before it: seconds and MiB of peak memory per
// unit (1k files, or GiB).
func printScaling(w io.Writer) {
	if len(scaling) == 0 {
		return
	}
	fmt.Fprintln(w, "\nScaling (slope: change from the previous point, per unit)")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "dimension\ttool\tpoint\twall s\tCPU s\tpeak MiB\ttree MiB\tslope s/unit\tslope peak MiB/unit\tunit\t")
	var order []string
	byKey := map[string][]scalePoint{}
	for _, p := range scaling {
		k := p.dimension + "\x00" + p.tool
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], p)
	}
	for _, k := range order {
		points := byKey[k]
		slices.SortFunc(points, func(a, b scalePoint) int {
			switch {
			case a.x < b.x:
				return -1
			case a.x > b.x:
				return 1
			}
			return 0
		})
		for i, p := range points {
			slope, memSlope := "-", "-"
			if i > 0 {
				prev := points[i-1]
				units := (p.x - prev.x) / p.perUnit
				slope = fmt.Sprintf("%.3f", (p.res.total.wall.Seconds()-prev.res.total.wall.Seconds())/units)
				memSlope = fmt.Sprintf("%.1f", (mib(p.res.total.maxRSS)-mib(prev.res.total.maxRSS))/units)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%s\t%s\t%.0f\t%s\t%s\t%s\t\n", p.dimension, p.tool, p.label,
				p.res.total.wall.Seconds(), cpuSeconds(p.res.total), orDash(p.res.total.maxRSS), mib(p.res.total.treePeak),
				slope, memSlope, p.unit)
		}
	}
	tw.Flush()
}
