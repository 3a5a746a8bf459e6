package cache

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/slipway-build/slipway/e2e/harness"
)

const testRef = "127.0.0.1:5000/base/busybox:1"

func cachedBusybox(t *testing.T, opts ...LayoutOption) (*LayoutCache, v1.Image) {
	t.Helper()
	img := harness.BusyboxImage(t)
	c := NewLayoutCache(t.TempDir(), time.Hour, opts...)
	if err := c.Put(context.Background(), testRef, img); err != nil {
		t.Fatal(err)
	}
	return c, img
}

func TestLayoutRoundTrip(t *testing.T) {
	c, img := cachedBusybox(t)
	got, ok, err := c.Get(testRef, v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil || !ok {
		t.Fatalf("Get = %v, %v", ok, err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Errorf("digest %s, want %s", d, want)
	}
	if err := validate.Image(got); err != nil {
		t.Errorf("cached image does not validate: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("layout does not validate: %v", err)
	}
	// The same name in another spelling is the same image.
	if _, ok, _ := c.Get("127.0.0.1:5000/base/busybox:1", v1.Platform{}); !ok {
		t.Error("zero platform (this machine's) missed")
	}
	for _, miss := range []struct {
		ref      string
		platform v1.Platform
	}{
		{"127.0.0.1:5000/base/busybox:2", v1.Platform{}},
		{testRef, v1.Platform{OS: "linux", Architecture: "arm64"}},
	} {
		if _, ok, err := c.Get(miss.ref, miss.platform); ok || err != nil {
			t.Errorf("Get(%s, %s) = %v, %v; want a miss", miss.ref, miss.platform.String(), ok, err)
		}
	}
	// The layout is a standard one that other tools read.
	for _, f := range []string{"oci-layout", "index.json"} {
		if _, err := os.Stat(filepath.Join(c.Dir(), f)); err != nil {
			t.Error(err)
		}
	}
	index, err := c.readIndex()
	if err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations[AnnotationRefName] != testRef || index.Manifests[0].Annotations[AnnotationCachedAt] == "" {
		t.Errorf("index.json entries %+v, want one annotated with the ref and time", index.Manifests)
	}
}

// A second Put of the same ref and platform replaces the entry; other
// entries stay.
func TestLayoutPutReplaces(t *testing.T) {
	c, _ := cachedBusybox(t)
	ctx := context.Background()
	other, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	other, err = mutate.ConfigFile(other, &v1.ConfigFile{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, "127.0.0.1:5000/other:1", other); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(ctx, testRef, other); err != nil {
		t.Fatal(err)
	}
	index, err := c.readIndex()
	if err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 2 {
		t.Fatalf("index has %d entries, want 2", len(index.Manifests))
	}
	got, ok, err := c.Get(testRef, v1.Platform{})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	want, _ := other.Digest()
	if d, _ := got.Digest(); d != want {
		t.Errorf("got %s, want the replacement %s", d, want)
	}
}

func TestLayoutTTL(t *testing.T) {
	img := harness.BusyboxImage(t)
	digest, _ := img.Digest()
	byDigest := "127.0.0.1:5000/base/busybox@" + digest.String()
	dir := t.TempDir()
	if err := NewLayoutCache(dir, time.Hour).Put(context.Background(), testRef, img); err != nil {
		t.Fatal(err)
	}
	if err := NewLayoutCache(dir, time.Hour).Put(context.Background(), byDigest, img); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		ref   string
		later time.Duration
		hit   bool
	}{
		{"tag, fresh", testRef, 59 * time.Minute, true},
		{"tag, expired", testRef, 61 * time.Minute, false},
		{"digest never expires", byDigest, 1000 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logBuf bytes.Buffer
			c := NewLayoutCache(dir, time.Hour, WithLayoutLogger(slogTo(&logBuf)),
				WithLayoutClock(func() time.Time { return time.Now().Add(tt.later) }))
			_, ok, err := c.Get(tt.ref, v1.Platform{})
			if err != nil || ok != tt.hit {
				t.Errorf("Get = %v, %v; want hit %v", ok, err, tt.hit)
			}
			if !tt.hit && !strings.Contains(logBuf.String(), "expired") {
				t.Errorf("expiry not logged: %s", logBuf.String())
			}
		})
	}
}

// Damage is a miss with a warning, or for a layer whose size still fits,
// an error on reading that IsCacheError recognises: never a wrong image.
func TestLayoutDamage(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, c *LayoutCache, m *v1.Manifest, manifest v1.Hash)
		// miss: Get misses; otherwise reading the layers fails.
		miss bool
	}{
		{"layer flipped, same size", func(t *testing.T, c *LayoutCache, m *v1.Manifest, _ v1.Hash) {
			flipByte(t, c.blobPath(m.Layers[0].Digest))
		}, false},
		{"layer truncated", func(t *testing.T, c *LayoutCache, m *v1.Manifest, _ v1.Hash) {
			if err := os.Truncate(c.blobPath(m.Layers[0].Digest), 10); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"layer missing", func(t *testing.T, c *LayoutCache, m *v1.Manifest, _ v1.Hash) {
			if err := os.Remove(c.blobPath(m.Layers[0].Digest)); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"config flipped", func(t *testing.T, c *LayoutCache, m *v1.Manifest, _ v1.Hash) {
			flipByte(t, c.blobPath(m.Config.Digest))
		}, true},
		{"manifest flipped", func(t *testing.T, c *LayoutCache, _ *v1.Manifest, h v1.Hash) {
			flipByte(t, c.blobPath(h))
		}, true},
		{"index.json garbage", func(t *testing.T, c *LayoutCache, _ *v1.Manifest, _ v1.Hash) {
			if err := os.WriteFile(filepath.Join(c.Dir(), "index.json"), []byte("{not json"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logBuf bytes.Buffer
			c, img := cachedBusybox(t, WithLayoutLogger(slogTo(&logBuf)))
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			h, _ := img.Digest()
			tt.damage(t, c, m, h)
			got, ok, err := c.Get(testRef, v1.Platform{})
			if err != nil {
				t.Fatalf("Get failed instead of missing: %v", err)
			}
			if tt.miss {
				if ok {
					t.Fatal("a damaged entry was a hit")
				}
				if !strings.Contains(logBuf.String(), "level=WARN") {
					t.Errorf("no warning logged: %s", logBuf.String())
				}
				return
			}
			if !ok {
				t.Fatal("Get missed; want a hit whose layer read fails")
			}
			err = Verify(got)
			if err == nil || !IsCacheError(err) || !strings.Contains(err.Error(), "corrupt") {
				t.Errorf("Verify = %v, want a cache error about corruption", err)
			}
			if err := c.Validate(); err == nil {
				t.Error("Validate passed a corrupt layout")
			}
		})
	}
}

func flipByte(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Putting again repairs a corrupt blob rather than trusting that it is
// there.
func TestLayoutPutRepairs(t *testing.T) {
	c, img := cachedBusybox(t)
	m, _ := img.Manifest()
	flipByte(t, c.blobPath(m.Layers[0].Digest))
	if err := c.Put(context.Background(), testRef, img); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("layout still corrupt after Put: %v", err)
	}
}

type countingPuller struct {
	img   v1.Image
	pulls int
	refs  []string
}

func (p *countingPuller) Pull(_ context.Context, ref string, _ v1.Platform) (v1.Image, error) {
	p.pulls++
	p.refs = append(p.refs, ref)
	if p.img == nil {
		return nil, errors.New("upstream has no image")
	}
	return p.img, nil
}

func TestCachedSource(t *testing.T) {
	c, img := cachedBusybox(t)
	upstream := &countingPuller{img: img}
	src := CachedSource{Cache: c, Upstream: upstream}
	ctx := context.Background()
	if _, err := src.Pull(ctx, testRef, v1.Platform{}); err != nil {
		t.Fatal(err)
	}
	if upstream.pulls != 0 {
		t.Errorf("a cached image was pulled from upstream")
	}
	if _, err := src.Pull(ctx, "127.0.0.1:5000/not/cached:1", v1.Platform{}); err != nil {
		t.Fatal(err)
	}
	if upstream.pulls != 1 {
		t.Errorf("an image not in the cache was pulled %d times from upstream, want 1", upstream.pulls)
	}
	// A cache directory that does not exist yet is just empty.
	empty := CachedSource{Cache: NewLayoutCache(filepath.Join(t.TempDir(), "none"), 0), Upstream: upstream}
	if _, err := empty.Pull(ctx, testRef, v1.Platform{}); err != nil {
		t.Fatal(err)
	}
	if upstream.pulls != 2 {
		t.Errorf("upstream pulls = %d, want 2", upstream.pulls)
	}
}

// A base layer damaged in the cache (same size, so Get cannot tell) is read
// from the registry again, pinned to the cached image's digest, with a
// warning; the build does not fail.
func TestCachedSourceRepullsADamagedLayer(t *testing.T) {
	var logBuf bytes.Buffer
	c, img := cachedBusybox(t, WithLayoutLogger(slogTo(&logBuf)))
	m, _ := img.Manifest()
	flipByte(t, c.blobPath(m.Layers[0].Digest))
	upstream := &countingPuller{img: img}
	got, err := CachedSource{Cache: c, Upstream: upstream}.Pull(context.Background(), testRef, v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(got); err != nil {
		t.Fatalf("reading the layers: %v", err)
	}
	digest, _ := img.Digest()
	if want := "127.0.0.1:5000/base/busybox@" + digest.String(); upstream.pulls != 1 || upstream.refs[0] != want {
		t.Errorf("upstream pulls %v, want one of %s", upstream.refs, want)
	}
	if !strings.Contains(logBuf.String(), "damaged") {
		t.Errorf("no warning about the damaged layer: %s", logBuf.String())
	}
	if d, _ := got.Digest(); d != digest {
		t.Errorf("image digest %s, want %s", d, digest)
	}
}
