package rootfs

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/slipway-build/slipway/engine/layertoc"
)

// blobStore keeps tables as their blobs in memory, so that a test can
// damage the bytes a registry would serve.
type blobStore struct {
	mu    sync.Mutex
	blobs map[v1.Hash][]byte
}

func (s *blobStore) Get(_ context.Context, diffID v1.Hash) (*layertoc.TOC, error) {
	s.mu.Lock()
	b, ok := s.blobs[diffID]
	s.mu.Unlock()
	if !ok {
		return nil, nil
	}
	return layertoc.Unmarshal(bytes.NewReader(b), diffID)
}

func (s *blobStore) Has(_ context.Context, diffID v1.Hash) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.blobs[diffID]
	return ok, nil
}

func (s *blobStore) Put(_ context.Context, t *layertoc.TOC) error {
	b, err := t.Marshal()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.blobs[t.DiffID] = b
	return nil
}

func (s *blobStore) edit(t *testing.T, diffID v1.Hash, fn func(*layertoc.TOC)) {
	t.Helper()
	toc, err := s.Get(context.Background(), diffID)
	if err != nil || toc == nil {
		t.Fatalf("no table for %s: %v", diffID, err)
	}
	fn(toc)
	if err := s.Put(context.Background(), toc); err != nil {
		t.Fatal(err)
	}
}

// countedImage is sparseTestImage with each layer's reads counted.
func countedImage(t *testing.T) (v1.Image, []*countingLayer) {
	t.Helper()
	layers, err := sparseTestImage(t).Layers()
	if err != nil {
		t.Fatal(err)
	}
	var counted []*countingLayer
	var ls []v1.Layer
	for _, l := range layers {
		c := &countingLayer{Layer: l}
		counted = append(counted, c)
		ls = append(ls, c)
	}
	img, err := mutate.AppendLayers(empty.Image, ls...)
	if err != nil {
		t.Fatal(err)
	}
	return img, counted
}

func reads(layers []*countingLayer) []int {
	var n []int
	for _, l := range layers {
		n = append(n, l.reads)
	}
	return n
}

// checkSparse reveals the probes of TestSparseRevealsWhatExtractionWrites
// in a sparse root of lower and compares it with img unpacked.
func checkSparse(t *testing.T, img v1.Image, lower *Lower) {
	t.Helper()
	start := time.Now()
	full := t.TempDir()
	if err := ExtractImage(context.Background(), full, img, nil); err != nil {
		t.Fatal(err)
	}
	sparse := lower.Sparse(t.TempDir())
	for _, p := range []string{"/bin/tool2", "/var/run/pidfile", "/data/sub/f", "/opt/new", "/opt/old/a", "/a/link/bin/tool", "/etc/gone", "/implied/child/file"} {
		if err := sparse.Reveal(p); err != nil {
			t.Fatalf("Reveal(%s): %v", p, err)
		}
		want, _ := securejoin.SecureJoin(full, p)
		got, _ := securejoin.SecureJoin(sparse.Dir(), p)
		_, wantErr := os.Lstat(want)
		_, gotErr := os.Lstat(got)
		if (wantErr == nil) != (gotErr == nil) {
			t.Errorf("%s: exists unpacked: %v, in the sparse root: %v", p, wantErr == nil, gotErr == nil)
		}
	}
	if err := sparse.RevealFile("/up/passwd"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(sparse.Dir() + "/etc/passwd")
	want, _ := os.ReadFile(full + "/etc/passwd")
	if string(got) != string(want) {
		t.Errorf("/etc/passwd = %q, want %q", got, want)
	}
	assertSubset(t, sparse.Dir(), full, start)
}

// The first scan reads the layers and records their tables; a later build
// with only the tables reads no layer at all, /etc/passwd included, and
// its sparse root is the same.
func TestSparseRootFromTablesReadsNoLayer(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	store := &blobStore{blobs: map[v1.Hash][]byte{}}
	var log bytes.Buffer
	first := layertoc.NewIndex(store, slog.New(slog.NewTextHandler(&log, nil)))
	img, _ := countedImage(t)
	if _, err := ScanImage(ctx, img, WithTOCs(first)); err != nil {
		t.Fatal(err)
	}
	first.Wait()
	if len(store.blobs) != 3 {
		t.Fatalf("%d tables recorded, want 3", len(store.blobs))
	}

	img, counted := countedImage(t)
	lower, err := ScanImage(ctx, img, WithTOCs(layertoc.NewIndex(store, slog.New(slog.NewTextHandler(&log, nil)))))
	if err != nil {
		t.Fatal(err)
	}
	if n := reads(counted); n[0]+n[1]+n[2] != 0 {
		t.Errorf("the scan read layers %v times, want none", n)
	}
	sparse := lower.Sparse(t.TempDir())
	if err := sparse.RevealFile("/etc/passwd"); err != nil {
		t.Fatal(err)
	}
	if n := reads(counted); n[0]+n[1]+n[2] != 0 {
		t.Errorf("revealing /etc/passwd read layers %v times, want none", n)
	}
	checkSparse(t, img, lower)
}

// Extraction records the tables too: the first build of an image that
// runs a command unpacks it, and the next build's sparse root reads no
// layer.
func TestExtractionRecordsTables(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	store := &blobStore{blobs: map[v1.Hash][]byte{}}
	idx := layertoc.NewIndex(store, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	img, _ := countedImage(t)
	if err := ExtractImage(ctx, t.TempDir(), img, nil, WithTOCs(idx)); err != nil {
		t.Fatal(err)
	}
	idx.Wait()
	img, counted := countedImage(t)
	lower, err := ScanImage(ctx, img, WithTOCs(layertoc.NewIndex(store, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)))))
	if err != nil {
		t.Fatal(err)
	}
	if n := reads(counted); n[0]+n[1]+n[2] != 0 {
		t.Errorf("the scan read layers %v times, want none", n)
	}
	checkSparse(t, img, lower)
}

// Damaged or missing entries in a table fall back to the layer, with a
// warning, and the sparse root is still right.
func TestDamagedTablesFallBackToTheLayer(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	img, _ := countedImage(t)
	diffIDs := func() []v1.Hash {
		layers, _ := img.Layers()
		var ids []v1.Hash
		for _, l := range layers {
			d, _ := l.DiffID()
			ids = append(ids, d)
		}
		return ids
	}()
	for _, tc := range []struct {
		name   string
		damage func(*testing.T, *blobStore)
		// read is the layer the scan or RevealFile must read.
		read int
		warn string
	}{
		{"an undecodable blob", func(t *testing.T, s *blobStore) {
			s.blobs[diffIDs[1]] = s.blobs[diffIDs[1]][:20]
		}, 1, "damaged"},
		{"another layer's table", func(t *testing.T, s *blobStore) {
			s.blobs[diffIDs[1]] = s.blobs[diffIDs[0]]
		}, 1, "damaged"},
		{"a hardlink to nothing", func(t *testing.T, s *blobStore) {
			s.edit(t, diffIDs[1], func(toc *layertoc.TOC) {
				for i := range toc.Entries {
					if toc.Entries[i].Typeflag == '1' {
						toc.Entries[i].Linkname = "usr/bin/missing"
					}
				}
			})
		}, 1, "does not fit"},
		{"no content for /etc/passwd", func(t *testing.T, s *blobStore) {
			s.edit(t, diffIDs[2], func(toc *layertoc.TOC) {
				for i := range toc.Entries {
					toc.Entries[i].Content = nil
				}
			})
		}, 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &blobStore{blobs: map[v1.Hash][]byte{}}
			quiet := slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
			first := layertoc.NewIndex(store, quiet)
			if _, err := ScanImage(ctx, img, WithTOCs(first)); err != nil {
				t.Fatal(err)
			}
			first.Wait()
			tc.damage(t, store)

			var log bytes.Buffer
			idx := layertoc.NewIndex(store, slog.New(slog.NewTextHandler(&log, nil)))
			img, counted := countedImage(t)
			lower, err := ScanImage(ctx, img, WithTOCs(idx))
			if err != nil {
				t.Fatal(err)
			}
			if err := lower.Sparse(t.TempDir()).RevealFile("/etc/passwd"); err != nil {
				t.Fatal(err)
			}
			n := reads(counted)
			checkSparse(t, img, lower)
			for i := range n {
				if (n[i] > 0) != (i == tc.read) {
					t.Errorf("layers read %v times; want only layer %d read", n, tc.read)
					break
				}
			}
			if tc.warn != "" && (!strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), tc.warn)) {
				t.Errorf("no warning saying %q:\n%s", tc.warn, log.String())
			}
			// The layer's own table replaced the damaged one.
			idx.Wait()
			if tc.warn != "" {
				if toc, err := store.Get(ctx, diffIDs[tc.read]); err != nil || toc == nil {
					t.Errorf("the damaged table was not replaced: %v", err)
				}
			}
		})
	}
}
