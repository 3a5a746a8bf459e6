package layertoc

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-build/slipway/e2e/harness"
)

func startStore(t *testing.T) (Store, *harness.Registry, string) {
	t.Helper()
	harness.SkipIfShort(t, "the distribution registry")
	reg := harness.StartRegistry(t)
	repo := reg.Host + "/team/cache"
	return NewRegistryStore(repo, reg.Client()), reg, repo
}

func logTo(buf *bytes.Buffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestRegistryStoreKeepsTablesByDiffID(t *testing.T) {
	store, reg, repo := startStore(t)
	ctx := context.Background()
	toc := scan(t, layerTar(t))
	if got, err := store.Get(ctx, testDiffID); got != nil || err != nil {
		t.Fatalf("Get before Put = %v, %v; want nil, nil", got, err)
	}
	if has, err := store.Has(ctx, testDiffID); has || err != nil {
		t.Fatalf("Has before Put = %v, %v", has, err)
	}
	if err := store.Put(ctx, toc); err != nil {
		t.Fatal(err)
	}
	if has, err := store.Has(ctx, testDiffID); !has || err != nil {
		t.Fatalf("Has after Put = %v, %v", has, err)
	}
	got, err := store.Get(ctx, testDiffID)
	if err != nil || got == nil || len(got.Entries) != len(toc.Entries) {
		t.Fatalf("Get = %v, %v", got, err)
	}
	// The documented layout: an OCI artifact tagged toc-sha256-<hex>.
	ref, err := name.NewTag(repo+":toc-sha256-"+testDiffID.Hex, name.WeakValidation)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(reg.Client().Reference(ref, false), reg.Client().RemoteOptions(ref, false)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(desc.Manifest), `"artifactType":"`+ArtifactType+`"`) ||
		!strings.Contains(string(desc.Manifest), MediaType) {
		t.Errorf("manifest %s: want artifactType %s and a %s layer", desc.Manifest, ArtifactType, MediaType)
	}
}

// copyTable puts the manifest tagged for one layer under another layer's
// tag: a table that describes the wrong layer.
func copyTable(t *testing.T, reg *harness.Registry, repo string, from, to v1.Hash) {
	t.Helper()
	src, err := name.NewTag(repo+":"+Tag(from), name.WeakValidation)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := name.NewTag(repo+":"+Tag(to), name.WeakValidation)
	if err != nil {
		t.Fatal(err)
	}
	c := reg.Client()
	desc, err := remote.Get(c.Reference(src, false), c.RemoteOptions(src, false)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(c.Reference(dst, true), desc, c.RemoteOptions(dst, true)...); err != nil {
		t.Fatal(err)
	}
}

// A damaged table is not used: Lookup warns and returns nil, and Record
// then writes the layer's own table over it.
func TestIndexWarnsOfDamagedTablesAndReplacesThem(t *testing.T) {
	store, reg, repo := startStore(t)
	ctx := context.Background()
	other := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("cd", 32)}
	good := scan(t, layerTar(t))
	if err := store.Put(ctx, good); err != nil {
		t.Fatal(err)
	}
	copyTable(t, reg, repo, testDiffID, other)
	if _, err := store.Get(ctx, other); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Get of a table describing another layer = %v, want ErrDamaged", err)
	}

	var log bytes.Buffer
	idx := NewIndex(store, logTo(&log))
	if toc := idx.lookup(ctx, other, nil); toc != nil {
		t.Fatal("Lookup returned a damaged table")
	}
	if !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "damaged") {
		t.Errorf("no warning for a damaged table:\n%s", log.String())
	}
	fixed := *good
	fixed.DiffID = other
	idx.Record(&fixed)
	idx.Wait()
	if got, err := store.Get(ctx, other); err != nil || got == nil {
		t.Errorf("after Record, Get = %v, %v; want the recorded table", got, err)
	}
}

func TestIndexRecordsOnceAndRemembers(t *testing.T) {
	store, _, _ := startStore(t)
	ctx := context.Background()
	var log bytes.Buffer
	idx := NewIndex(store, logTo(&log))
	if toc := idx.lookup(ctx, testDiffID, nil); toc != nil {
		t.Fatal("Lookup found a table in an empty store")
	}
	if !strings.Contains(log.String(), "No table of contents") {
		t.Errorf("a missing table is not reported:\n%s", log.String())
	}
	toc := scan(t, layerTar(t))
	idx.Record(toc)
	idx.Wait()
	// The recorded table serves the rest of the build from memory.
	if got := idx.lookup(ctx, testDiffID, nil); got != toc {
		t.Error("Lookup after Record does not return the recorded table")
	}
	// A later build finds it in the store.
	if got := NewIndex(store, logTo(&log)).lookup(ctx, testDiffID, nil); got == nil || len(got.Entries) != len(toc.Entries) {
		t.Errorf("a new Index finds %v", got)
	}

	// --no-push-cache: nothing is written.
	other := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ef", 32)}
	ro := NewIndex(store, logTo(&log), ReadOnly())
	c := *toc
	c.DiffID = other
	ro.Record(&c)
	ro.Wait()
	if has, err := store.Has(ctx, other); has || err != nil {
		t.Errorf("a read-only Index wrote a table (%v, %v)", has, err)
	}
}

func TestIndexWithoutStoreKeepsOnlyWhatTheBuildRecorded(t *testing.T) {
	ctx := context.Background()
	var log bytes.Buffer
	idx := NewIndex(nil, logTo(&log))
	if toc := idx.lookup(ctx, testDiffID, nil); toc != nil {
		t.Fatal("Lookup found a table nobody recorded")
	}
	toc := scan(t, layerTar(t))
	idx.Record(toc)
	idx.Wait()
	if got := idx.lookup(ctx, testDiffID, nil); got != toc {
		t.Error("Lookup after Record does not return the recorded table")
	}
	idx.Reject(testDiffID, errors.New("does not fit"))
	if got := idx.lookup(ctx, testDiffID, nil); got != nil {
		t.Error("Lookup after Reject still returns the rejected table")
	}
	if !strings.Contains(log.String(), "recorded in this build does not fit") {
		t.Errorf("the rejection is not reported as this build's own table:\n%s", log.String())
	}
	if strings.Contains(log.String(), "cache repository") {
		t.Errorf("an Index without a store speaks of a cache repository:\n%s", log.String())
	}
}
