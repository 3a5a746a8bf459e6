package layertoc

import (
	"context"
	"errors"
	"log/slog"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-build/slipway/engine/registry"
)

// Index is one build's view of the tables: those it looked up or recorded
// are kept in memory, lookups of one layer share one request, and the
// tables of layers the build read or wrote whole are written to the store
// beside the build. An Index with no store holds only the tables the build
// recorded itself: a layer read whole once (a base unpacked for a RUN) is
// then not read again for a sparse root of the same image in a later stage;
// with CarriedTOCs, it reads those that eStargz and zstd:chunked layers
// carry too.
type Index struct {
	store  Store
	log    *slog.Logger
	writes bool
	// blobs, when set, reads the tables eStargz layers carry.
	blobs *registry.Client

	mu      sync.Mutex
	lookups map[v1.Hash]*lookup
	// stored holds the layers whose table the store is known to hold, in
	// a form this build could use.
	stored map[v1.Hash]bool
	// recorded holds the table of each layer that is written or being
	// written; a write whose table is no longer there (Reject, then Record
	// of another) is dropped.
	recorded map[v1.Hash]*TOC
	// writing serializes the writes of one layer's tables, so that the
	// last one recorded is the one the store keeps.
	writing map[v1.Hash]*sync.Mutex
	pending sync.WaitGroup
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

// NewIndex returns an Index over store, or, with a nil store, of this
// build's own tables (and, with CarriedTOCs, of those the layers carry);
// log receives why a table was not used.
func NewIndex(store Store, log *slog.Logger, opts ...IndexOption) *Index {
	x := &Index{
		store: store, log: log, writes: store != nil,
		lookups: map[v1.Hash]*lookup{}, stored: map[v1.Hash]bool{}, recorded: map[v1.Hash]*TOC{},
		writing: map[v1.Hash]*sync.Mutex{},
		slots:   make(chan struct{}, 2),
	}
	for _, o := range opts {
		o(x)
	}
	return x
}

// Lookup returns the table of layer: the one the store keeps, else, with
// CarriedTOCs, the one an eStargz or zstd:chunked layer carries (recorded
// then, so that the store has it next time), else nil. Nil means the
// caller reads the layer instead, and records its table; a damaged table
// or a store or registry that could not be asked gives a warning.
func (x *Index) Lookup(ctx context.Context, layer v1.Layer) *TOC {
	if x == nil {
		return nil
	}
	diffID, err := layer.DiffID()
	if err != nil {
		return nil
	}
	return x.lookup(ctx, diffID, layer)
}

// lookup is Lookup of the layer with diffID; layer may be nil.
func (x *Index) lookup(ctx context.Context, diffID v1.Hash, layer v1.Layer) *TOC {
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
	if x.store == nil && x.blobs == nil {
		// Only Record fills lookups.
		x.mu.Unlock()
		return nil
	}
	l = &lookup{done: make(chan struct{})}
	x.lookups[diffID] = l
	x.mu.Unlock()
	defer close(l.done)

	toc := x.fromStore(ctx, diffID)
	if toc == nil {
		if toc = x.carried(ctx, diffID, layer); toc != nil {
			x.Record(toc)
		}
	}
	l.toc = toc
	return toc
}

// fromStore returns the table the store keeps, or nil: there is no store,
// it keeps none, the one it keeps is damaged, or it could not be asked
// (both with a warning).
func (x *Index) fromStore(ctx context.Context, diffID v1.Hash) *TOC {
	if x.store == nil {
		return nil
	}
	toc, err := x.store.Get(ctx, diffID)
	switch {
	case errors.Is(err, ErrDamaged):
		x.log.Warn("The layer's table of contents in the cache repository is damaged; it is stored again",
			"layer", diffID.String(), "error", err.Error())
	case err != nil:
		x.log.Warn("Could not read the layer's table of contents from the cache repository",
			"layer", diffID.String(), "error", err.Error())
		// Whether it is stored is unknown: Record asks again.
		return nil
	case toc == nil:
		x.log.Info("No table of contents for the layer in the cache repository; the table the layer carries, or the layer, is read instead, and its table stored",
			"layer", diffID.String())
	}
	// A table found is one to keep; a miss or a damaged one is rewritten
	// by Record without asking again.
	x.mu.Lock()
	x.stored[diffID] = toc != nil
	x.mu.Unlock()
	return toc
}

// carried returns the table an eStargz or zstd:chunked layer carries,
// read by range, or nil: the Index does not read them, the layer carries
// none, or the one it carries cannot be used (with a warning).
func (x *Index) carried(ctx context.Context, diffID v1.Hash, layer v1.Layer) *TOC {
	if x.blobs == nil || layer == nil {
		return nil
	}
	toc, err := readCarried(ctx, x.blobs, layer, diffID)
	if err != nil {
		x.log.Warn("Could not use the table of contents the layer carries; reading the layer instead, and storing its table",
			"layer", diffID.String(), "error", err.Error())
		return nil
	}
	if toc != nil {
		x.log.Info("Read the table of contents the layer carries (eStargz, zstd:chunked) by ranged requests on its blob; storing it",
			"layer", diffID.String())
	}
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
	if !x.writes || x.recorded[t.DiffID] != nil || stored {
		return
	}
	x.recorded[t.DiffID] = t
	writing := x.writing[t.DiffID]
	if writing == nil {
		writing = &sync.Mutex{}
		x.writing[t.DiffID] = writing
	}
	x.pending.Add(1)
	go func() {
		defer x.pending.Done()
		// A table rejected while it was written (one a layer carries that
		// does not fit it) must not land after the one that replaces it.
		writing.Lock()
		defer writing.Unlock()
		x.slots <- struct{}{}
		defer func() { <-x.slots }()
		x.mu.Lock()
		current := x.recorded[t.DiffID] == t
		x.mu.Unlock()
		if !current {
			return
		}
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
	if x.store == nil {
		x.log.Warn("The layer's table of contents recorded in this build does not fit the layer; reading the layer instead",
			"layer", diffID.String(), "error", err.Error())
	} else {
		x.log.Warn("The layer's table of contents does not fit the layer; reading the layer instead, and storing its table again",
			"layer", diffID.String(), "error", err.Error())
	}
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
