package build

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/slipway-build/slipway/engine/dockerfile"
	"github.com/slipway-build/slipway/engine/rootfs"
)

// A stage FROM an image with no RUN writes its files on sparse roots,
// which first read the headers of its base's layers: a second of download
// and decompression for Debian, or, where their tables of contents are
// kept, a few small blobs and their decoding. So the base's tree is read
// ahead: in place, where stages run one after another, the next stage's
// while the stage before it runs, unless that stage unpacks the same base
// (the tables of contents its unpack records then serve the next stage,
// and a second read of the base beside that unpack would only take cores
// from it); and with a layer cache, a stage's own while the cache is
// looked up, which may leave its RUNs unrun.

// lowerPrefetch is a base image's file tree being read ahead.
type lowerPrefetch struct {
	done  chan struct{}
	lower *rootfs.Lower // nil when the read failed: the stage reads it again
	// digest is the image's whose tree lower is.
	digest v1.Hash
}

// prefetchLower starts reading the file tree of ps's base, when ps is
// FROM an image and writes on sparse roots of it (sparseWrites), and keeps
// it for the stage's first sparse root (takeLower), unless running, the
// stage before ps (nil for ps's own read), unpacks that base. That is a
// stage with no RUN (readsBaseSparse), or, with a layer cache, whose hits
// leave the RUNs unrun, one with a step that writes files after its last
// RUN (maySkipRuns): then the tree is read only where every layer's table
// of contents is at hand, since a RUN that does run unpacks the layers
// anyway. base is ps's base image where the stage has pulled it already,
// nil to have it pulled here. The read stops with the build.
func (b *builder) prefetchLower(ctx context.Context, ps, running *dockerfile.PlannedStage, base v1.Image) {
	if running != nil && b.unpacksBaseOf(running, ps) {
		return
	}
	tablesOnly := !b.readsBaseSparse(*ps)
	if tablesOnly && !b.maySkipRuns(*ps) {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &lowerPrefetch{done: make(chan struct{})}
	b.mu.Lock()
	if b.lowers == nil {
		b.lowers = map[string]*lowerPrefetch{}
	}
	if b.lowers[ps.Base] != nil {
		// Already being read, for this stage or another FROM the image.
		b.mu.Unlock()
		cancel()
		return
	}
	b.lowers[ps.Base] = p
	b.mu.Unlock()
	b.addCleanup(func() { cancel(); <-p.done })
	go func() {
		defer close(p.done)
		img := base
		if img == nil {
			platform := b.opts.Platform
			if ps.Platform != nil {
				platform = fromOCIPlatform(*ps.Platform)
			}
			pulled, err := b.opts.Images.Pull(ctx, ps.Base, platform)
			if err != nil {
				return
			}
			img = pulled
		}
		if tablesOnly && !b.tablesAtHand(ctx, img) {
			return
		}
		lower, err := rootfs.ScanImage(ctx, img, b.extractOptions()...)
		if err != nil {
			return
		}
		if d, err := img.Digest(); err == nil {
			p.lower, p.digest = lower, d
		}
	}()
}

// unpacksBaseOf says whether stage running surely unpacks the image that
// stage ps is built FROM, recording its layers' tables: it is FROM the
// same image and has a RUN, and no layer cache can spare it the unpack.
func (b *builder) unpacksBaseOf(running, ps *dockerfile.PlannedStage) bool {
	return b.tocs != nil && b.opts.LayerCache == nil &&
		running.BaseStage < 0 && running.Base == ps.Base && hasRun(running.Commands) &&
		b.stagePlatform(running).Equals(b.stagePlatform(ps))
}

// sparseBase says whether stage ps can write onto sparse roots of the
// image it is built FROM at all: its base is an image, and no single
// snapshot needs the unpacked root.
func (b *builder) sparseBase(ps dockerfile.PlannedStage) bool {
	return ps.BaseStage < 0 && ps.Base != "scratch" && !b.opts.SingleSnapshot
}

// readsBaseSparse says whether stage ps writes its files onto sparse roots
// of the image it is built FROM: it has no RUN.
func (b *builder) readsBaseSparse(ps dockerfile.PlannedStage) bool {
	return b.sparseBase(ps) && !hasRun(ps.Commands)
}

// maySkipRuns says whether stage ps, which has a RUN, may still write on
// sparse roots of the image it is built FROM: with a layer cache, whose
// hits leave the RUNs unrun, when a COPY, ADD or WORKDIR comes after its
// last RUN.
func (b *builder) maySkipRuns(ps dockerfile.PlannedStage) bool {
	if !b.sparseBase(ps) || b.opts.LayerCache == nil || b.tocs == nil {
		return false
	}
	for i := len(ps.Commands) - 1; i >= 0; i-- {
		switch ps.Commands[i].(type) {
		case *instructions.RunCommand:
			return false
		case *instructions.CopyCommand, *instructions.AddCommand, *instructions.WorkdirCommand:
			return true
		}
	}
	return false
}

// tablesAtHand says whether the table of contents of every layer of img is
// at hand; they are looked up all at once, and kept by the build's Index
// for the tree that reads them.
func (b *builder) tablesAtHand(ctx context.Context, img v1.Image) bool {
	layers, err := img.Layers()
	if err != nil {
		return false
	}
	rootfs.PrefetchTOCs(ctx, layers, b.extractOptions()...)
	for _, l := range layers {
		if b.tocs.Lookup(ctx, l) == nil {
			return false
		}
	}
	return true
}

// takeLower returns the file tree read ahead for base, the stage's pulled
// base image named ref, or nil; each is taken once.
func (b *builder) takeLower(ref string, base v1.Image) *rootfs.Lower {
	b.mu.Lock()
	p := b.lowers[ref]
	delete(b.lowers, ref)
	b.mu.Unlock()
	if p == nil {
		return nil
	}
	<-p.done
	if d, err := base.Digest(); err != nil || p.lower == nil || d != p.digest {
		return nil
	}
	return p.lower
}
