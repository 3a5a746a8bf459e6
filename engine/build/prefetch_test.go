package build

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"

	"github.com/slipway-build/slipway/engine/layertoc"
)

// pullLog is an ImageSource that records what is pulled and has nothing.
type pullLog struct {
	mu   sync.Mutex
	refs []string
}

func (p *pullLog) Pull(_ context.Context, ref string, _ v1.Platform) (v1.Image, error) {
	p.mu.Lock()
	p.refs = append(p.refs, ref)
	p.mu.Unlock()
	return nil, errors.New("no images here")
}

// In place, the next stage's base is read ahead while a stage runs,
// unless that stage unpacks the same base for its RUN, recording the
// tables the next stage reads: a second read would only take cores from
// that unpack. A layer cache may spare the unpack, so the read ahead stays.
func TestPrefetchSkipsTheBaseTheRunningStageUnpacks(t *testing.T) {
	plan := planAll(t, `FROM img AS build
RUN true
FROM img AS same
COPY --from=build /a /a
FROM other AS different
COPY --from=build /a /a
FROM --platform=linux/arm64 img AS arm
COPY --from=build /a /a
`)
	for _, c := range []struct {
		name       string
		next       int
		layerCache bool
		want       []string
	}{
		{"same base", 1, false, nil},
		{"same base, layer cache", 1, true, []string{"img"}},
		{"another base", 2, false, []string{"other"}},
		{"another platform", 3, false, []string{"img"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pulls := &pullLog{}
			b := &builder{plan: plan, tocs: layertoc.NewIndex(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))}
			b.opts.Images, b.opts.Platform = pulls, v1.Platform{OS: "linux", Architecture: "amd64"}
			if c.layerCache {
				b.opts.LayerCache = &memStore{}
			}
			b.prefetchLower(context.Background(), &plan.Stages[c.next], &plan.Stages[0], nil)
			b.cleanup()
			if !slices.Equal(pulls.refs, c.want) {
				t.Errorf("read ahead %v, want %v", pulls.refs, c.want)
			}
		})
	}
}

// With a layer cache, a stage reads its base's tree ahead while its keys
// are looked up. It has pulled that base already: the read starts from
// that image, without asking the registry for the manifest again.
func TestPrefetchReadsTheBaseTheStageHasPulled(t *testing.T) {
	plan := planAll(t, `FROM img
RUN true
COPY a /a
`)
	for _, c := range []struct {
		name   string
		pulled v1.Image
		want   []string
	}{
		{"pulled by the stage", empty.Image, nil},
		{"not pulled yet", nil, []string{"img"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pulls := &pullLog{}
			b := &builder{plan: plan, tocs: layertoc.NewIndex(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))}
			b.opts.Images, b.opts.Platform = pulls, v1.Platform{OS: "linux", Architecture: "amd64"}
			b.opts.LayerCache = &memStore{}
			b.prefetchLower(context.Background(), &plan.Stages[0], nil, c.pulled)
			b.cleanup()
			if !slices.Equal(pulls.refs, c.want) {
				t.Errorf("pulled %v, want %v", pulls.refs, c.want)
			}
		})
	}
}
