// Package phase adds up where a build's time goes, by phase: pulling,
// unpacking, reading layers' headers for a sparse root, COPY, RUN,
// snapshotting, writing layers and pushing. The job
// installs a Timer for the duration of a build and logs its summary at
// debug level; the benchmarks read it from there.
//
// The Timer is process-wide, not passed down, so that the packages that
// do the work mark their phases without a new parameter through the
// builder: a slipway-build process runs one build. Two builds run at once
// in one process (tests) add into the same Timer, which only blurs a debug
// line. With no Timer installed, marking a phase costs an atomic load.
package phase

import (
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Name is one phase of a build.
type Name int

const (
	// Pull is fetching the base and cached layers: manifests, and the
	// reading of layer blobs (download and decompression) while they are
	// unpacked.
	Pull Name = iota
	// Unpack is writing layers' files into a root, without the reading.
	Unpack
	// Copy is COPY and ADD writing files into a root (without their layer).
	Copy
	// Run is the RUN commands, from start to exit.
	Run
	// Snapshot is finding what a step changed and applying it to the root.
	Snapshot
	// Compress is writing a layer: the tar of the changes, compressed.
	Compress
	// Push is uploading the image to its destinations.
	Push
	// Remove is removing the build's trees: stage roots and the trees
	// COPY --from extracted.
	Remove
	// Headers is reading the image's layers' tar headers (or their tables
	// of contents) for a sparse root: download and decompression included.
	Headers
	names
)

var nameText = [names]string{"pull", "unpack", "copy", "run", "snapshot", "compress", "push", "remove", "headers"}

func (n Name) String() string { return nameText[n] }

// Timer sums the time spent in each phase. Phases that overlap (parallel
// stages, a RUN while a cache layer uploads) are each counted in full, so
// the sum may exceed the wall time.
type Timer struct {
	mu    sync.Mutex
	total [names]time.Duration
}

var current atomic.Pointer[Timer]

// Record installs a new Timer for the process and returns it; stop
// uninstalls it (only if it is still the installed one).
func Record() (t *Timer, stop func()) {
	t = &Timer{}
	current.Store(t)
	return t, func() { current.CompareAndSwap(t, nil) }
}

// Start marks the beginning of phase n; the returned func marks its end
// (once: later calls do nothing, so it may be called early and deferred).
//
//	defer phase.Start(phase.Compress)()
func Start(n Name) func() {
	t := current.Load()
	if t == nil {
		return func() {}
	}
	begin := time.Now()
	var once sync.Once
	return func() { once.Do(func() { t.add(n, time.Since(begin)) }) }
}

// Reader counts the time spent in r's Read as phase n, and takes it out of
// the enclosing phase within: a layer's blob read while it is unpacked is
// pull time, not unpack time.
func Reader(r io.Reader, n, within Name) io.Reader {
	t := current.Load()
	if t == nil {
		return r
	}
	return &timedReader{r: r, t: t, n: n, within: within}
}

type timedReader struct {
	r         io.Reader
	t         *Timer
	n, within Name
}

func (r *timedReader) Read(p []byte) (int, error) {
	begin := time.Now()
	n, err := r.r.Read(p)
	d := time.Since(begin)
	r.t.mu.Lock()
	r.t.total[r.n] += d
	r.t.total[r.within] -= d
	r.t.mu.Unlock()
	return n, err
}

func (t *Timer) add(n Name, d time.Duration) {
	t.mu.Lock()
	t.total[n] += d
	t.mu.Unlock()
}

// Total is the time counted in phase n so far.
func (t *Timer) Total(n Name) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total[n]
}

// Attrs is the summary as log attributes: each phase's seconds, in the
// order of a build, as "pull", "unpack", … with three decimals.
func (t *Timer) Attrs() []any {
	t.mu.Lock()
	defer t.mu.Unlock()
	attrs := make([]any, 0, names)
	for n := range names {
		attrs = append(attrs, slog.Float64(n.String(), float64(t.total[n].Milliseconds())/1000))
	}
	return attrs
}
