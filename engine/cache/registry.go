package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway-build/slipway/engine/registry"
)

// Entry is one cached step result.
type Entry struct {
	// Layer is what the step changed, or nil for a step that changed
	// nothing (e.g. a RUN that only read files). From Get it is lazy: no
	// blob is fetched until it is read.
	Layer v1.Layer
	// CreatedBy and Created are the step's history entry. Created may be
	// the epoch of a reproducible build: the TTL counts from when the
	// entry was written, not from it.
	CreatedBy string
	Created   time.Time
}

// Store keeps step results by Key.
type Store interface {
	// Get returns the entry for k, or nil and no error on a miss
	// (including an expired entry). An error means the cache could not be
	// asked; callers should build the step, with a warning, rather than
	// fail.
	Get(ctx context.Context, k Key) (*Entry, error)
	// Put stores e under k. It is safe to call concurrently.
	Put(ctx context.Context, k Key, e *Entry) error
}

// Error is a failure of the cache rather than of the build: an entry that
// cannot be read, a blob that is missing or corrupt. The builder treats it
// as a miss, logs a warning, and builds the step instead.
type Error struct {
	Op  string // "reading cache entry 127.0.0.1:5000/app/cache:3f2a…"
	Err error
}

func (e *Error) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// IsCacheError reports whether err came from reading a cache entry, so that
// it is to be treated as a miss rather than a build failure. A layer from
// Get that fails when read returns such an error.
func IsCacheError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// RegistryOption configures NewRegistryStore.
type RegistryOption func(*registryStore)

// WithMountFrom names a repository (on the cache repository's registry)
// whose blobs Put may mount instead of uploading, typically the build's
// destination repository, which receives the same layers.
func WithMountFrom(repo string) RegistryOption {
	return func(s *registryStore) { s.mountFrom = repo }
}

// WithClock replaces time.Now for the TTL check, for tests.
func WithClock(now func() time.Time) RegistryOption {
	return func(s *registryStore) { s.now = now }
}

// WithLogger sets where expired entries are reported (at debug level).
func WithLogger(log *slog.Logger) RegistryOption {
	return func(s *registryStore) { s.log = log }
}

type registryStore struct {
	repo      string
	client    *registry.Client
	ttl       time.Duration
	mountFrom string
	now       func() time.Time
	log       *slog.Logger

	// uploading serialises the Puts that carry the same layer: the second
	// then finds the blob there instead of uploading it again. It also
	// keeps clear of the distribution registry's habit of briefly losing
	// a blob's link while two uploads of it commit at once.
	uploadingMu sync.Mutex
	uploading   map[v1.Hash]*sync.Mutex
}

func (s *registryStore) layerLock(h v1.Hash) *sync.Mutex {
	s.uploadingMu.Lock()
	defer s.uploadingMu.Unlock()
	if s.uploading == nil {
		s.uploading = map[v1.Hash]*sync.Mutex{}
	}
	m, ok := s.uploading[h]
	if !ok {
		m = &sync.Mutex{}
		s.uploading[h] = m
	}
	return m
}

// NewRegistryStore keeps each entry as a small image tagged <repo>:<key>,
// holding the step's one layer (or none) and a config whose created time
// is checked against ttl (zero means entries never expire), as kaniko's
// --cache-repo does.
func NewRegistryStore(repo string, client *registry.Client, ttl time.Duration, opts ...RegistryOption) Store {
	s := &registryStore{repo: repo, client: client, ttl: ttl, now: time.Now, log: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	return s
}

// DefaultRepo is kaniko's cache repository when --cache-repo is not given:
// the destination's repository with /cache appended.
func DefaultRepo(destination string) (string, error) {
	ref, err := name.ParseReference(destination, name.WeakValidation)
	if err != nil {
		return "", fmt.Errorf("deriving the cache repository from --destination %q: %w; give --cache-repo", destination, err)
	}
	return ref.Context().Name() + "/cache", nil
}

func (s *registryStore) tag(k Key) (name.Tag, error) {
	t, err := name.NewTag(s.repo+":"+string(k), name.WeakValidation)
	if err != nil {
		return name.Tag{}, fmt.Errorf("cache repository %q: %w; check --cache-repo", s.repo, err)
	}
	return t, nil
}

// Get costs one manifest and one config request; the layer stays remote.
func (s *registryStore) Get(ctx context.Context, k Key) (*Entry, error) {
	tag, err := s.tag(k)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Entry, error) {
		return nil, &Error{Op: "reading cache entry " + tag.String(), Err: err}
	}
	ref := s.client.Reference(tag, false)
	// The client's Puller keeps the registry's auth token and connections,
	// so a lookup after the first costs only its manifest and config
	// requests, without a /v2/ ping or token fetch.
	img, err := remote.Image(ref, append(s.client.RemoteOptions(ref, false), remote.WithContext(ctx))...)
	if err != nil {
		if registry.IsNotFound(err) {
			return nil, nil
		}
		return fail(err)
	}
	manifest, err := img.Manifest()
	if err != nil {
		return fail(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		if registry.IsNotFound(err) {
			return fail(fmt.Errorf("its config blob is missing"))
		}
		return fail(err)
	}
	if s.ttl > 0 && s.now().Sub(cfg.Created.Time) > s.ttl {
		s.log.Debug("Cache entry expired", "entry", tag.String(), "created", cfg.Created.Time.UTC().Format(time.RFC3339), "ttl", s.ttl.String())
		return nil, nil
	}
	if len(manifest.Layers) > 1 || len(cfg.RootFS.DiffIDs) != len(manifest.Layers) {
		return fail(fmt.Errorf("not a Slipway cache entry: %d layers and %d diff IDs, want at most one of each", len(manifest.Layers), len(cfg.RootFS.DiffIDs)))
	}
	e := &Entry{}
	if n := len(cfg.History); n > 0 {
		e.CreatedBy, e.Created = cfg.History[n-1].CreatedBy, cfg.History[n-1].Created.Time
	}
	if len(manifest.Layers) == 1 {
		l, err := img.LayerByDigest(manifest.Layers[0].Digest)
		if err != nil {
			return fail(err)
		}
		digest := tag.Context().Digest(manifest.Layers[0].Digest.String())
		// Still a MountableLayer, so that pushing it to the destination
		// mounts the blob instead of downloading and uploading it.
		e.Layer = &remote.MountableLayer{Layer: &cachedLayer{Layer: l, what: "reading cached layer " + digest.String()}, Reference: digest}
	}
	return e, nil
}

// Put pushes the entry image. Layers already in the cache repository are
// skipped by go-containerregistry's existence check; a layer from Get, or
// any layer when WithMountFrom is set, is mounted across repositories when
// the registry has it.
func (s *registryStore) Put(ctx context.Context, k Key, e *Entry) error {
	tag, err := s.tag(k)
	if err != nil {
		return err
	}
	img, err := mutate.ConfigFile(mutate.MediaType(empty.Image, types.OCIManifestSchema1), &v1.ConfigFile{
		Created: v1.Time{Time: s.now().UTC()},
		RootFS:  v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return fmt.Errorf("writing cache entry %s: %w", tag, err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	history := v1.History{Created: v1.Time{Time: e.Created}, CreatedBy: e.CreatedBy, EmptyLayer: e.Layer == nil}
	if e.Layer == nil {
		cfg, err := img.ConfigFile()
		if err != nil {
			return fmt.Errorf("writing cache entry %s: %w", tag, err)
		}
		cfg = cfg.DeepCopy()
		cfg.History = []v1.History{history}
		if img, err = mutate.ConfigFile(img, cfg); err != nil {
			return fmt.Errorf("writing cache entry %s: %w", tag, err)
		}
	} else {
		layer, err := s.mountable(e.Layer)
		if err != nil {
			return fmt.Errorf("writing cache entry %s: %w", tag, err)
		}
		if img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: history}); err != nil {
			return fmt.Errorf("writing cache entry %s: %w", tag, err)
		}
	}
	if e.Layer != nil {
		digest, err := e.Layer.Digest()
		if err != nil {
			return fmt.Errorf("writing cache entry %s: %w", tag, err)
		}
		lock := s.layerLock(digest)
		lock.Lock()
		defer lock.Unlock()
	}
	// Other builds may push the same blobs to the same repository at the
	// same moment, and the registry can then fail one manifest with
	// "blob unknown" or "digest invalid": a short retry gets past that.
	var pushErr error
	for attempt, delay := 0, 100*time.Millisecond; attempt < putAttempts; attempt, delay = attempt+1, delay*4 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("writing cache entry: %w", ctx.Err())
			case <-time.After(delay):
			}
		}
		if _, pushErr = s.client.Push(ctx, img, tag); pushErr == nil {
			return nil
		}
	}
	return fmt.Errorf("writing cache entry: %w", pushErr)
}

// putAttempts bounds how often Put tries to push one entry.
const putAttempts = 3

func (s *registryStore) mountable(l v1.Layer) (v1.Layer, error) {
	if _, ok := l.(*remote.MountableLayer); ok || s.mountFrom == "" {
		return l, nil
	}
	digest, err := l.Digest()
	if err != nil {
		return nil, err
	}
	ref, err := name.NewDigest(s.mountFrom+"@"+digest.String(), name.WeakValidation)
	if err != nil {
		return nil, fmt.Errorf("mount source %q: %w", s.mountFrom, err)
	}
	return &remote.MountableLayer{Layer: l, Reference: ref}, nil
}

// cachedLayer marks every failure to read a cached layer as a cache Error.
type cachedLayer struct {
	v1.Layer
	what string
}

func (l *cachedLayer) Compressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Compressed()
	if err != nil {
		return nil, &Error{Op: l.what, Err: err}
	}
	return &cacheReader{ReadCloser: rc, what: l.what}, nil
}

func (l *cachedLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := l.Layer.Uncompressed()
	if err != nil {
		return nil, &Error{Op: l.what, Err: err}
	}
	return &cacheReader{ReadCloser: rc, what: l.what}, nil
}

type cacheReader struct {
	io.ReadCloser
	what string
}

func (r *cacheReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		err = &Error{Op: r.what, Err: err}
	}
	return n, err
}

// Lookup asks store for every key at once and returns the entries in the
// order of keys, nil for a miss. A failed lookup is logged to log as a
// warning and counts as a miss: the step is then built, never the build
// failed.
func Lookup(ctx context.Context, log *slog.Logger, store Store, keys []Key) []*Entry {
	out := make([]*Entry, len(keys))
	// A bound keeps a long stage from opening a connection per step.
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			e, err := store.Get(ctx, k)
			if err != nil {
				log.Warn("Cache lookup failed; building the step instead", "key", string(k), "error", registry.Redact(err.Error()))
				return
			}
			out[i] = e
		}()
	}
	wg.Wait()
	return out
}
