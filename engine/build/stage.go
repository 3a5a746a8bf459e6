package build

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/slipway-build/slipway/engine/cache"
	"github.com/slipway-build/slipway/engine/dockerfile"
	"github.com/slipway-build/slipway/engine/layer"
	"github.com/slipway-build/slipway/engine/snapshot"
	"github.com/slipway-build/slipway/engine/userdb"
)

// stage is the executor of one Dockerfile stage: it applies the stage's
// planned steps (plan.go) to its filesystem and assembles its image.
type stage struct {
	b    *builder
	ps   *dockerfile.PlannedStage
	plan *stagePlan

	base    v1.Image
	layers  []v1.Layer   // new layers, in order
	history []v1.History // new history entries, in order
	created time.Time

	// fs is the stage's filesystem: unpacked, or sparse roots for steps
	// that only write files (roots.go).
	fs *stageFS
	// current is the index of the step running.
	current int

	// entries are the cache entries of the plan's keys, looked up at once
	// before the first step.
	entries map[cache.Key]*cache.Entry
	// noCache is set when a cached layer turned out unreadable: the stage
	// is then built again without the cache.
	noCache bool
	// pending are the changes on "/" not yet written (pending.go).
	pending *pendingChanges
}

// newStage resolves the stage's base (a finished stage, scratch or a
// pulled image) and plans its steps.
func newStage(ctx context.Context, b *builder, ps *dockerfile.PlannedStage) (*stage, error) {
	s := &stage{b: b, ps: ps, created: time.Now().UTC()}
	var parent *stageResult
	if b.opts.Epoch != nil {
		s.created = b.opts.Epoch.UTC()
	}
	platform := b.opts.Platform
	if ps.Platform != nil {
		platform = fromOCIPlatform(*ps.Platform)
	}
	switch {
	case ps.BaseStage >= 0:
		res, ok := b.result(ps.BaseStage)
		if !ok {
			return nil, fmt.Errorf("stage %q: base stage %d has not been built", ps.Name, ps.BaseStage)
		}
		s.base, parent = res.image, res
	case ps.Base == "scratch":
		s.base = empty.Image
	default:
		img, err := b.opts.Images.Pull(ctx, ps.Base, platform)
		if err != nil {
			return nil, &dockerfile.Error{File: b.df.Name, Line: ps.Line, Err: fmt.Errorf("FROM %s: %w", ps.Base, err)}
		}
		s.base = img
	}
	cf, err := s.base.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading the config of %s: %w", ps.Base, err)
	}
	cf = cf.DeepCopy()
	if ps.Base == "scratch" && ps.BaseStage < 0 {
		cf.OS, cf.Architecture, cf.Variant = platform.OS, platform.Architecture, platform.Variant
		cf.Config.Env = []string{"PATH=" + dockerfile.DefaultPath}
		// BuildKit's empty image (dockerfile2llb emptyImage) has "/".
		cf.Config.WorkingDir = "/"
	}
	var scope *dockerfile.Scope
	if parent != nil {
		// BuildKit carries a stage's ARG values into stages built FROM it.
		scope = parent.scope.Derive()
	} else {
		scope = dockerfile.NewScope(b.plan, ps, cf.Config.Env, b.planOpts)
	}
	key, err := b.baseKey(ps, s.base, parent, platform)
	if err != nil {
		return nil, err
	}
	in := planInput{
		stage: ps, base: cf, scope: scope,
		key: key, keys: stageKeys{b: b, platform: platform},
		keyRuns: b.opts.CacheRunLayers, keyCopies: b.opts.CacheCopyLayers,
		buildArgs: b.opts.BuildArgs,
	}
	if ps.Index == b.plan.Target {
		in.labels = b.opts.Labels
	}
	s.plan = planStage(ctx, in)
	s.fs = newStageFS(b, ps.Index, ps.Base)
	if parent == nil {
		// A base stage's layers went up as that stage held them.
		if layers, err := s.base.Layers(); err == nil {
			// An error here is the push's to report.
			s.uploadAhead(layers...)
		}
	}
	return s, nil
}

// withoutCache starts the stage over, to be built without the cache.
func (s *stage) withoutCache() *stage {
	return &stage{b: s.b, ps: s.ps, plan: s.plan, base: s.base, created: s.created,
		fs: newStageFS(s.b, s.ps.Index, s.ps.Base), noCache: true}
}

// build applies the stage's steps and assembles its image.
func (s *stage) build(ctx context.Context) (*stageResult, error) {
	s.lookup(ctx)
	for i := range s.plan.steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s.current = i
		if err := s.apply(ctx, &s.plan.steps[i]); err != nil {
			return nil, err
		}
	}
	if s.plan.err != nil {
		return nil, s.plan.err
	}
	if s.b.opts.SingleSnapshot && s.fs.unpacked() && s.layerUse() != noLayers {
		r := s.fs.full
		if err := s.snapshot(ctx, snapshot.NewWalker(r.path, r.idx, s.b.ignoreList), "single snapshot of the stage"); err != nil {
			return nil, err
		}
	}
	img, err := s.image()
	if err != nil {
		return nil, err
	}
	key := s.plan.key
	if s.noCache {
		key = ""
	}
	return &stageResult{image: img, scope: s.plan.scope, key: key, root: s.fs.kept(), pending: s.pending}, nil
}

// apply runs one step: a step that only edits the config leaves history,
// the others do their work through the cache.
func (s *stage) apply(ctx context.Context, st *step) error {
	if st.trigger {
		s.b.opts.Log.Info("Executing ONBUILD trigger: " + st.cmd.Name())
	}
	s.b.opts.Log.Info(commandText(st.cmd))
	var err error
	if st.action == nil {
		s.emptyHistory(st.history)
	} else {
		err = s.cached(ctx, st, func() error { return st.action.exec(ctx, s, st) })
	}
	if err == nil {
		return nil
	}
	err = commandError(st.cmd, err)
	if st.trigger {
		err = fmt.Errorf("ONBUILD trigger of %s: %w", s.ps.Base, err)
	}
	return err
}

func (a workdirAction) exec(ctx context.Context, s *stage, st *step) error {
	return s.mkWorkdir(ctx, st, a.path)
}

func (a copyAction) exec(ctx context.Context, s *stage, st *step) error {
	return s.writeFiles(ctx, func(d root) error { return s.copyTo(ctx, d, st, a.spec) })
}

func (a runAction) exec(ctx context.Context, s *stage, st *step) error {
	return s.run(ctx, st, a)
}

// mkWorkdir creates the working directory as BuildKit does, owned by the
// current USER as BuildKit's file operations resolve it, in a layer of its
// own.
func (s *stage) mkWorkdir(ctx context.Context, st *step, wd string) error {
	return s.writeFiles(ctx, func(d root) error {
		uid, gid := 0, 0
		if u := st.config.User; u != "" {
			if err := d.revealUserDB(); err != nil {
				return err
			}
			u32, g32, err := userdb.ResolveFileOwner(d.dir(), u)
			if err != nil {
				return err
			}
			uid, gid = int(u32), int(g32)
		}
		if err := d.reveal(wd); err != nil {
			return err
		}
		created, err := mkdirAll(d.dir(), wd, 0o755, uid, gid, s.b.opts.Epoch)
		if err != nil {
			return err
		}
		if len(created) == 0 {
			s.emptyHistory(st.history)
			return nil
		}
		changes := make([]layer.Change, 0, len(created))
		for _, p := range created {
			changes = append(changes, layer.Change{Path: p})
		}
		return s.commitTo(d, changes, st.history+" # buildkit")
	})
}

// unpack returns the stage's unpacked root, extracting its image so far
// on the first step that needs the whole of it.
func (s *stage) unpack(ctx context.Context) (*unpackedRoot, error) {
	if s.fs.unpacked() {
		return s.fs.full, nil
	}
	img, err := s.currentImage()
	if err != nil {
		return nil, err
	}
	return s.fs.unpack(ctx, img)
}

// currentImage is the base plus the layers this stage has made so far.
func (s *stage) currentImage() (v1.Image, error) {
	if len(s.layers) == 0 {
		return s.base, nil
	}
	return mutate.AppendLayers(s.base, s.layers...)
}

// commitTo commits what a step wrote on r. With a single snapshot, steps
// only leave history: the stage's one layer is taken at its end.
func (s *stage) commitTo(r root, changes []layer.Change, createdBy string) error {
	if s.b.opts.SingleSnapshot {
		s.emptyHistory(createdBy)
	} else if err := s.commitFrom(r.dir(), changes, createdBy); err != nil {
		return err
	}
	// What the step wrote, and the directories it wrote into, are in its
	// layer, parents included, so they are not changes for the next
	// snapshot. They are recorded once the layer is written, which only
	// reads them: by then most of their ctimes have settled, and the
	// index waits less for the rest (rootfs.Index.Settle).
	return r.wrote(withParents(changes))
}

// withParents lists the changed paths and every directory above them,
// each once. Only the directories are kept in a set: a COPY of a tree
// changes far more files than directories.
func withParents(changes []layer.Change) []string {
	parents := map[string]bool{}
	var paths []string
	for _, c := range changes {
		for p := path.Dir(path.Clean(c.Path)); p != "/" && !parents[p]; p = path.Dir(p) {
			parents[p] = true
			paths = append(paths, p)
		}
	}
	prev := ""
	for _, c := range changes {
		// A path is changed twice only by adjacent changes (Opaque and
		// Add of one directory).
		if p := path.Clean(c.Path); p != "/" && p != prev && !parents[p] {
			paths = append(paths, p)
			prev = p
		}
	}
	return paths
}

// commitFrom writes changes read under root, which is the stage root or an
// overlay mounted over it.
func (s *stage) commitFrom(root string, changes []layer.Change, createdBy string) error {
	opts := layer.Options{
		KeepUncompressed: s.b.opts.ExtractedLayerDir,
		Compression:      s.b.opts.Compression,
		Level:            s.b.opts.CompressionLevel,
		Epoch:            s.b.opts.Epoch,
		TempDir:          s.b.opts.WorkDir,
		TOCs:             s.b.opts.TOCs,
	}
	switch s.layerUse() {
	case noLayers:
		// Nothing reads this stage's image: its root, which later steps
		// and stages read, already holds the change.
		s.emptyHistory(createdBy)
		return nil
	case layersForLocalReads:
		// layerUses gives this use only in place. Once the stage is
		// unpacked at "/", "/" holds the change; it is written only if a
		// reader cannot read it there (pending.go). A step on a sparse
		// root writes its layer as it goes.
		if s.fs.unpacked() {
			if s.pending == nil {
				s.pending = &pendingChanges{}
			}
			s.pending.add(changes)
			s.emptyHistory(createdBy)
			return nil
		}
		// Read back once by this build, never pushed, never kept.
		opts.Compression, opts.Level = layer.Uncompressed, 0
		opts.KeepUncompressed, opts.TOCs = "", nil
	}
	if s.uploadsAhead() {
		// The upload reads the layer while it is compressed.
		opts.Upload = s.b.opts.Uploads.Upload
	}
	l, err := layer.Write(root, changes, opts)
	if err != nil {
		return err
	}
	// The layer file lives in WorkDir until the caller, having published
	// the image, removes that directory.
	s.layers = append(s.layers, l)
	s.history = append(s.history, v1.History{Created: v1.Time{Time: s.created}, CreatedBy: createdBy, Comment: "slipway"})
	return nil
}

// uploadAhead starts uploading layers of a stage whose image is pushed, as
// soon as the stage holds them (its base's, a cached step's; a written
// one's goes up while it is compressed: commitFrom), so that the push at
// the end finds every blob in place and only writes the config and the
// manifest. A base's layer is mounted from its
// repository where the registry is the same.
func (s *stage) uploadAhead(layers ...v1.Layer) {
	if !s.uploadsAhead() {
		return
	}
	for _, l := range layers {
		s.b.opts.Uploads.Upload(l)
	}
}

// uploadsAhead says whether the stage's layers go up while the build runs.
func (s *stage) uploadsAhead() bool {
	return s.layerUse() == layersPushed && s.b.opts.Uploads != nil
}

// layerUse is what the stage's layers are for (plan.go's layerUses).
func (s *stage) layerUse() layerUse {
	return s.b.layerUses[s.ps.Index]
}

func (s *stage) emptyHistory(createdBy string) {
	s.history = append(s.history, v1.History{Created: v1.Time{Time: s.created}, CreatedBy: createdBy, Comment: "slipway", EmptyLayer: true})
}

// image assembles the stage's image: base layers, new layers, and a config
// with the edited container config and the full history.
func (s *stage) image() (v1.Image, error) {
	img := s.base
	if s.b.opts.Compression == layer.Zstd {
		// zstd layers are only valid in OCI manifests.
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	} else if mt, err := img.MediaType(); err == nil && mt == "" {
		img = mutate.MediaType(img, types.DockerManifestSchema2)
	}
	if len(s.layers) > 0 {
		var err error
		if img, err = mutate.AppendLayers(img, s.layers...); err != nil {
			return nil, fmt.Errorf("assembling the image: %w", err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	final := s.plan.config
	cf.Config = final.Config
	cf.Author = final.Author
	cf.OS, cf.Architecture, cf.Variant = final.OS, final.Architecture, final.Variant
	cf.Created = v1.Time{Time: s.created}
	cf.History = append(append([]v1.History(nil), final.History...), s.history...)
	if cf.Config.Labels != nil && len(cf.Config.Labels) == 0 {
		cf.Config.Labels = nil
	}
	return mutate.ConfigFile(img, cf)
}

func commandText(cmd instructions.Command) string {
	if st, ok := cmd.(fmt.Stringer); ok {
		return st.String()
	}
	return strings.ToUpper(cmd.Name())
}

// historyText is the history's created_by for metadata instructions, in
// BuildKit's form ("ENV A=b", "LABEL k=v").
func historyText(cmd instructions.Command) string {
	switch c := cmd.(type) {
	case *instructions.EnvCommand:
		return "ENV " + kvText(c.Env)
	case *instructions.LabelCommand:
		return "LABEL " + kvText(c.Labels)
	case *instructions.WorkdirCommand:
		return "WORKDIR " + c.Path
	case *instructions.UserCommand:
		return "USER " + c.User
	case *instructions.ExposeCommand:
		ports := append([]string(nil), c.Ports...)
		sort.Strings(ports)
		return "EXPOSE map[" + strings.Join(ports, ":{} ") + ":{}]"
	case *instructions.VolumeCommand:
		return fmt.Sprintf("VOLUME %v", c.Volumes)
	}
	return commandText(cmd)
}

func kvText(kvs instructions.KeyValuePairs) string {
	parts := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		parts = append(parts, kv.Key+"="+kv.Value)
	}
	return strings.Join(parts, " ")
}

func quoteArgs(args []string) string {
	return fmt.Sprintf("%q", args)
}

func toOCIPlatform(p v1.Platform) ocispec.Platform {
	return ocispec.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion}
}

func fromOCIPlatform(p ocispec.Platform) v1.Platform {
	return v1.Platform{OS: p.OS, Architecture: p.Architecture, Variant: p.Variant, OSVersion: p.OSVersion}
}
