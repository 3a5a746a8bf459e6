package build

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-build/slipway/engine/dockerfile"
	"github.com/slipway-build/slipway/engine/layer"
	"github.com/slipway-build/slipway/engine/run"
)

// planAll plans every stage of the Dockerfile text, unused ones too.
func planAll(t *testing.T, text string) *dockerfile.Plan {
	t.Helper()
	df, err := dockerfile.Parse(strings.NewReader(text), "Dockerfile")
	must(t, err)
	all := false
	plan, err := df.Plan(dockerfile.PlanOptions{SkipUnusedStages: &all})
	must(t, err)
	return plan
}

// The stage graph decides which stages write layers: the target and the
// bases of later stages do, stages read only through COPY --from do not
// (chroot mode, where their roots stay) or write plain tars (in-place
// mode, where the root moves on), and with a layer cache every stage does.
func TestLayerUses(t *testing.T) {
	plan := planAll(t, `FROM img AS base
RUN true
FROM base AS build
RUN true
FROM img AS unused
RUN true
FROM base AS final
COPY --from=build /out /out
`)
	for _, c := range []struct {
		name               string
		shared, layerCache bool
		want               map[int]layerUse
	}{
		{"chroot", false, false, map[int]layerUse{0: layersPushed, 1: noLayers, 2: noLayers, 3: layersPushed}},
		{"in-place", true, false, map[int]layerUse{0: layersPushed, 1: layersForLocalReads, 2: noLayers, 3: layersPushed}},
		{"cache", false, true, map[int]layerUse{0: layersPushed, 1: layersForImage, 2: layersForImage, 3: layersPushed}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := layerUses(plan, c.shared, c.layerCache)
			for i, want := range c.want {
				if got[i] != want {
					t.Errorf("stage %d: layer use %d, want %d", i, got[i], want)
				}
			}
		})
	}
}

// layerFiles counts the layer files a build left in its work directory.
func layerFiles(t *testing.T, workDir string) int {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(workDir, "slipway-layer-*"))
	must(t, err)
	return len(m)
}

// A stage that only COPY --from reads writes no layer: its root is what
// the final stage copies from. With the layer cache, its steps' layers are
// written and stored. Either way the final image is the same, byte for
// byte.
func TestIntermediateStageWritesNoLayer(t *testing.T) {
	f := newFixture(t)
	files := map[string]string{
		"Dockerfile": `FROM $BASE AS build
RUN mkdir /out && echo built > /out/built && rm /etc/group
COPY hello.txt /out/
RUN cat /out/hello.txt > /out/again
FROM $BASE
COPY --from=build /out /out
`,
		"hello.txt": "hello\n",
	}
	epoch := time.Unix(1700000000, 0).UTC()
	var workDir string
	withWorkDir := func(o *Options) {
		workDir = t.TempDir()
		o.WorkDir, o.Epoch = workDir, &epoch
	}

	img, err := f.build(t, files, withWorkDir)
	must(t, err)
	if n := layerFiles(t, workDir); n != 1 {
		t.Errorf("the build wrote %d layer files, want 1: the final COPY's alone", n)
	}
	fs := flatten(t, img)
	for p, want := range map[string]string{"/out/built": "built\n", "/out/hello.txt": "hello\n", "/out/again": "hello\n"} {
		if fs[p].content != want {
			t.Errorf("%s = %q, want %q", p, fs[p].content, want)
		}
	}
	if _, ok := fs["/etc/group"]; !ok {
		t.Error("/etc/group of the final stage's base is missing")
	}

	store := &memStore{}
	cached, err := f.build(t, files, withWorkDir, func(o *Options) {
		o.LayerCache, o.CacheRunLayers, o.CacheCopyLayers = store, true, true
	})
	must(t, err)
	if n := layerFiles(t, workDir); n != 4 {
		t.Errorf("with the layer cache the build wrote %d layer files, want 4: three steps of the build stage and the final COPY", n)
	}
	withLayer := 0
	for _, e := range store.entries {
		if e.Layer != nil {
			withLayer++
		}
	}
	if withLayer != 4 {
		t.Errorf("the cache holds %d layers, want 4", withLayer)
	}
	want, err := img.Digest()
	must(t, err)
	got, err := cached.Digest()
	must(t, err)
	if got != want {
		t.Errorf("the final image is %s without the cache's layers, %s with them: it must not depend on them", want, got)
	}
}

// stageRoots lists the stage roots left in a work directory.
func stageRoots(t *testing.T, workDir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(workDir, "slipway-stage-*"))
	must(t, err)
	return m
}

// pollingExecutor runs commands with run's chroot executor; before the
// command whose text holds marker, it waits until check passes or ten
// seconds have passed, and records the last result.
type pollingExecutor struct {
	run.Executor
	marker string
	check  func() error
	err    error
}

func (p *pollingExecutor) Run(ctx context.Context, spec run.Spec) error {
	if strings.Contains(strings.Join(spec.Args, " "), p.marker) {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if p.err = p.check(); p.err == nil || time.Now().After(deadline) {
				break
			}
		}
	}
	return p.Executor.Run(ctx, spec)
}

// A stage's root goes as soon as the last stage that reads it is done,
// while the build goes on, and nothing of the stages is left once Build
// returns.
func TestStageRootGoesWhenNoStageReadsIt(t *testing.T) {
	f := newFixture(t)
	exec, err := run.New(run.Chroot)
	must(t, err)
	workDir := t.TempDir()
	var firstRoot string
	poll := &pollingExecutor{Executor: exec, marker: "> /b"}
	poll.check = func() error {
		if _, err := os.Stat(firstRoot); !os.IsNotExist(err) {
			return fmt.Errorf("stage a's root %s is still there (%v)", firstRoot, err)
		}
		return nil
	}
	record := &pollingExecutor{Executor: poll, marker: "> /a", check: func() error {
		if dirs := stageRoots(t, workDir); len(dirs) == 1 {
			firstRoot = dirs[0]
			return nil
		}
		return errors.New("no root for stage a")
	}}
	img, err := f.build(t, map[string]string{"Dockerfile": `FROM $BASE AS a
RUN echo a > /a
FROM $BASE AS b
COPY --from=a /a /a
FROM b
RUN cat /a > /b
`}, func(o *Options) { o.WorkDir, o.Executor = workDir, record })
	must(t, err)
	if record.err != nil {
		t.Fatal(record.err)
	}
	if poll.err != nil {
		t.Errorf("while the last stage ran: %v", poll.err)
	}
	if fs := flatten(t, img); fs["/b"].content != "a\n" {
		t.Errorf("/b = %q", fs["/b"].content)
	}
	if dirs := stageRoots(t, workDir); len(dirs) > 0 {
		t.Errorf("stage roots left after the build: %v", dirs)
	}
}

// removeAll takes a tree of many directories, symlinks included (never
// followed), and a second removal of the same tree waits for the first.
func TestRemoveAll(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	must(t, os.WriteFile(filepath.Join(outside, "keep"), nil, 0o644))
	for i := range 50 {
		d := filepath.Join(dir, "root", fmt.Sprint(i%7), fmt.Sprint(i))
		must(t, os.MkdirAll(d, 0o755))
		must(t, os.WriteFile(filepath.Join(d, "f"), []byte("x"), 0o644))
		must(t, os.Symlink(outside, filepath.Join(d, "link")))
	}
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); removeAll(filepath.Join(dir, "root")) }()
	}
	wg.Wait()
	if _, err := os.Lstat(filepath.Join(dir, "root")); !os.IsNotExist(err) {
		t.Errorf("the tree is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "keep")); err != nil {
		t.Errorf("a symlink was followed: %v", err)
	}
}

// events is an ordered record of what a build did, shared by the
// recording collaborators below.
type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	e.list = append(e.list, s)
	e.mu.Unlock()
}

func (e *events) index(s string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Index(e.list, s)
}

// recordingUploads records each layer handed over as "upload <n>", n
// its place in layers, and whether its digest was known then.
type recordingUploads struct {
	ev     *events
	mu     sync.Mutex
	layers []v1.Layer
	known  []bool
}

func (r *recordingUploads) Upload(l v1.Layer) {
	_, err := l.Digest()
	r.mu.Lock()
	n := len(r.layers)
	r.layers, r.known = append(r.layers, l), append(r.known, err == nil)
	r.mu.Unlock()
	r.ev.add(fmt.Sprintf("upload %d", n))
}

type eventExecutor struct {
	run.Executor
	ev *events
}

func (e eventExecutor) Run(ctx context.Context, spec run.Spec) error {
	e.ev.add("run " + spec.Args[len(spec.Args)-1])
	return e.Executor.Run(ctx, spec)
}

// The layers of the image a build returns (the base image's, its
// target's, and those of the stage it is built FROM) are handed to
// Uploads, each once: the base image's at FROM, the others as each starts
// to be written, before the steps after it run, and before their digests
// are known (the upload reads them as they are compressed). A stage read
// only by COPY --from hands none.
func TestLayersAreUploadedAsTheyAreWritten(t *testing.T) {
	f := newFixture(t)
	exec, err := run.New(run.Chroot)
	must(t, err)
	ev := &events{}
	uploads := &recordingUploads{ev: ev}
	img, err := f.build(t, map[string]string{"Dockerfile": `FROM $BASE AS parent
RUN echo parent > /parent
FROM $BASE AS tool
RUN echo tool > /tool
FROM parent
RUN echo one > /one
COPY --from=tool /tool /tool
RUN cat /one /tool > /both
`}, func(o *Options) { o.Executor, o.Uploads = eventExecutor{exec, ev}, uploads })
	must(t, err)
	layers, err := img.Layers()
	must(t, err)
	if len(layers) < 5 {
		t.Fatalf("%d layers", len(layers))
	}
	var want, got []string
	for _, l := range layers {
		d, err := l.Digest()
		must(t, err)
		want = append(want, d.String())
	}
	for i, l := range uploads.layers {
		// Digest is known once the build returned.
		d, err := l.Digest()
		must(t, err)
		got = append(got, d.String())
		if base := i < len(layers)-4; uploads.known[i] != base {
			t.Errorf("layer %d (%s) was handed over with its digest known=%v, want %v (only the base's is)", i, d, uploads.known[i], base)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("uploaded %v, want the image's new layers %v", got, want)
	}
	if up, next := ev.index(fmt.Sprintf("upload %d", len(want)-3)), ev.index("run cat /one /tool > /both"); up < 0 || next < 0 || up > next {
		t.Errorf("the layer of RUN echo one was handed over at %d, the last RUN ran at %d: %v", up, next, ev.list)
	}
}

// A stage's pending changes are the last change to each path: a deleted
// directory takes what was written under it, and a path deleted and then
// made again is opaque when it is a directory.
func TestPendingChanges(t *testing.T) {
	root := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "etc", "again"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "etc", "file"), nil, 0o644))
	must(t, os.WriteFile(filepath.Join(root, "kept"), nil, 0o644))
	var p pendingChanges
	p.add([]layer.Change{{Path: "/gone", Kind: layer.Add}, {Path: "/gone/a", Kind: layer.Add}, {Path: "/gone/a/b", Kind: layer.Add}, {Path: "/gone-sibling", Kind: layer.Add}, {Path: "/gone0", Kind: layer.Add}, {Path: "/etc/again", Kind: layer.Delete}, {Path: "/etc/file", Kind: layer.Delete}, {Path: "/kept", Kind: layer.Add}})
	p.add([]layer.Change{{Path: "/gone", Kind: layer.Delete}, {Path: "/etc/again", Kind: layer.Add}, {Path: "/etc/file", Kind: layer.Add}})
	got := map[string]layer.Kind{}
	for _, c := range p.changes(root) {
		got[c.Path] = c.Kind
	}
	want := map[string]layer.Kind{"/gone": layer.Delete, "/gone-sibling": layer.Add, "/gone0": layer.Add, "/etc/again": layer.Opaque, "/etc/file": layer.Add, "/kept": layer.Add}
	if !maps.Equal(got, want) {
		t.Errorf("changes %v, want %v", got, want)
	}
}

// BenchmarkPendingDeletes is a step deleting 20,000 of the 40,000 paths the
// step before it wrote, as `RUN rm -rf /usr/share/doc` after an apt-get.
func BenchmarkPendingDeletes(b *testing.B) {
	var written, deleted []layer.Change
	for d := range 200 {
		for f := range 200 {
			c := layer.Change{Path: fmt.Sprintf("/usr/share/d%03d/f%03d", d, f), Kind: layer.Add}
			written = append(written, c)
			if d%2 == 0 {
				deleted = append(deleted, layer.Change{Path: c.Path, Kind: layer.Delete})
			}
		}
	}
	for b.Loop() {
		var p pendingChanges
		p.add(written)
		p.add(deleted)
	}
}

// A stage FROM the image that another stage unpacked writes its files onto
// sparse roots made from the tables of contents recorded while unpacking:
// the base's layers are downloaded once, not a second time for their
// headers. The registry's log says what was downloaded.
func TestBaseLayersAreReadOnceByAnUnpackedAndASparseStage(t *testing.T) {
	f := newFixture(t)
	img, err := f.build(t, map[string]string{"Dockerfile": `FROM $BASE AS build
RUN echo built > /out
FROM $BASE
COPY --from=build /out /usr/local/out
`})
	must(t, err)
	// Read before the image is: its base layers are downloaded again then.
	fetched := f.reg.FetchedBlobs(t)
	base, err := f.reg.Client().Pull(context.Background(), f.base, hostPlatform())
	must(t, err)
	layers, err := base.Layers()
	must(t, err)
	for _, l := range layers {
		d, err := l.Digest()
		must(t, err)
		if n := countOf(fetched, d.String()); n != 1 {
			t.Errorf("base layer %s was downloaded %d times, want once", d, n)
		}
	}
	if fs := flatten(t, img); fs["/usr/local/out"].content != "built\n" {
		t.Errorf("/usr/local/out = %q", fs["/usr/local/out"].content)
	}
}

func countOf(list []string, s string) int {
	n := 0
	for _, e := range list {
		if e == s {
			n++
		}
	}
	return n
}
