package build

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-build/slipway/engine/cache"
	"github.com/slipway-build/slipway/engine/layertoc"
)

// syncBuffer collects a build's log across its goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type cacheFixture struct {
	fixture
	ctxDir  string
	counter string
	store   cache.Store
}

func newCacheFixture(t *testing.T, ttl time.Duration) *cacheFixture {
	f := newFixture(t)
	return &cacheFixture{
		fixture: f,
		ctxDir:  t.TempDir(),
		counter: t.TempDir(),
		store:   cache.NewRegistryStore(f.reg.Host+"/app/cache", f.reg.Client(), ttl),
	}
}

// Every RUN appends to a counter in a cache mount, which lives outside the
// image and across builds: the count is the number of RUNs executed.
const cachedDockerfile = `FROM $BASE
ARG VERSION=1
RUN --mount=type=cache,id=counter,target=/counter echo deps >> /counter/runs && echo deps > /deps
COPY deps.txt /app/deps.txt
RUN --mount=type=cache,id=counter,target=/counter echo install >> /counter/runs && cat /app/deps.txt > /installed
WORKDIR /app
COPY code.txt /app/code.txt
RUN --mount=type=cache,id=counter,target=/counter echo version >> /counter/runs && echo $VERSION > /version
`

func (c *cacheFixture) build(t *testing.T, files map[string]string, args map[string]string, more ...func(*Options)) (v1.Image, string, int) {
	t.Helper()
	before := c.runs(t)
	var log syncBuffer
	img, err := c.fixture.buildIn(t, c.ctxDir, files, func(o *Options) {
		o.LayerCache = c.store
		o.CacheRunLayers, o.CacheCopyLayers = true, true
		o.CacheMountDir = c.counter
		o.BuildArgs = args
		o.Log = slog.New(slog.NewTextHandler(&log, nil))
		for _, m := range more {
			m(o)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return img, log.String(), c.runs(t) - before
}

func (c *cacheFixture) runs(t *testing.T) int {
	b, err := os.ReadFile(filepath.Join(c.counter, "mounts", "counter", "runs"))
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func TestCacheHitsAndMisses(t *testing.T) {
	c := newCacheFixture(t, time.Hour)
	files := map[string]string{"Dockerfile": cachedDockerfile, "deps.txt": "a\n", "code.txt": "v1\n"}

	first, _, runs := c.build(t, files, nil)
	if runs != 3 {
		t.Fatalf("a cold build ran %d RUNs, want 3", runs)
	}

	second, log, runs := c.build(t, files, nil)
	if runs != 0 {
		t.Errorf("a rebuild with nothing changed ran %d RUNs", runs)
	}
	if strings.Contains(log, "Unpacking rootfs") {
		t.Errorf("a fully cached rebuild unpacked the root filesystem:\n%s", log)
	}
	// The images differ by their created times; the layers must match.
	assertSameLayers(t, first, second)

	files["code.txt"] = "v2\n"
	img, _, runs := c.build(t, files, nil)
	if runs != 1 {
		t.Errorf("changing the app code ran %d RUNs, want 1 (only the step after that COPY)", runs)
	}
	hasFile("/app/code.txt", "v2\n", 0o644, 0, 0)(t, flatten(t, img), nil)

	files["deps.txt"] = "b\n"
	img, _, runs = c.build(t, files, nil)
	if runs != 2 {
		t.Errorf("changing deps.txt ran %d RUNs, want 2", runs)
	}
	hasFile("/installed", "b\n", 0o644, 0, 0)(t, flatten(t, img), nil)

	img, _, runs = c.build(t, files, map[string]string{"VERSION": "2"})
	if runs != 3 {
		// VERSION is declared before the first RUN, so every RUN sees it.
		t.Errorf("changing a build-arg in scope of every RUN ran %d RUNs, want 3", runs)
	}
	hasFile("/version", "2\n", 0o644, 0, 0)(t, flatten(t, img), nil)
	_, _, runs = c.build(t, files, map[string]string{"VERSION": "2", "UNUSED": "x"})
	if runs != 0 {
		t.Errorf("a build-arg no stage declares ran %d RUNs, want 0", runs)
	}
}

// The rebuild of issue 4's benchmark (b): only the app code, copied last,
// changed. Every RUN hits, and the COPY that misses writes onto a sparse
// root: the image is never unpacked.
func TestCacheLastCopyChangedUnpacksNothing(t *testing.T) {
	c := newCacheFixture(t, time.Hour)
	layerCache := t.TempDir()
	files := map[string]string{"Dockerfile": `FROM $BASE
COPY deps.txt /tmp/deps.txt
RUN --mount=type=cache,id=counter,target=/counter echo deps >> /counter/runs && cp /tmp/deps.txt /installed
WORKDIR /app
COPY src/ /app/src/
CMD ["/bin/sh", "/app/src/main.sh"]
`, "deps.txt": "a\n", "src/main.sh": "echo v1\n"}
	withLayerCache := func(o *Options) { o.ExtractedLayerDir = layerCache }
	c.build(t, files, nil, withLayerCache)
	files["src/main.sh"] = "echo v2\n"
	img, log, runs := c.build(t, files, nil, withLayerCache)
	if runs != 0 {
		t.Errorf("changing the app code ran %d RUNs, want 0", runs)
	}
	if strings.Contains(log, "Unpacking rootfs") {
		t.Errorf("only the last COPY missed, yet the root filesystem was unpacked:\n%s", log)
	}
	fs := flatten(t, img)
	hasFile("/app/src/main.sh", "echo v2\n", 0o644, 0, 0)(t, fs, nil)
	hasFile("/installed", "a\n", 0o644, 0, 0)(t, fs, nil)
}

func TestCacheTTLExpires(t *testing.T) {
	c := newCacheFixture(t, time.Second)
	files := map[string]string{"Dockerfile": cachedDockerfile, "deps.txt": "a\n", "code.txt": "v1\n"}
	c.build(t, files, nil)
	time.Sleep(2 * time.Second)
	if _, _, runs := c.build(t, files, nil); runs != 3 {
		t.Errorf("after the TTL a rebuild ran %d RUNs, want 3", runs)
	}
}

// missingStep is a cache.Store whose entries made by a step whose
// command contains step are gone, as after one entry expired: the other
// steps still hit.
type missingStep struct {
	cache.Store
	step string
}

func (m missingStep) Get(ctx context.Context, k cache.Key) (*cache.Entry, error) {
	e, err := m.Store.Get(ctx, k)
	if e != nil && strings.Contains(e.CreatedBy, m.step) {
		return nil, err
	}
	return e, err
}

// A hit after a miss: the missed RUN unpacks the root filesystem, so the
// hit's layer must be applied onto that root for the RUN after it, which
// misses too and reads what the hit made.
func TestCacheHitAfterAMissIsAppliedToTheRoot(t *testing.T) {
	c := newCacheFixture(t, time.Hour)
	files := map[string]string{"Dockerfile": `FROM $BASE
RUN --mount=type=cache,id=counter,target=/counter echo first >> /counter/runs && echo first > /first
RUN --mount=type=cache,id=counter,target=/counter echo second >> /counter/runs && cat /first > /second
ARG LAST=1
RUN --mount=type=cache,id=counter,target=/counter echo last >> /counter/runs && cat /second > /last && echo $LAST >> /last
`}
	if _, _, runs := c.build(t, files, nil); runs != 3 {
		t.Fatalf("a cold build ran %d RUNs, want 3", runs)
	}
	c.store = missingStep{Store: c.store, step: "echo first >"}
	img, log, runs := c.build(t, files, map[string]string{"LAST": "2"})
	if runs != 2 {
		t.Errorf("with the first RUN's entry gone and LAST changed, %d RUNs ran, want 2 (the first and the last)\n%s", runs, log)
	}
	if !strings.Contains(log, "Using caching version of cmd") {
		t.Errorf("the second RUN did not hit the cache:\n%s", log)
	}
	hasFile("/last", "first\n2\n", 0o644, 0, 0)(t, flatten(t, img), nil)
}

// A cache whose blobs are gone still builds, with a warning.
func TestCacheMissingBlobFallsBack(t *testing.T) {
	c := newCacheFixture(t, time.Hour)
	files := map[string]string{"Dockerfile": cachedDockerfile, "deps.txt": "a\n", "code.txt": "v1\n"}
	c.build(t, files, nil)
	blobs := filepath.Join(c.reg.Dir, "storage", "docker", "registry", "v2", "blobs")
	// Remove every layer blob the cache repository's entries point to, but
	// keep the base image's: only cache data is lost.
	base, _ := c.reg.Client().Pull(t.Context(), c.base, v1.Platform{})
	keep := map[string]bool{}
	ls, _ := base.Layers()
	for _, l := range ls {
		d, _ := l.Digest()
		keep[d.Hex] = true
	}
	removed := 0
	filepath.Walk(blobs, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.Name() != "data" || fi.Size() < 100 {
			return nil
		}
		hex := filepath.Base(filepath.Dir(p))
		if keep[hex] {
			return nil
		}
		b, _ := os.ReadFile(p)
		if bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
			os.Remove(p)
			removed++
		}
		return nil
	})
	if removed == 0 {
		t.Fatal("found no cached layer blob to remove")
	}
	files["code.txt"] = "v3\n"
	img, log, _ := c.build(t, files, nil)
	if !strings.Contains(log, "level=WARN") {
		t.Errorf("no warning about the unreadable cache:\n%s", log)
	}
	fs := flatten(t, img)
	hasFile("/installed", "a\n", 0o644, 0, 0)(t, fs, nil)
	hasFile("/app/code.txt", "v3\n", 0o644, 0, 0)(t, fs, nil)
}

// assertSameLayers compares two images' layers, digest by digest, and
// lists the entries of those that differ.
func assertSameLayers(t *testing.T, a, b v1.Image) {
	t.Helper()
	la, _ := a.Layers()
	lb, _ := b.Layers()
	if len(la) != len(lb) {
		for _, img := range []v1.Image{a, b} {
			cf, _ := img.ConfigFile()
			for _, h := range cf.History {
				t.Logf("%v %s", h.EmptyLayer, h.CreatedBy)
			}
		}
		t.Fatalf("%d layers vs %d", len(la), len(lb))
	}
	for i := range la {
		da, _ := la[i].Digest()
		db, _ := lb[i].Digest()
		if da != db {
			t.Errorf("layer %d differs:\n%s\n%s", i, layerListing(t, la[i]), layerListing(t, lb[i]))
		}
	}
}

// tocAsked is a layertoc.Store that keeps no table and closes asked when
// it is first asked for one.
type tocAsked struct {
	once  sync.Once
	asked chan struct{}
}

func (s *tocAsked) Get(context.Context, v1.Hash) (*layertoc.TOC, error) {
	s.once.Do(func() { close(s.asked) })
	return nil, nil
}
func (s *tocAsked) Has(context.Context, v1.Hash) (bool, error) { return false, nil }
func (s *tocAsked) Put(context.Context, *layertoc.TOC) error   { return nil }

// lookupAfter is a cache.Store whose lookups answer only once after is
// closed, or after a while; overlapped says whether after came first.
type lookupAfter struct {
	memStore
	after      <-chan struct{}
	overlapped atomic.Bool
}

func (s *lookupAfter) Get(ctx context.Context, k cache.Key) (*cache.Entry, error) {
	select {
	case <-s.after:
		s.overlapped.Store(true)
	case <-time.After(5 * time.Second):
	}
	return s.memStore.Get(ctx, k)
}

// A stage whose files come after its last RUN writes them on a sparse
// root when the RUNs hit the cache, and a sparse root reads the tables of
// contents of the base's layers: they are asked for while the cache is
// looked up, not after.
func TestBaseTablesAreFetchedBesideTheCacheLookup(t *testing.T) {
	tocs := &tocAsked{asked: make(chan struct{})}
	store := &lookupAfter{after: tocs.asked}
	_, err := memBuild(t, &recordingExecutor{}, map[string]string{"Dockerfile": "FROM base\nRUN true\nCOPY app.txt /app.txt\n", "app.txt": "v1\n"},
		func(o *Options) {
			o.LayerCache = store
			o.TOCs = layertoc.NewIndex(tocs, slog.New(slog.NewTextHandler(io.Discard, nil)))
			o.CacheRunLayers, o.CacheCopyLayers = true, true
		})
	must(t, err)
	if !store.overlapped.Load() {
		t.Error("the cache lookups answered before the base's tables of contents were asked for")
	}
}

// tocMap is a layertoc.Store in memory.
type tocMap struct {
	mu sync.Mutex
	m  map[v1.Hash]*layertoc.TOC
}

func (s *tocMap) Get(_ context.Context, d v1.Hash) (*layertoc.TOC, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[d], nil
}

func (s *tocMap) Has(ctx context.Context, d v1.Hash) (bool, error) {
	t, err := s.Get(ctx, d)
	return t != nil, err
}

func (s *tocMap) Put(_ context.Context, t *layertoc.TOC) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[v1.Hash]*layertoc.TOC{}
	}
	s.m[t.DiffID] = t
	return nil
}

// Where the cache keeps the tables of the base's layers, a rebuild whose
// RUN hits writes its COPY on a sparse root made from the base's tree read
// while the cache was looked up.
func TestSparseRootTakesTheTreeReadBesideTheCacheLookup(t *testing.T) {
	store, tables := &memStore{}, &tocMap{}
	build := func(app string) string {
		var log syncBuffer
		idx := layertoc.NewIndex(tables, slog.New(slog.NewTextHandler(io.Discard, nil)))
		_, err := memBuild(t, &recordingExecutor{}, map[string]string{"Dockerfile": "FROM base\nRUN true\nCOPY app.txt /app.txt\n", "app.txt": app},
			func(o *Options) {
				o.LayerCache, o.TOCs = store, idx
				o.CacheRunLayers, o.CacheCopyLayers = true, true
				o.Log = slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug}))
			})
		must(t, err)
		idx.Wait()
		return log.String()
	}
	build("v1\n")
	if log := build("v2\n"); !strings.Contains(log, "The base's file tree was read ahead") || strings.Contains(log, "Unpacking rootfs") {
		t.Errorf("the rebuild did not write its COPY on the tree read ahead:\n%s", log)
	}
}
