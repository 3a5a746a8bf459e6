package layertoc

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Index is one build's view of the tables: those it looked up or recorded
// are kept in memory, lookups of one layer share one request, and the
// tables of layers the build read or wrote whole are written to the store
// beside the build.
type Index struct {
	store  Store
	log    *slog.Logger
	writes bool

	mu      sync.Mutex
	lookups map[v1.Hash]*lookup
	// stored holds the layers whose table the store is known to hold, in
	// a form this build could use.
	stored map[v1.Hash]bool
	// recorded holds the layers whose table is written or being written.
	recorded map[v1.Hash]bool
	pending  sync.WaitGroup
	// slots bounds the writes in flight.
	slots chan struct{}
}

type lookup struct {
	done chan struct{}
	toc  *TOC
}

// IndexOption configures NewIndex.
type IndexOption func(*Index)

// ReadOnly makes an Index that never writes to its store
// (--no-push-cache).
func ReadOnly() IndexOption { return func(x *Index) { x.writes = false } }

// NewIndex returns an Index over store; log receives why a table was not
// used.
func NewIndex(store Store, log *slog.Logger, opts ...IndexOption) *Index {
	x := &Index{
		store: store, log: log, writes: true,
		lookups: map[v1.Hash]*lookup{}, stored: map[v1.Hash]bool{}, recorded: map[v1.Hash]bool{},
		slots: make(chan struct{}, 2),
	}
	for _, o := range opts {
		o(x)
	}
	return x
}

// Lookup returns the table of the layer with diffID, or nil: none is kept
// (the caller reads the layer instead, and records its table), the one
// kept is damaged, or the store could not be asked (both with a warning).
func (x *Index) Lookup(ctx context.Context, diffID v1.Hash) *TOC {
	if x == nil {
		return nil
	}
	x.mu.Lock()
	l, ok := x.lookups[diffID]
	if ok {
		x.mu.Unlock()
		select {
		case <-l.done:
			return l.toc
		case <-ctx.Done():
			return nil
		}
	}
	l = &lookup{done: make(chan struct{})}
	x.lookups[diffID] = l
	x.mu.Unlock()
	defer close(l.done)

	toc, err := x.store.Get(ctx, diffID)
	switch {
	case errors.Is(err, ErrDamaged):
		x.log.Warn("The layer's table of contents in the cache repository is damaged; reading the layer instead, and storing its table again",
			"layer", diffID.String(), "error", err.Error())
	case err != nil:
		x.log.Warn("Could not read the layer's table of contents from the cache repository; reading the layer instead",
			"layer", diffID.String(), "error", err.Error())
		// Whether it is stored is unknown: Record asks again.
		return nil
	case toc == nil:
		x.log.Info("No table of contents for the layer in the cache repository; reading the layer instead, and storing its table",
			"layer", diffID.String())
	}
	x.mu.Lock()
	// A table found is one to keep; a miss or a damaged one is rewritten
	// by Record without asking again.
	x.stored[diffID] = toc != nil
	x.mu.Unlock()
	l.toc = toc
	return toc
}

// Record keeps t, read or written whole from its layer, for the rest of
// the build, and writes it to the store in the background unless the store
// already holds a good one. Wait waits for the writes.
func (x *Index) Record(t *TOC) {
	if x == nil || t == nil {
		return
	}
	done := &lookup{done: make(chan struct{}), toc: t}
	close(done.done)
	x.mu.Lock()
	defer x.mu.Unlock()
	if l, ok := x.lookups[t.DiffID]; !ok || isClosed(l.done) && l.toc == nil {
		x.lookups[t.DiffID] = done
	}
	stored, asked := x.stored[t.DiffID]
	if !x.writes || x.recorded[t.DiffID] || stored {
		return
	}
	x.recorded[t.DiffID] = true
	x.pending.Add(1)
	go func() {
		defer x.pending.Done()
		x.slots <- struct{}{}
		defer func() { <-x.slots }()
		// The build's context may end before the writes do; Wait bounds
		// them instead.
		ctx := context.Background()
		if !asked {
			if has, err := x.store.Has(ctx, t.DiffID); err == nil && has {
				return
			}
		}
		if err := x.store.Put(ctx, t); err != nil {
			x.log.Warn("Could not store the layer's table of contents in the cache repository; the next build reads the layer instead",
				"layer", t.DiffID.String(), "error", err.Error())
		}
	}()
}

// Reject reports that the table Lookup returned does not fit its layer:
// the caller reads the layer instead, and Record then writes its table.
func (x *Index) Reject(diffID v1.Hash, err error) {
	if x == nil {
		return
	}
	x.log.Warn("The layer's table of contents in the cache repository does not fit the layer; reading the layer instead, and storing its table again",
		"layer", diffID.String(), "error", err.Error())
	x.mu.Lock()
	defer x.mu.Unlock()
	delete(x.lookups, diffID)
	x.stored[diffID] = false
	delete(x.recorded, diffID)
}

// Wait waits for the tables being written; failures were logged.
func (x *Index) Wait() {
	if x != nil {
		x.pending.Wait()
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
