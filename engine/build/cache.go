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
)

// The layer cache. Every step that makes a layer (COPY, ADD, RUN, and
// WORKDIR creating its directory) has a key chained from the stage's base
// (engine/cache), which the plan pass computes (plan.go). Before a stage
// runs, all of its keys are looked up at once. A hit appends the cached
// layer without running the step, and without the root filesystem: a stage
// is only unpacked from its first miss on, with the cached layers up to it.
// So a rebuild where nothing changed reads only manifests and configs, and
// pushes by mounting blobs.

// baseKey starts a stage's key chain: its base stage's final key, or its
// base image's digest and platform. Empty when the cache is off.
func (b *builder) baseKey(ps *dockerfile.PlannedStage, base v1.Image, parent *stageResult, platform v1.Platform) (cache.Key, error) {
	switch {
	case b.opts.LayerCache == nil:
		return "", nil
	case parent != nil:
		return parent.key, nil
	case ps.Base == dockerfile.Scratch:
		return cache.BaseKey(v1.Hash{}, platform), nil
	}
	digest, err := base.Digest()
	if err != nil {
		return "", fmt.Errorf("FROM %s: %w", ps.Base, err)
	}
	return cache.BaseKey(digest, platform), nil
}

// caching says whether the stage uses the layer cache.
func (s *stage) caching() bool {
	return s.b.opts.LayerCache != nil && !s.noCache
}

// lookup looks up the keys of all the stage's steps concurrently.
func (s *stage) lookup(ctx context.Context) {
	if !s.caching() {
		return
	}
	var keys []cache.Key
	for _, st := range s.plan.steps {
		if st.key != "" {
			keys = append(keys, st.key)
		}
	}
	if len(keys) == 0 {
		return
	}
	s.b.opts.Log.Info(fmt.Sprintf("Checking the cache for %d steps", len(keys)), "stage", s.ps.Name)
	// A rebuild whose RUNs all hit writes its later files on a sparse
	// root: its base's tree is read while the cache is looked up, from the
	// base the stage has pulled, not from a second pull.
	s.b.prefetchLower(ctx, s.ps, nil, s.base)
	entries := cache.Lookup(ctx, s.b.opts.Log, s.b.opts.LayerCache, keys)
	s.entries = make(map[cache.Key]*cache.Entry, len(entries))
	for i, e := range entries {
		s.entries[keys[i]] = e
	}
}

// cached runs a layer-making step through the cache: a hit takes the
// cached layer, a miss builds the step with exec and stores its result.
func (s *stage) cached(ctx context.Context, st *step, exec func() error) error {
	if !s.caching() {
		return exec()
	}
	if st.keyErr != nil {
		return st.keyErr
	}
	if st.key == "" {
		return exec()
	}
	if entry := s.entries[st.key]; entry != nil {
		err := s.applyCached(entry)
		if err == nil {
			s.b.opts.Log.Info("Using caching version of cmd", "key", string(st.key)[:12])
			return nil
		}
		s.b.opts.Log.Warn("A cached layer could not be read; building the step instead", "key", string(st.key)[:12], "error", registry.Redact(err.Error()))
	}
	before := len(s.layers)
	if err := exec(); err != nil {
		return err
	}
	s.put(ctx, st.key, before)
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
	if err := s.fs.apply(entry.Layer); err != nil {
		return err
	}
	s.layers = append(s.layers, entry.Layer)
	s.uploadAhead(entry.Layer)
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

// input keys a COPY or ADD by its sources' contents: the context files it
// reads (after .dockerignore), or the final key of the stage or the digest
// of the image it copies from. Like BuildKit, ARG and ENV values count only
// through the expanded instruction.
func (a copyAction) input(ctx context.Context, p *planner, st *step) (cache.StepInput, bool, error) {
	if !p.in.keyCopies {
		return cache.StepInput{}, false, nil
	}
	spec := a.spec
	parts := []string{copyHistory(spec), "from=" + spec.from, fmt.Sprintf("parents=%v", spec.parents), "checksum=" + spec.checksum}
	parts = append(parts, spec.excludes...)
	for _, c := range spec.contents {
		parts = append(parts, "heredoc="+c.Path+"\x00"+c.Data)
	}
	if spec.unpack != nil {
		parts = append(parts, fmt.Sprintf("unpack=%v", *spec.unpack))
	}
	in := stepInput(st, strings.Join(parts, "\x00"))
	if spec.from != "" {
		from, ok, err := p.in.keys.fromKey(ctx, spec.from, true)
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
	digest, err := p.in.keys.sourceDigest(local)
	if err != nil {
		return in, false, err
	}
	in.SourceDigest = digest
	return in, true, nil
}

// input keys a RUN by its command, the ARG and ENV values it sees, its
// network and its mounts: what a bind mount reads from the context or
// another stage is part of the key, a secret's value is not (as BuildKit).
func (a runAction) input(ctx context.Context, p *planner, st *step) (cache.StepInput, bool, error) {
	if !p.in.keyRuns {
		return cache.StepInput{}, false, nil
	}
	c := a.cmd
	args, _, err := dockerfile.RunArgv(c, a.shell)
	if err != nil {
		return cache.StepInput{}, false, err
	}
	text := "RUN " + strings.Join(args, "\x00") + "\x00network=" + instructions.GetNetwork(c)
	in := stepInput(st, text)
	in.Env = a.keyEnv
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
			from, ok, err := p.in.keys.fromKey(ctx, m.From, false)
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
		if in.SourceDigest, err = p.in.keys.sourceDigest(bound); err != nil {
			return in, false, err
		}
	}
	return in, true, nil
}

// stageKeys is the keySource of a stage being built: finished stages'
// keys, images pulled for the stage's platform, and the build context.
type stageKeys struct {
	b        *builder
	platform v1.Platform
}

func (k stageKeys) fromKey(ctx context.Context, ref string, byIndex bool) (cache.Key, bool, error) {
	if idx, ok := k.b.plan.StageRef(ref, byIndex); ok {
		res, ok := k.b.result(idx)
		if !ok || res.key == "" {
			return "", false, nil
		}
		return res.key, true, nil
	}
	img, err := k.b.opts.Images.Pull(ctx, ref, k.platform)
	if err != nil {
		return "", false, fmt.Errorf("--from=%s: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return "", false, err
	}
	return cache.BaseKey(digest, k.platform), true, nil
}

func (k stageKeys) sourceDigest(paths []string) (string, error) {
	return k.b.sourceDigest(paths)
}

// sourceDigest digests context paths once per build, however many steps
// ask.
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
