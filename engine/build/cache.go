package build

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/slipway-build/slipway/engine/cache"
	"github.com/slipway-build/slipway/engine/dockerfile"
	"github.com/slipway-build/slipway/engine/registry"
	"github.com/slipway-build/slipway/engine/rootfs"
)

// The layer cache. Every step that makes a layer (COPY, ADD, RUN, and
// WORKDIR creating its directory) has a key chained from the stage's base
// (engine/cache). Before a stage runs, a dry pass over fresh copies of its
// commands computes every key, and all of them are looked up at once. A hit
// appends the cached layer without running the step, and without the root
// filesystem: a stage is only unpacked from its first miss on, with the
// cached layers up to it. So a rebuild where nothing changed reads only
// manifests and configs, and pushes by mounting blobs.

// initialKey starts the stage's key chain.
func (s *stage) initialKey(parent *stageResult, platform v1.Platform) error {
	if s.b.opts.LayerCache == nil {
		return nil
	}
	switch {
	case parent != nil:
		s.key = parent.key
	case s.ps.Base == dockerfile.Scratch:
		s.key = cache.BaseKey(v1.Hash{}, platform)
	default:
		digest, err := s.base.Digest()
		if err != nil {
			return fmt.Errorf("FROM %s: %w", s.ps.Base, err)
		}
		s.key = cache.BaseKey(digest, platform)
	}
	return nil
}

// dryPlan is a second copy of the plan for the dry passes, parsed once per
// build: expansion rewrites commands in place, so the real plan's cannot
// serve, and each stage's dry pass expands only its own stage's commands,
// once.
func (b *builder) dryPlan() (*dockerfile.Plan, error) {
	b.dryOnce.Do(func() { b.dry, b.dryErr = b.df.Plan(b.planOpts) })
	return b.dry, b.dryErr
}

// prefetch looks up the keys of all the stage's steps concurrently.
func (s *stage) prefetch(ctx context.Context) {
	if s.b.opts.LayerCache == nil || s.key == "" || s.noCache {
		return
	}
	plan, err := s.b.dryPlan()
	if err != nil {
		return
	}
	fresh := plan.Stage(s.ps.Index)
	if fresh == nil {
		return
	}
	shadow := &stage{b: s.b, ps: fresh, base: s.base, cfg: s.cfg.DeepCopy(), created: s.created,
		key: s.key, dry: true, newScope: s.newScope}
	shadow.scope = s.newScope()
	// The real pass reports any error; the dry pass only stops early.
	_ = shadow.steps(ctx, fresh.Commands)
	if len(shadow.dryKeys) == 0 {
		return
	}
	s.b.opts.Log.Info(fmt.Sprintf("Checking the cache for %d steps", len(shadow.dryKeys)), "stage", s.ps.Name)
	entries := cache.Lookup(ctx, s.b.opts.Log, s.b.opts.LayerCache, shadow.dryKeys)
	s.prefetched = make(map[cache.Key]*cache.Entry, len(entries))
	for i, e := range entries {
		s.prefetched[shadow.dryKeys[i]] = e
	}
}

// cached runs a layer-making step through the cache: input says what the
// step's result depends on (ok false when it cannot be keyed, which ends
// caching for the rest of the stage), exec builds it.
func (s *stage) cached(ctx context.Context, input func() (cache.StepInput, bool, error), exec func() error) error {
	store := s.b.opts.LayerCache
	if store == nil || s.noCache || s.key == "" {
		s.key = ""
		if s.dry {
			return nil
		}
		return exec()
	}
	in, ok, err := input()
	if err != nil || !ok {
		s.key = ""
		if s.dry {
			return nil
		}
		if err != nil {
			return err
		}
		return exec()
	}
	key := s.key.Next(in)
	if s.dry {
		s.dryKeys = append(s.dryKeys, key)
		s.key = key
		return nil
	}
	entry, looked := s.prefetched[key]
	if !looked {
		if entry, err = store.Get(ctx, key); err != nil {
			s.b.opts.Log.Warn("Cache lookup failed; building the step instead", "error", registry.Redact(err.Error()))
			entry = nil
		}
	}
	if entry != nil {
		err := s.applyCached(entry)
		if err == nil {
			s.log("Using caching version of cmd", "key", string(key)[:12])
			s.key = key
			return nil
		}
		s.b.opts.Log.Warn("A cached layer could not be read; building the step instead", "key", string(key)[:12], "error", registry.Redact(err.Error()))
	}
	before := len(s.layers)
	if err := exec(); err != nil {
		return err
	}
	s.key = key
	s.put(ctx, key, before)
	return nil
}

// applyCached adds a cached step's result. While the stage has no root
// filesystem yet it only appends the layer; otherwise the layer is also
// applied to the root so that later steps see it.
func (s *stage) applyCached(entry *cache.Entry) error {
	if entry.Layer == nil {
		s.emptyHistory(entry.CreatedBy)
		return nil
	}
	if s.materialized {
		rc, err := entry.Layer.Uncompressed()
		if err != nil {
			return err
		}
		err = rootfs.Extract(s.root, rc, s.idx, s.extractOptions()...)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			// The root may hold part of the layer: unpack it again from
			// the image on the next step that needs it.
			s.discardRoot()
			return err
		}
	}
	s.layers = append(s.layers, entry.Layer)
	s.history = append(s.history, v1.History{Created: v1.Time{Time: s.created}, CreatedBy: entry.CreatedBy, Comment: "slipway"})
	return nil
}

// put stores the step just built, in the background: writing the cache
// never holds up the build or its push.
func (s *stage) put(ctx context.Context, key cache.Key, layersBefore int) {
	if s.b.opts.NoPushCache || len(s.history) == 0 {
		return
	}
	entry := &cache.Entry{CreatedBy: s.history[len(s.history)-1].CreatedBy, Created: time.Now().UTC()}
	if len(s.layers) > layersBefore {
		entry.Layer = s.layers[layersBefore]
	}
	store := s.b.opts.LayerCache
	s.b.cacheWrites.Go(func() error {
		if err := store.Put(context.WithoutCancel(ctx), key, entry); err != nil {
			s.b.opts.Log.Warn("Writing the cache failed; the build is not affected", "error", registry.Redact(err.Error()))
		}
		return nil
	})
}

// stepInput is what every keyed step depends on besides its own inputs:
// the instruction text after expansion and the working directory and user
// it runs with.
func (s *stage) stepInput(text string) cache.StepInput {
	return cache.StepInput{Instruction: strings.Join([]string{text, "workdir=" + s.cfg.Config.WorkingDir, "user=" + s.cfg.Config.User}, "\x00")}
}

// copyInput keys a COPY or ADD by its sources' contents: the context files
// it reads (after .dockerignore), or the final key of the stage or the
// digest of the image it copies from. Like BuildKit, ARG and ENV values
// count only through the expanded instruction.
func (s *stage) copyInput(ctx context.Context, spec copySpec) (cache.StepInput, bool, error) {
	if !s.b.opts.CacheCopyLayers {
		return cache.StepInput{}, false, nil
	}
	parts := []string{copyHistory(spec), "from=" + spec.from, fmt.Sprintf("parents=%v", spec.parents), "checksum=" + spec.checksum}
	parts = append(parts, spec.excludes...)
	for _, c := range spec.contents {
		parts = append(parts, "heredoc="+c.Path+"\x00"+c.Data)
	}
	if spec.unpack != nil {
		parts = append(parts, fmt.Sprintf("unpack=%v", *spec.unpack))
	}
	in := s.stepInput(strings.Join(parts, "\x00"))
	if spec.from != "" {
		from, ok, err := s.fromKey(ctx, spec.from, true)
		if err != nil || !ok {
			return in, false, err
		}
		in.From = []cache.Key{from}
		return in, true, nil
	}
	var local []string
	for _, src := range spec.sources {
		if isURL(src) {
			// A URL's content is only known by downloading it, unless
			// --checksum pins it (and it is then part of the key).
			if spec.checksum == "" {
				return in, false, nil
			}
			continue
		}
		local = append(local, src)
	}
	digest, err := s.b.sourceDigest(local)
	if err != nil {
		return in, false, err
	}
	in.SourceDigest = digest
	return in, true, nil
}

// runInput keys a RUN by its command, the ARG and ENV values it sees, its
// network and its mounts: what a bind mount reads from the context or
// another stage is part of the key, a secret's value is not (as BuildKit).
func (s *stage) runInput(ctx context.Context, c *instructions.RunCommand) (cache.StepInput, bool, error) {
	if !s.b.opts.CacheRunLayers {
		return cache.StepInput{}, false, nil
	}
	args, _, err := dockerfile.RunArgv(c, s.shell())
	if err != nil {
		return cache.StepInput{}, false, err
	}
	text := "RUN " + strings.Join(args, "\x00") + "\x00network=" + instructions.GetNetwork(c)
	in := s.stepInput(text)
	in.Env = cache.ScopeEnv(s.scope)
	var mounts, bound []string
	for _, m := range instructions.GetMounts(c) {
		def := fmt.Sprintf("type=%s,target=%s,source=%s,from=%s,id=%s,sharing=%s,ro=%v,required=%v", m.Type, m.Target, m.Source, m.From, m.CacheID, m.CacheSharing, m.ReadOnly, m.Required)
		for _, n := range []*uint64{m.Mode, m.UID, m.GID} {
			if n != nil {
				def += fmt.Sprintf(",%d", *n)
			}
		}
		if m.Env != nil {
			def += ",env=" + *m.Env
		}
		mounts = append(mounts, def)
		if m.Type != instructions.MountTypeBind {
			continue
		}
		if m.From != "" {
			from, ok, err := s.fromKey(ctx, m.From, false)
			if err != nil || !ok {
				return in, false, err
			}
			in.From = append(in.From, from)
		} else {
			bound = append(bound, m.Source)
		}
	}
	in.Mounts = strings.Join(mounts, "\n")
	if len(bound) > 0 {
		if in.SourceDigest, err = s.b.sourceDigest(bound); err != nil {
			return in, false, err
		}
	}
	return in, true, nil
}

// fromKey is the key of what --from names: a finished stage's final key,
// or an image's base key. byIndex is as for fromTree.
func (s *stage) fromKey(ctx context.Context, ref string, byIndex bool) (cache.Key, bool, error) {
	if idx, ok := s.b.plan.StageRef(ref, byIndex); ok {
		res, ok := s.b.result(idx)
		if !ok || res.key == "" {
			return "", false, nil
		}
		return res.key, true, nil
	}
	platform := s.b.opts.Platform
	if s.ps.Platform != nil {
		platform = fromOCIPlatform(*s.ps.Platform)
	}
	img, err := s.b.opts.Images.Pull(ctx, ref, platform)
	if err != nil {
		return "", false, fmt.Errorf("--from=%s: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return "", false, err
	}
	return cache.BaseKey(digest, platform), true, nil
}

// sourceDigest digests context paths once per build, however many dry and
// real passes ask.
func (b *builder) sourceDigest(paths []string) (string, error) {
	sorted := append([]string(nil), paths...)
	sort.Strings(sorted)
	memo := strings.Join(sorted, "\x00")
	b.mu.Lock()
	d, ok := b.digests[memo]
	b.mu.Unlock()
	if ok {
		return d, nil
	}
	d, err := cache.SourceDigest(b.opts.ContextDir, paths, b.ignore.Excluded, cache.WithSkipDir(b.ignore.SkipDir))
	if err != nil {
		return "", err
	}
	b.mu.Lock()
	if b.digests == nil {
		b.digests = map[string]string{}
	}
	b.digests[memo] = d
	b.mu.Unlock()
	return d, nil
}
