package publish

import (
	"context"
	"log/slog"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-build/slipway/engine/phase"
	"github.com/slipway-build/slipway/engine/registry"
)

// Uploader sends the image's blobs to every destination while the build
// goes on, each layer as soon as the build holds it and the config once
// the image is assembled, so that the push at the end finds them there
// and only writes the manifest: the registry.Client's Pusher remembers
// what went up. It never writes a tag: an upload is a blob, which a failed
// build leaves unnamed. An upload that fails is only logged: the push
// uploads the blob again, and fails the build if it still cannot.
type Uploader struct {
	c     *registry.Client
	repos []name.Tag
	log   *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// slots bounds the uploads in flight.
	slots chan struct{}
}

// uploadSlots bounds the uploads in flight, as remote.Write's jobs do.
const uploadSlots = 4

// NewUploader returns an Uploader to the destinations in opts, or nil when
// nothing is pushed (--no-push, or no destination).
func NewUploader(ctx context.Context, c *registry.Client, opts Options) (*Uploader, error) {
	if opts.NoPush || len(opts.Destinations) == 0 {
		return nil, nil
	}
	tags, err := Tags(opts)
	if err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	// One upload per repository: two tags of one repository share blobs.
	seen := map[string]bool{}
	var repos []name.Tag
	for _, t := range tags {
		if !seen[t.Context().Name()] {
			seen[t.Context().Name()] = true
			repos = append(repos, t)
		}
	}
	uctx, cancel := context.WithCancel(ctx)
	return &Uploader{c: c, repos: repos, log: log, ctx: uctx, cancel: cancel, slots: make(chan struct{}, uploadSlots)}, nil
}

// Upload starts uploading l to every destination and returns at once. A
// nil Uploader uploads nothing.
func (u *Uploader) Upload(l v1.Layer) {
	if u == nil {
		return
	}
	for _, repo := range u.repos {
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			select {
			case u.slots <- struct{}{}:
			case <-u.ctx.Done():
				return
			}
			defer func() { <-u.slots }()
			defer phase.Start(phase.Push)()
			ref := u.c.Reference(repo, true)
			opts := append(u.c.RemoteOptions(ref, true), remote.WithContext(u.ctx))
			if err := remote.WriteLayer(ref.Context(), l, opts...); err != nil {
				if u.ctx.Err() == nil {
					u.log.Debug("Uploading a blob ahead of the push failed; the push uploads it", "destination", repo.Context().Name(), "error", registry.Redact(err.Error()))
				}
				return
			}
			if d, err := l.Digest(); err == nil {
				u.log.Debug("Uploaded blob "+d.String()+" ahead of the push", "destination", repo.Context().Name())
			}
		}()
	}
}

// UploadConfig starts uploading img's config blob, the last blob the push
// needs besides the layers, so that it goes up beside the last layer.
func (u *Uploader) UploadConfig(img v1.Image) {
	if u == nil {
		return
	}
	if l, err := partial.ConfigLayer(img); err == nil {
		// An error here is the push's to report.
		u.Upload(l)
	}
}

// Wait waits for the uploads started; the push then finds their blobs.
func (u *Uploader) Wait() {
	if u != nil {
		u.wg.Wait()
	}
}

// Stop abandons the uploads in flight and waits for them to end: the
// build failed, or the layers' files are about to go.
func (u *Uploader) Stop() {
	if u != nil {
		u.cancel()
		u.wg.Wait()
	}
}
