package build

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-build/slipway/engine/dockerfile"
	"github.com/slipway-build/slipway/engine/rootfs"
)

// In place, stages run one after another. A stage FROM an image with no
// RUN writes its files on sparse roots, which first read the headers of
// its base's layers: a second of download and decompression for Debian,
// with nothing else to do in the meantime. So the headers of the next
// stage's base are read while the stage before it runs, unless that stage
// unpacks the same base: the tables of contents its unpack records then
// serve the next stage, and a second read of the base beside that unpack
// would only take cores from it.

// lowerPrefetch is a base image's file tree being read ahead.
type lowerPrefetch struct {
	done  chan struct{}
	lower *rootfs.Lower // nil when the read failed: the stage reads it again
	// digest is the image's whose tree lower is.
	digest v1.Hash
}

// prefetchLower starts reading the file tree of ps's base, when ps is
// FROM an image and has no RUN (sparseWrites), and keeps it for the
// stage's first sparse root (takeLower), unless running, the stage before
// ps, unpacks that base. The read stops with the build.
func (b *builder) prefetchLower(ctx context.Context, ps, running *dockerfile.PlannedStage) {
	if !b.readsBaseSparse(*ps) || b.unpacksBaseOf(running, ps) {
		return
	}
	platform := b.opts.Platform
	if ps.Platform != nil {
		platform = fromOCIPlatform(*ps.Platform)
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &lowerPrefetch{done: make(chan struct{})}
	b.mu.Lock()
	if b.lowers == nil {
		b.lowers = map[string]*lowerPrefetch{}
	}
	b.lowers[ps.Base] = p
	b.mu.Unlock()
	b.addCleanup(func() { cancel(); <-p.done })
	go func() {
		defer close(p.done)
		img, err := b.opts.Images.Pull(ctx, ps.Base, platform)
		if err != nil {
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

// readsBaseSparse says whether stage ps writes its files onto sparse roots
// of the image it is built FROM: it has no RUN, and its base is an image.
func (b *builder) readsBaseSparse(ps dockerfile.PlannedStage) bool {
	return ps.BaseStage < 0 && ps.Base != "scratch" && !b.opts.SingleSnapshot && !hasRun(ps.Commands)
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
