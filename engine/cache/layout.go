package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway-build/slipway/engine/atomicfile"
)

// Annotations Slipway puts on the manifests in index.json.
const (
	// AnnotationRefName is the OCI standard name annotation; Slipway
	// stores the full, normalised reference in it.
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// AnnotationCachedAt is when the image was cached, RFC 3339.
	AnnotationCachedAt = "dev.slipway.cache.cached-at"
)

// LayoutCache is the --cache-dir: an OCI image layout of base images that
// many builds and warmers share, on a workspace or PVC. Blobs are written
// to a temp file and renamed into place once their digest checks, and
// index.json is replaced by rename under a lock file, so a reader never
// sees a partial file and concurrent writers never lose each other's
// entries. Readers verify every digest; a bad blob is a miss.
type LayoutCache struct {
	dir string
	ttl time.Duration
	now func() time.Time
	log *slog.Logger
}

// LayoutOption configures NewLayoutCache.
type LayoutOption func(*LayoutCache)

// WithLayoutLogger sets where misses caused by damage or expiry are told.
func WithLayoutLogger(log *slog.Logger) LayoutOption {
	return func(c *LayoutCache) { c.log = log }
}

// WithLayoutClock replaces time.Now, for tests of the TTL.
func WithLayoutClock(now func() time.Time) LayoutOption {
	return func(c *LayoutCache) { c.now = now }
}

// NewLayoutCache uses dir (created on the first Put). Images cached by tag
// expire after ttl (zero: never); images cached by digest never expire.
func NewLayoutCache(dir string, ttl time.Duration, opts ...LayoutOption) *LayoutCache {
	c := &LayoutCache{dir: dir, ttl: ttl, now: time.Now, log: slog.Default()}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Dir is the layout's directory.
func (c *LayoutCache) Dir() string { return c.dir }

func normalizeRef(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", ref, err)
	}
	return r, nil
}

func defaultPlatform(p v1.Platform) v1.Platform {
	if p.OS == "" {
		return v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	return p
}

func (c *LayoutCache) blobPath(h v1.Hash) string {
	return filepath.Join(c.dir, "blobs", h.Algorithm, h.Hex)
}

// Get returns the cached image for ref and platform (zero: linux on this
// machine's architecture). ok is false on a miss: not cached, expired, or
// damaged (told with a warning). The manifest and config are verified here
// and every layer blob's size; layer contents are verified as they are
// read, and a mismatch is then an error for which IsCacheError is true.
func (c *LayoutCache) Get(ref string, platform v1.Platform) (v1.Image, bool, error) {
	return c.get(context.Background(), ref, platform, nil)
}

// refetcher reads a layer blob again from where the cached image came from.
type refetcher func(h v1.Hash) (io.ReadCloser, error)

// get is Get; with upstream, a layer blob found damaged when it is read is
// read from upstream instead, pinned to the cached image's digest.
func (c *LayoutCache) get(ctx context.Context, ref string, platform v1.Platform, upstream ImagePuller) (v1.Image, bool, error) {
	r, err := normalizeRef(ref)
	if err != nil {
		return nil, false, err
	}
	platform = defaultPlatform(platform)
	index, err := c.readIndex()
	if err != nil {
		c.log.Warn("Ignoring the unreadable image cache index", "dir", c.dir, "error", err.Error())
		return nil, false, nil
	}
	desc := findEntry(index, r.Name(), platform)
	if desc == nil {
		return nil, false, nil
	}
	if _, byDigest := r.(name.Digest); !byDigest && c.ttl > 0 {
		cachedAt, err := time.Parse(time.RFC3339Nano, desc.Annotations[AnnotationCachedAt])
		if err != nil || c.now().Sub(cachedAt) > c.ttl {
			c.log.Debug("Cached image expired", "image", r.Name(), "cached", desc.Annotations[AnnotationCachedAt], "ttl", c.ttl.String())
			return nil, false, nil
		}
	}
	var refetch refetcher
	if upstream != nil {
		refetch = pinnedRefetcher(ctx, upstream, r.Context().Digest(desc.Digest.String()), platform)
	}
	img, err := c.image(*desc, refetch)
	if err != nil {
		c.log.Warn("Cached image is damaged; it will be pulled again", "image", r.Name(), "dir", c.dir, "error", err.Error())
		return nil, false, nil
	}
	return img, true, nil
}

// findEntry picks the newest entry for ref and platform: Put appends a
// new descriptor before dropping the old one, so the last match wins.
func findEntry(index *v1.IndexManifest, ref string, platform v1.Platform) *v1.Descriptor {
	for i := len(index.Manifests) - 1; i >= 0; i-- {
		d := &index.Manifests[i]
		if d.Annotations[AnnotationRefName] != ref || d.Platform == nil {
			continue
		}
		if normalizeVariant(*d.Platform).Satisfies(normalizeVariant(platform)) {
			return d
		}
	}
	return nil
}

// normalizeVariant fills in arm64's default variant, which image configs
// often leave out while indexes and users write linux/arm64/v8.
func normalizeVariant(p v1.Platform) v1.Platform {
	if p.Architecture == "arm64" && p.Variant == "" {
		p.Variant = "v8"
	}
	return p
}

func (c *LayoutCache) readIndex() (*v1.IndexManifest, error) {
	f, err := os.Open(filepath.Join(c.dir, "index.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	index, err := v1.ParseIndexManifest(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.Name(), err)
	}
	return index, nil
}

// image opens the manifest desc names, checking the manifest's and the
// config's digests and that every layer blob is there with its size.
func (c *LayoutCache) image(desc v1.Descriptor, refetch refetcher) (v1.Image, error) {
	rawManifest, err := c.readVerified(desc.Digest, desc.Size)
	if err != nil {
		return nil, err
	}
	manifest, err := v1.ParseManifest(bytes.NewReader(rawManifest))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	rawConfig, err := c.readVerified(manifest.Config.Digest, manifest.Config.Size)
	if err != nil {
		return nil, err
	}
	for _, l := range manifest.Layers {
		info, err := os.Stat(c.blobPath(l.Digest))
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		if info.Size() != l.Size {
			return nil, fmt.Errorf("layer %s: %s has %d bytes, the manifest says %d", l.Digest, c.blobPath(l.Digest), info.Size(), l.Size)
		}
	}
	return partial.CompressedToImage(&layoutImage{cache: c, desc: desc, manifest: manifest, rawManifest: rawManifest, rawConfig: rawConfig, refetch: refetch})
}

// readVerified reads a small blob (manifest or config) whole and checks it.
func (c *LayoutCache) readVerified(h v1.Hash, size int64) ([]byte, error) {
	data, err := os.ReadFile(c.blobPath(h))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", h, err)
	}
	sum := sha256.Sum256(data)
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != h.String() || int64(len(data)) != size {
		return nil, fmt.Errorf("blob %s is corrupt: its content hashes to %s (%d bytes, want %d)", h, got, len(data), size)
	}
	return data, nil
}

type layoutImage struct {
	cache       *LayoutCache
	desc        v1.Descriptor
	manifest    *v1.Manifest
	rawManifest []byte
	rawConfig   []byte
	refetch     refetcher
}

func (i *layoutImage) RawConfigFile() ([]byte, error)      { return i.rawConfig, nil }
func (i *layoutImage) RawManifest() ([]byte, error)        { return i.rawManifest, nil }
func (i *layoutImage) MediaType() (types.MediaType, error) { return i.desc.MediaType, nil }

func (i *layoutImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	for _, l := range i.manifest.Layers {
		if l.Digest == h {
			return &layoutLayer{cache: i.cache, desc: l, refetch: i.refetch}, nil
		}
	}
	if i.manifest.Config.Digest == h {
		return &layoutLayer{cache: i.cache, desc: i.manifest.Config}, nil
	}
	return nil, fmt.Errorf("blob %s is not in cached image %s", h, i.desc.Digest)
}

type layoutLayer struct {
	cache *LayoutCache
	desc  v1.Descriptor
	// refetch, when set, reads the blob from upstream if the cached one
	// is bad; the blob is then checked whole before it is used.
	refetch refetcher
}

func (l *layoutLayer) Digest() (v1.Hash, error)            { return l.desc.Digest, nil }
func (l *layoutLayer) Size() (int64, error)                { return l.desc.Size, nil }
func (l *layoutLayer) MediaType() (types.MediaType, error) { return l.desc.MediaType, nil }

func (l *layoutLayer) Compressed() (io.ReadCloser, error) {
	path := l.cache.blobPath(l.desc.Digest)
	if l.refetch != nil {
		return l.checkedOrRefetched(path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{Op: "reading cached layer " + path, Err: err}
	}
	return &verifyingReader{f: f, h: sha256.New(), want: l.desc.Digest, size: l.desc.Size, path: path}, nil
}

// checkedOrRefetched returns the cached blob once its whole content matched
// its digest, else the blob from upstream. Checking first costs one more
// read of a local file; finding the damage halfway through the stream
// would leave nothing to retry.
func (l *layoutLayer) checkedOrRefetched(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err == nil {
		sum := sha256.New()
		if _, err = io.Copy(sum, f); err == nil && "sha256:"+hex.EncodeToString(sum.Sum(nil)) == l.desc.Digest.String() {
			if _, err = f.Seek(0, io.SeekStart); err == nil {
				return f, nil
			}
		}
		f.Close()
	}
	reason := "its content does not match its digest"
	if err != nil {
		reason = err.Error()
	}
	l.cache.log.Warn("A cached base image layer is damaged; pulling it again", "layer", l.desc.Digest.String(), "dir", l.cache.dir, "reason", reason)
	return l.refetch(l.desc.Digest)
}

// verifyingReader fails the read that reaches the end of a blob whose
// content does not match its digest, so that nothing built on a corrupt
// cache blob can be taken for good.
type verifyingReader struct {
	f    *os.File
	h    hash.Hash
	n    int64
	want v1.Hash
	size int64
	path string
}

func (r *verifyingReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	if r.n > r.size {
		return n, &Error{Op: "reading cached layer " + r.path, Err: fmt.Errorf("longer than the %d bytes its manifest says", r.size)}
	}
	if err == io.EOF {
		if got := "sha256:" + hex.EncodeToString(r.h.Sum(nil)); got != r.want.String() || r.n != r.size {
			return n, &Error{Op: "reading cached layer " + r.path, Err: fmt.Errorf("corrupt: content hashes to %s, want %s", got, r.want)}
		}
	}
	return n, err
}

func (r *verifyingReader) Close() error { return r.f.Close() }

// Verify reads every layer of img through to the end, so that a corrupt
// blob of the same size as a good one is found now rather than during a
// build. The warmer calls it before it trusts a cached image.
func Verify(img v1.Image) error {
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// Put stores img as ref's image for the platform in its config. Blobs
// already present are kept when their content checks and rewritten when
// not; the index entry for ref and that platform is replaced.
func (c *LayoutCache) Put(ctx context.Context, ref string, img v1.Image) error {
	r, err := normalizeRef(ref)
	if err != nil {
		return err
	}
	fail := func(err error) error {
		return fmt.Errorf("caching %s in %s: %w", r.Name(), c.dir, err)
	}
	if err := c.init(); err != nil {
		return fail(err)
	}
	layers, err := img.Layers()
	if err != nil {
		return fail(err)
	}
	for _, l := range layers {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		digest, err := l.Digest()
		if err != nil {
			return fail(err)
		}
		if err := c.writeBlob(digest, l.Compressed); err != nil {
			return fail(fmt.Errorf("layer %s: %w", digest, err))
		}
	}
	rawConfig, err := img.RawConfigFile()
	if err != nil {
		return fail(err)
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		return fail(err)
	}
	if err := c.writeBlob(cfgName, bytesOpener(rawConfig)); err != nil {
		return fail(err)
	}
	rawManifest, err := img.RawManifest()
	if err != nil {
		return fail(err)
	}
	desc, err := partial.Descriptor(img)
	if err != nil {
		return fail(err)
	}
	if err := c.writeBlob(desc.Digest, bytesOpener(rawManifest)); err != nil {
		return fail(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return fail(err)
	}
	platform := cfg.Platform()
	if platform == nil || platform.OS == "" {
		platform = &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	}
	entry := v1.Descriptor{
		MediaType: desc.MediaType,
		Size:      desc.Size,
		Digest:    desc.Digest,
		Platform:  platform,
		Annotations: map[string]string{
			AnnotationRefName:  r.Name(),
			AnnotationCachedAt: c.now().UTC().Format(time.RFC3339Nano),
		},
	}
	if err := c.updateIndex(entry); err != nil {
		return fail(err)
	}
	return nil
}

func bytesOpener(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

func (c *LayoutCache) init() error {
	if err := os.MkdirAll(filepath.Join(c.dir, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	layoutFile := filepath.Join(c.dir, "oci-layout")
	if _, err := os.Stat(layoutFile); err == nil {
		return nil
	}
	return atomicfile.WriteFile(layoutFile, []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// writeBlob streams a blob into place unless a good copy is there already.
func (c *LayoutCache) writeBlob(h v1.Hash, open func() (io.ReadCloser, error)) error {
	path := c.blobPath(h)
	if ok, _ := fileMatches(path, h); ok {
		return nil
	}
	rc, err := open()
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := atomicfile.Create(filepath.Dir(path), ".tmp-"+h.Hex[:12]+"-")
	if err != nil {
		return err
	}
	defer tmp.Discard()
	sum := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, sum), rc); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if got := "sha256:" + hex.EncodeToString(sum.Sum(nil)); got != h.String() {
		return fmt.Errorf("downloaded content hashes to %s, want %s", got, h)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	return tmp.Commit(path)
}

func fileMatches(path string, h v1.Hash) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	sum := sha256.New()
	if _, err := io.Copy(sum, f); err != nil {
		return false, err
	}
	return "sha256:"+hex.EncodeToString(sum.Sum(nil)) == h.String(), nil
}

// updateIndex replaces the entry for the same ref and platform under an
// exclusive flock, so that two writers cannot both read the old index and
// drop each other's entry; readers need no lock since the file is renamed
// into place whole.
func (c *LayoutCache) updateIndex(entry v1.Descriptor) error {
	lock, err := os.OpenFile(filepath.Join(c.dir, "index.json.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it too

	index, err := c.readIndex()
	if err != nil {
		// An index no reader can parse holds nothing worth keeping.
		c.log.Warn("Replacing the unreadable image cache index", "dir", c.dir, "error", err.Error())
		index = &v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex}
	}
	kept := index.Manifests[:0]
	for _, d := range index.Manifests {
		if d.Annotations[AnnotationRefName] == entry.Annotations[AnnotationRefName] && d.Platform != nil && samePlatform(*d.Platform, *entry.Platform) {
			continue
		}
		kept = append(kept, d)
	}
	index.Manifests = append(kept, entry)
	data, err := json.MarshalIndent(index, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(c.dir, "index.json"), data, 0o644)
}

func samePlatform(a, b v1.Platform) bool {
	a, b = normalizeVariant(a), normalizeVariant(b)
	return a.OS == b.OS && a.Architecture == b.Architecture && a.Variant == b.Variant && a.OSVersion == b.OSVersion
}

// ImagePuller is what CachedSource falls back to: engine/registry's Client.
type ImagePuller interface {
	Pull(ctx context.Context, ref string, platform v1.Platform) (v1.Image, error)
}

// CachedSource reads base images from the layout cache first and pulls
// the rest from Upstream, so a builder can use it as its image source.
type CachedSource struct {
	Cache    *LayoutCache
	Upstream ImagePuller
}

// Pull returns the cached image when there is a good one, else Upstream's.
func (s CachedSource) Pull(ctx context.Context, ref string, platform v1.Platform) (v1.Image, error) {
	if s.Cache != nil {
		img, ok, err := s.Cache.get(ctx, ref, platform, s.Upstream)
		if err != nil {
			return nil, err
		}
		if ok {
			s.Cache.log.Info("Found cached base image " + ref + " in " + s.Cache.dir)
			return img, nil
		}
	}
	return s.Upstream.Pull(ctx, ref, platform)
}

// pinnedRefetcher reads layers of the image ref pins from upstream, pulled
// at most once, so that a layer damaged in the cache is read from the
// registry instead of failing the build.
func pinnedRefetcher(ctx context.Context, upstream ImagePuller, ref name.Digest, platform v1.Platform) refetcher {
	var (
		once    sync.Once
		img     v1.Image
		pullErr error
	)
	return func(h v1.Hash) (io.ReadCloser, error) {
		once.Do(func() { img, pullErr = upstream.Pull(ctx, ref.String(), platform) })
		if pullErr != nil {
			return nil, fmt.Errorf("pulling %s again for its damaged cached layer %s: %w", ref, h, pullErr)
		}
		l, err := img.LayerByDigest(h)
		if err != nil {
			return nil, fmt.Errorf("pulling layer %s of %s again: %w", h, ref, err)
		}
		return l.Compressed()
	}
}

// Validate checks the whole layout as a reader would: index.json parses,
// and every manifest it names, with its config and layers, is present and
// matches its digest. It reads every blob, so it is for tests and repair,
// not for the build path.
func (c *LayoutCache) Validate() error {
	data, err := os.ReadFile(filepath.Join(c.dir, "index.json"))
	if err != nil {
		return err
	}
	index, err := v1.ParseIndexManifest(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("index.json: %w", err)
	}
	for _, d := range index.Manifests {
		img, err := c.image(d, nil)
		if err != nil {
			return fmt.Errorf("%s (%s): %w", d.Annotations[AnnotationRefName], d.Digest, err)
		}
		if err := Verify(img); err != nil {
			return fmt.Errorf("%s (%s): %w", d.Annotations[AnnotationRefName], d.Digest, err)
		}
	}
	return nil
}
