// Package build is Slipway's Builder: it runs the stages of a Dockerfile and
// returns the target stage as a v1.Image. Publishing that image is another
// package's job (engine/publish), as in ko's Builder/Publisher split.
//
// Each stage is planned, then run, as BuildKit's frontend keeps its typed
// instructions apart from their execution.
//   - Plan (plan.go). planStage turns a stage into steps: each is the
//     instruction expanded once with the ARG and ENV state at its place,
//     the image config after it, and its layer-cache key chained from the
//     base's. It touches no root filesystem and no registry: what a key
//     reads outside the Dockerfile (the context's files, what --from names)
//     comes from a keySource. Config-only instructions are done once
//     planned; COPY, ADD, RUN and a WORKDIR that makes its directory carry
//     an action.
//   - Run (stage.go). The stage looks all of its keys up in the layer
//     cache at once (cache.go), then applies the steps in order: a hit
//     appends the cached layer, a miss runs the action and stores its
//     layer in the background.
//
// An action works on a root (roots.go): the stage's unpacked root, made on
// the first step that needs the whole image (a directory of its own, or "/"
// in in-place mode), or a sparse root that holds only what a file-writing
// step looks at of the image, when no RUN is left in the stage. COPY, ADD
// and WORKDIR turn exactly the paths they wrote into a layer. RUN executes
// in the directory a snapshot.Session prepares (the root, or an overlay
// over it), and the session finds what it changed; Options.Snapshotter
// picks the snapshot.Snapshotter that starts the sessions.
// The stage graph, and which stage a --from names (the last of a name, as
// in BuildKit), come from dockerfile.Plan; its warnings and the parser's go
// to the build's logger at warn level.
// Independent stages run concurrently in chroot mode, since each has a root
// of its own; in in-place mode there is only one "/", so they run in turn.
package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/containerd/platforms"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"golang.org/x/sync/errgroup"

	"github.com/slipway-build/slipway/engine/cache"
	"github.com/slipway-build/slipway/engine/dockerfile"
	"github.com/slipway-build/slipway/engine/layer"
	"github.com/slipway-build/slipway/engine/layertoc"
	"github.com/slipway-build/slipway/engine/registry"
	"github.com/slipway-build/slipway/engine/rootfs"
	"github.com/slipway-build/slipway/engine/run"
	"github.com/slipway-build/slipway/engine/snapshot"
)

// ExecutorDir is where the executor image keeps its own files; in-place
// mode never extracts over it or snapshots it.
const ExecutorDir = "/slipway"

// Snapshotter names how RUN's changes are found (--snapshotter).
type Snapshotter string

// The snapshotters.
const (
	SnapshotWalk    Snapshotter = "walk"
	SnapshotOverlay Snapshotter = "overlay"
)

// ImageSource pulls base images; engine/registry's Client is one.
type ImageSource interface {
	Pull(ctx context.Context, ref string, platform v1.Platform) (v1.Image, error)
}

// Secret is a value for RUN --mount=type=secret, from a file or the
// environment; it is mounted for the one command and never written to a
// layer or a log.
type Secret struct {
	File string
	Env  string
}

// Options describe one build, in three groups: what it reads (Inputs), the
// parts and places it works with (Collaborators) and how it builds
// (Policy). The groups are embedded, so o.Target reads as one field.
type Options struct {
	Inputs
	Collaborators
	Policy
}

// Inputs are what a build reads.
type Inputs struct {
	// ContextDir is the local build context, already fetched.
	ContextDir string
	// Dockerfile is the path of the Dockerfile, resolved by DockerfilePath.
	Dockerfile string
	BuildArgs  map[string]string
	Target     string
	// Platform is the target platform; the zero value means this machine's.
	Platform v1.Platform
	// Labels are added to the final image (kaniko's --label).
	Labels map[string]string
	// Secrets for RUN --mount=type=secret, by id.
	Secrets map[string]Secret
}

// Collaborators are the parts a build works with, and where it keeps
// things. Slipway keeps four things apart: the registry layer cache
// (LayerCache), extracted layers (ExtractedLayerDir), RUN cache mounts
// (CacheMountDir) and, outside the builder, the base-image layout a warmer
// fills (an ImageSource).
type Collaborators struct {
	// Images pulls base images and COPY --from images.
	Images ImageSource
	// Executor runs RUN commands; Mode says which kind it is.
	Executor run.Executor
	Mode     run.Mode
	// LayerCache, when set, keeps and reuses the layers of COPY, ADD, RUN
	// and WORKDIR steps by content-addressed key (kaniko's --cache).
	LayerCache cache.Store
	// CacheWrites, when set, receives the background cache writes, and
	// the removal of the stage roots, for the
	// caller to wait on after publishing; when nil, Build waits for them.
	CacheWrites *errgroup.Group
	// TOCs, when set, holds the layers' tables of contents, which steps
	// on a sparse root read instead of the layers, and records the table
	// of each layer read or written whole; the caller waits for its
	// writes (engine/layertoc).
	TOCs *layertoc.Index
	// LayerBlobs, when set, reads by range the tables of contents that
	// eStargz and zstd:chunked base layers carry, for the Index of its own
	// tables a build keeps when TOCs is nil.
	LayerBlobs *registry.Client
	// WorkDir holds stage root filesystems and layer files. The layers of
	// the returned image are read from it, so the caller removes it only
	// after publishing.
	WorkDir string
	// ExtractedLayerDir, when set, keeps extracted layers uncompressed by
	// diff ID (engine/extracted), so that a later build on the same node
	// neither downloads nor decompresses them again.
	ExtractedLayerDir string
	// CacheMountDir persists RUN --mount=type=cache directories.
	CacheMountDir string
	// Uploads, when set, starts uploading each layer of the returned
	// image as soon as the build holds it (a base's, a cached step's, a
	// written one's), so that the push after the build finds it there
	// (engine/publish's Uploader).
	Uploads LayerUploader
	// Log receives progress; nil means slog.Default().
	Log *slog.Logger
	// Output receives RUN commands' stdout and stderr; nil means os.Stderr.
	Output io.Writer
}

// LayerUploader uploads a layer in the background.
type LayerUploader interface {
	Upload(l v1.Layer)
}

// Policy is how a build builds.
type Policy struct {
	// Epoch, when set, is the creation time of the image and its history, and
	// clamps file times in new layers: --reproducible and SOURCE_DATE_EPOCH.
	Epoch *time.Time
	// Compression is layer.Gzip (the default) or layer.Zstd;
	// CompressionLevel 0 is the fastest level, kaniko's default.
	Compression      layer.Compression
	CompressionLevel int
	// IgnorePaths are never snapshotted (kaniko's --ignore-path).
	IgnorePaths []string
	// Snapshotter is how RUN's changes are found: SnapshotWalk (the default)
	// compares the root with its index; SnapshotOverlay runs the step on an
	// overlay and reads its upper directory (chroot mode, as root). The
	// overlay is opt-in: overlayfs breaks a hardlink when a step writes to
	// one of its names in place, where a real filesystem changes all names.
	Snapshotter Snapshotter
	// SingleSnapshot takes one layer per stage, at its end, as kaniko's
	// --single-snapshot; steps then only add history.
	SingleSnapshot bool
	// CacheRunLayers and CacheCopyLayers choose which steps use LayerCache.
	CacheRunLayers, CacheCopyLayers bool
	// NoPushCache looks entries up but never writes them.
	NoPushCache bool
	// SkipUnusedStages is kaniko's flag; nil means true, BuildKit's default.
	SkipUnusedStages *bool
	// BinfmtDir is where the kernel's binfmt_misc handlers are read, to
	// check before anything runs that RUN for another platform can be
	// emulated; empty means /proc/sys/fs/binfmt_misc.
	BinfmtDir string
}

// Build runs the Dockerfile and returns the image of the target stage.
func Build(ctx context.Context, opts Options) (v1.Image, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	df, planOpts, plan, err := planBuild(opts)
	if err != nil {
		return nil, err
	}
	// BuildKit prints these and builds on; they are the only sign of a
	// mistyped --build-arg or an ARG that expands to nothing.
	for _, w := range append(append([]string(nil), df.Warnings...), plan.Warnings...) {
		opts.Log.Warn(w)
	}
	ignore, err := readIgnore(opts)
	if err != nil {
		return nil, err
	}
	roots := rootsFor(opts.Mode)
	ignoreList, err := roots.ignoreList(opts)
	if err != nil {
		return nil, err
	}
	b := &builder{
		df:         df,
		opts:       opts,
		roots:      roots,
		ignoreList: ignoreList,
		planOpts:   planOpts,
		plan:       plan,
		ignore:     ignore,
		done:       map[int]*stageResult{},
		ready:      map[int]chan struct{}{},
		layerUses:  layerUses(plan, roots.shared(), opts.LayerCache != nil),
		readers:    readersOf(plan),
		rootHolder: -1,
		tocs:       opts.TOCs,
	}
	if b.tocs == nil && slices.ContainsFunc(plan.Stages, b.readsBaseSparse) {
		// A layer read whole for one stage (a base unpacked for its RUN)
		// then serves, by its table, the sparse roots of another stage
		// FROM the same image, which would read it a second time. A base
		// layer in eStargz or zstd:chunked gives its own table, by range.
		var carried []layertoc.IndexOption
		if opts.LayerBlobs != nil {
			carried = append(carried, layertoc.CarriedTOCs(opts.LayerBlobs))
		}
		b.tocs = layertoc.NewIndex(nil, opts.Log, carried...)
	}
	for _, s := range plan.Stages {
		b.ready[s.Index] = make(chan struct{})
	}
	b.cacheWrites = opts.CacheWrites
	if b.cacheWrites == nil {
		b.cacheWrites = &errgroup.Group{}
		defer b.cacheWrites.Wait()
	}
	if err := b.checkEmulation(); err != nil {
		return nil, err
	}
	if opts.CacheWrites != nil {
		// The stage roots go while the caller pushes: removing 20,000
		// files takes seconds, and the image's layers live elsewhere.
		defer b.cacheWrites.Go(func() error { b.cleanup(); return nil })
	} else {
		defer b.cleanup()
	}
	if err := b.runStages(ctx); err != nil {
		return nil, err
	}
	return b.done[plan.Target].image, nil
}

func (o *Options) defaults() error {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Output == nil {
		o.Output = os.Stderr
	}
	if o.Platform.OS == "" {
		o.Platform = hostPlatform()
	}
	o.Platform = fromOCIPlatform(platforms.Normalize(toOCIPlatform(o.Platform)))
	if o.Images == nil {
		return errors.New("build: no image source configured")
	}
	if o.WorkDir == "" {
		o.WorkDir = os.TempDir()
	}
	if o.Mode == "" {
		o.Mode = run.Chroot
	}
	if o.Mode == run.InPlace && o.Executor == nil {
		return errors.New("in-place mode needs an executor")
	}
	switch o.Compression {
	case "", layer.Gzip, layer.Zstd:
	default:
		return fmt.Errorf("unknown compression %q: use gzip or zstd", o.Compression)
	}
	switch o.Snapshotter {
	case "", SnapshotWalk:
	case SnapshotOverlay:
		if o.Mode == run.InPlace {
			return errors.New("--snapshotter=overlay needs chroot mode: in-place mode cannot mount an overlay over /")
		}
	default:
		return fmt.Errorf("unknown snapshotter %q: use walk or overlay", o.Snapshotter)
	}
	return nil
}

// snapshotter is the Snapshotter the --snapshotter value names, which
// defaults checked.
func (o *Options) snapshotter() snapshot.Snapshotter {
	if o.Snapshotter == SnapshotOverlay {
		return snapshot.OverlayFS{}
	}
	return snapshot.Walk{}
}

// hostPlatform is the platform Slipway runs on, as BuildKit's worker
// reports it: containerd's default, with arm's variant read from the CPU.
func hostPlatform() v1.Platform {
	return fromOCIPlatform(platforms.DefaultSpec())
}

// Plan reads and plans the Dockerfile as Build would, running nothing:
// the stages to build, in order, with their base images and instructions
// (kaniko's --dryrun).
func Plan(opts Options) (*dockerfile.Plan, error) {
	if opts.Platform.OS == "" {
		opts.Platform = hostPlatform()
	}
	_, _, plan, err := planBuild(opts)
	return plan, err
}

func planBuild(opts Options) (*dockerfile.Dockerfile, dockerfile.PlanOptions, *dockerfile.Plan, error) {
	df, err := readDockerfile(opts)
	if err != nil {
		return nil, dockerfile.PlanOptions{}, nil, err
	}
	planOpts := dockerfile.PlanOptions{
		BuildArgs:        opts.BuildArgs,
		Target:           opts.Target,
		TargetPlatform:   toOCIPlatform(opts.Platform),
		BuildPlatform:    toOCIPlatform(hostPlatform()),
		SkipUnusedStages: opts.SkipUnusedStages,
	}
	plan, err := df.Plan(planOpts)
	if err != nil {
		return nil, dockerfile.PlanOptions{}, nil, err
	}
	return df, planOpts, plan, nil
}

// DockerfilePath resolves --dockerfile as kaniko does: empty means the
// context's Dockerfile; a relative path is taken as given when it exists
// from the working directory, else inside the context. It is the one rule
// for where the Dockerfile, and the ignore file beside it, are.
func DockerfilePath(p, contextDir string) string {
	if p == "" {
		return filepath.Join(contextDir, "Dockerfile")
	}
	if filepath.IsAbs(p) {
		return p
	}
	if _, err := os.Stat(p); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			return abs
		}
	}
	return filepath.Join(contextDir, p)
}

func readDockerfile(opts Options) (*dockerfile.Dockerfile, error) {
	path := DockerfilePath(opts.Dockerfile, opts.ContextDir)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading Dockerfile: %w (check --dockerfile and --context)", err)
	}
	defer f.Close()
	return dockerfile.Parse(f, path)
}

func readIgnore(opts Options) (*dockerfile.Ignore, error) {
	return dockerfile.ReadIgnore(opts.ContextDir, DockerfilePath(opts.Dockerfile, opts.ContextDir))
}

// builder runs the planned stages and keeps their results for later
// stages' FROM and COPY --from.
type builder struct {
	opts     Options
	planOpts dockerfile.PlanOptions
	plan     *dockerfile.Plan
	ignore   *dockerfile.Ignore
	// roots is where stages unpack their filesystems.
	roots roots
	// ignoreList is what extraction and snapshots never touch.
	ignoreList *rootfs.IgnoreList
	trees      trees
	df         *dockerfile.Dockerfile
	// tocs are the layers' tables of contents: opts.TOCs, or this
	// build's own when it has none and a stage reads its base sparse.
	tocs *layertoc.Index
	// digests memoises context digests for cache keys.
	digests map[string]string
	// cacheWrites are the background cache writes.
	cacheWrites *errgroup.Group
	// layerUses says, by stage index, what each stage's layers are for.
	layerUses map[int]layerUse
	// readers counts, by stage index, the stages still to finish that may
	// read a stage's tree (remove.go); under mu.
	readers map[int]int

	mu   sync.Mutex
	done map[int]*stageResult
	// lowers are the base images' file trees read ahead, by base
	// reference (prefetch.go).
	lowers map[string]*lowerPrefetch
	// rootHolder is, in in-place mode, the stage whose unpacked files "/"
	// holds: the one that last unpacked onto it, until the next wipe
	// (-1: none). COPY --from that stage reads them there (liveRoot).
	rootHolder int
	ready      map[int]chan struct{}
	cleanups   []func()
	// cacheMountWarning says once that --cache-dir cannot hold cache mounts.
	cacheMountWarning sync.Once
}

// stageResult is what later stages see of a finished stage.
type stageResult struct {
	image v1.Image
	// key is the stage's final cache key; empty without the cache.
	key cache.Key
	// scope is the stage's final ARG and ENV state, which stages built
	// FROM it start from.
	scope *dockerfile.Scope
	// root is the stage's filesystem, kept for COPY --from; empty when the
	// stage was never materialised (or in in-place mode, where "/" moved on).
	root string
	// pending are its changes at "/" that its image lacks (pending.go).
	pending *pendingChanges
}

func (b *builder) runStages(ctx context.Context) error {
	if b.roots.shared() {
		for i := range b.plan.Stages {
			if i+1 < len(b.plan.Stages) {
				b.prefetchLower(ctx, &b.plan.Stages[i+1], &b.plan.Stages[i], nil)
			}
			if err := b.runStage(ctx, &b.plan.Stages[i]); err != nil {
				return err
			}
		}
		return nil
	}
	// Pulled images keep the context they were fetched with, and the
	// publisher reads their layers after the build: so the stages' context
	// is cancelled on the first failure only, never on success.
	sctx, cancel := context.WithCancel(ctx)
	var once sync.Once
	fail := func(err error) error {
		once.Do(cancel)
		return err
	}
	var g errgroup.Group
	for i := range b.plan.Stages {
		s := &b.plan.Stages[i]
		g.Go(func() error {
			for _, dep := range s.DependsOn {
				ch, ok := b.ready[dep]
				if !ok {
					continue
				}
				select {
				case <-ch:
				case <-sctx.Done():
					return sctx.Err()
				}
			}
			if err := b.runStage(sctx, s); err != nil {
				return fail(err)
			}
			return nil
		})
	}
	err := g.Wait()
	if err != nil {
		cancel()
	}
	return err
}

func (b *builder) runStage(ctx context.Context, s *dockerfile.PlannedStage) error {
	name := s.Name
	if name == "" {
		name = fmt.Sprint(s.Index)
	}
	b.opts.Log.Info(fmt.Sprintf("Building stage '%s' [idx: '%d', base-idx: '%d']", s.Base, s.Index, s.BaseStage), "stage", name)
	st, err := newStage(ctx, b, s)
	if err != nil {
		return err
	}
	res, err := st.build(ctx)
	if err != nil && b.opts.LayerCache != nil && cache.IsCacheError(err) {
		// A cached layer needed to unpack the root could not be read:
		// build the stage again, without the cache.
		b.opts.Log.Warn("A cached layer could not be read; building the stage again without the cache", "stage", name, "error", registry.Redact(err.Error()))
		res, err = st.withoutCache().build(ctx)
	}
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.done[s.Index] = res
	b.mu.Unlock()
	close(b.ready[s.Index])
	b.finished(s)
	return nil
}

// result returns a finished stage by index.
func (b *builder) result(index int) (*stageResult, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.done[index]
	return r, ok
}

func (b *builder) addCleanup(f func()) {
	b.mu.Lock()
	b.cleanups = append(b.cleanups, f)
	b.mu.Unlock()
}

func (b *builder) cleanup() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
}

// lineOf names a command's place in the Dockerfile for error messages.
func lineOf(cmd instructions.Command) string {
	if loc := cmd.Location(); len(loc) > 0 {
		return fmt.Sprintf("line %d", loc[0].Start.Line)
	}
	return "unknown line"
}

// commandError wraps an instruction's failure with its line and text.
func commandError(cmd instructions.Command, err error) error {
	text := cmd.Name()
	if s, ok := cmd.(fmt.Stringer); ok {
		text = s.String()
	}
	return fmt.Errorf("failed at Dockerfile %s: %s: %w", lineOf(cmd), dockerfile.Printable(text), err)
}
