package layertoc

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// gatedStore keeps tables in memory; a Put of the table held waits until
// release is closed, as a slow upload does.
type gatedStore struct {
	mu      sync.Mutex
	tables  map[v1.Hash]*TOC
	held    *TOC
	putting chan struct{}
	release chan struct{}
}

func (s *gatedStore) Get(_ context.Context, diffID v1.Hash) (*TOC, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tables[diffID], nil
}

func (s *gatedStore) Has(_ context.Context, diffID v1.Hash) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tables[diffID] != nil, nil
}

func (s *gatedStore) Put(_ context.Context, t *TOC) error {
	if t == s.held {
		close(s.putting)
		<-s.release
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tables[t.DiffID] = t
	return nil
}

// A table recorded, then rejected while its write is under way (a table a
// layer carries that does not fit it), must not land over the table
// recorded after it from the layer itself.
func TestIndexKeepsTheLastTableRecordedAfterAReject(t *testing.T) {
	carried, read := scan(t, layerTar(t)), scan(t, layerTar(t))
	store := &gatedStore{tables: map[v1.Hash]*TOC{}, held: carried, putting: make(chan struct{}), release: make(chan struct{})}
	var log bytes.Buffer
	idx := NewIndex(store, logTo(&log))
	idx.Record(carried)
	<-store.putting
	idx.Reject(testDiffID, errors.New("does not fit"))
	idx.Record(read)
	// Give the second write every chance to finish before the first.
	time.Sleep(100 * time.Millisecond)
	close(store.release)
	idx.Wait()
	if got, _ := store.Get(context.Background(), testDiffID); got != read {
		t.Error("the store keeps the rejected table, not the one recorded after it")
	}

	// A write still waiting for its turn when its table is rejected is
	// dropped.
	store = &gatedStore{tables: map[v1.Hash]*TOC{}, putting: make(chan struct{}), release: make(chan struct{})}
	idx = NewIndex(store, logTo(&log))
	idx.slots <- struct{}{}
	idx.slots <- struct{}{}
	idx.Record(carried)
	idx.Reject(testDiffID, errors.New("does not fit"))
	<-idx.slots
	<-idx.slots
	idx.Wait()
	if got, _ := store.Get(context.Background(), testDiffID); got != nil {
		t.Error("a rejected table was written")
	}
}
