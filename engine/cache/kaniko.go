package cache

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// KanikoSource reads base images from a cache directory filled by
// kaniko's warmer: a docker-save tarball named by the image digest
// ("sha256:…"), with the original manifest beside it in "sha256:….json".
// A tag is resolved to its digest upstream, as kaniko does; a digest
// reference is looked up directly. Entries older than TTL (by file time)
// are not used.
type KanikoSource struct {
	Dir      string
	TTL      time.Duration
	Upstream ImagePuller
	Log      *slog.Logger
	now      func() time.Time
}

// HasKanikoEntries reports whether dir holds any kaniko warmer entry.
func HasKanikoEntries(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "sha256:*"))
	return len(m) > 0
}

// Pull returns the cached image for ref when there is a fresh one, else
// Upstream's.
func (s KanikoSource) Pull(ctx context.Context, ref string, platform v1.Platform) (v1.Image, error) {
	parsed, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return s.Upstream.Pull(ctx, ref, platform)
	}
	var upstream v1.Image
	key := ""
	if d, ok := parsed.(name.Digest); ok {
		key = d.DigestStr()
	} else {
		// Only the manifest is read here; layers are fetched when used.
		if upstream, err = s.Upstream.Pull(ctx, ref, platform); err != nil {
			return nil, err
		}
		h, err := upstream.Digest()
		if err != nil {
			return nil, err
		}
		key = h.String()
	}
	img, err := s.cached(key)
	if err != nil {
		s.log().Warn(fmt.Sprintf("Ignoring the kaniko cache entry for %s in %s: %v", ref, s.Dir, err))
	}
	if img != nil {
		s.log().Info("Found cached base image " + ref + " in " + s.Dir)
		return img, nil
	}
	if upstream != nil {
		return upstream, nil
	}
	return s.Upstream.Pull(ctx, ref, platform)
}

func (s KanikoSource) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// cached returns the entry for key, or nil when there is none or it is
// stale.
func (s KanikoSource) cached(key string) (v1.Image, error) {
	if strings.ContainsAny(key, "/\\") || !strings.HasPrefix(key, "sha256:") {
		return nil, nil
	}
	path := filepath.Join(s.Dir, key)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil
	}
	now := time.Now
	if s.now != nil {
		now = s.now
	}
	if s.TTL > 0 && fi.ModTime().Add(s.TTL).Before(now()) {
		s.log().Debug(fmt.Sprintf("kaniko cache entry %s is older than --cache-ttl", path))
		return nil, nil
	}
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		return nil, err
	}
	want, err := v1.NewHash(key)
	if err != nil {
		return nil, err
	}
	// A docker-save tarball rewrites OCI media types, and so the digest;
	// the manifest kaniko keeps beside it restores the original image,
	// whose blobs the tarball holds unchanged.
	if raw, err := os.ReadFile(path + ".json"); err == nil {
		if h, _, err := v1.SHA256(bytes.NewReader(raw)); err == nil && h == want {
			return partial.CompressedToImage(&kanikoImage{tar: img, manifest: raw})
		}
	}
	if got, err := img.Digest(); err != nil || got != want {
		s.log().Debug(fmt.Sprintf("kaniko cache entry %s has digest %s as a tarball; using it as it is", path, got))
	}
	return img, nil
}

// kanikoImage is a cached tarball served with its original manifest.
type kanikoImage struct {
	tar      v1.Image
	manifest []byte
}

func (i *kanikoImage) RawManifest() ([]byte, error)   { return i.manifest, nil }
func (i *kanikoImage) RawConfigFile() ([]byte, error) { return i.tar.RawConfigFile() }
func (i *kanikoImage) MediaType() (types.MediaType, error) {
	m, err := v1.ParseManifest(bytes.NewReader(i.manifest))
	if err != nil {
		return "", err
	}
	if m.MediaType != "" {
		return m.MediaType, nil
	}
	return types.DockerManifestSchema2, nil
}

func (i *kanikoImage) LayerByDigest(h v1.Hash) (partial.CompressedLayer, error) {
	m, err := v1.ParseManifest(bytes.NewReader(i.manifest))
	if err != nil {
		return nil, err
	}
	if h == m.Config.Digest {
		return partial.ConfigLayer(i.tar)
	}
	return i.tar.LayerByDigest(h)
}
