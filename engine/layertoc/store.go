package layertoc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway-build/slipway/engine/registry"
)

// Store keeps tables by the diff ID of the layer they describe.
type Store interface {
	// Get returns the table kept for the layer, or nil and no error when
	// none is. An error wrapping ErrDamaged means one is kept but cannot
	// be used.
	Get(ctx context.Context, diffID v1.Hash) (*TOC, error)
	// Has says whether a table is kept for the layer.
	Has(ctx context.Context, diffID v1.Hash) (bool, error)
	// Put keeps t, replacing any table kept for its layer.
	Put(ctx context.Context, t *TOC) error
}

// ArtifactType is the artifactType of the manifests that hold tables.
const ArtifactType = "application/vnd.slipway.layer.toc.v1"

// emptyConfig is the OCI empty descriptor's content, an artifact's config.
var emptyConfig = []byte("{}")

// Tag is the tag under which the cache repository keeps the table of the
// layer with diffID: "toc-sha256-<hex>". Step cache entries are tagged by
// their bare hexadecimal key, so the two never meet.
func Tag(diffID v1.Hash) string { return "toc-" + diffID.Algorithm + "-" + diffID.Hex }

// NewRegistryStore keeps each table in repo as an OCI artifact: a manifest
// of artifactType ArtifactType, with the empty config and the table's blob
// (MediaType) as its one layer, tagged Tag(diffID).
func NewRegistryStore(repo string, client *registry.Client) Store {
	return &registryStore{repo: repo, client: client}
}

// registryStore talks through the client's Puller and Pusher
// (registry.Client.RemoteOptions), which keep the registry's token and
// connections across the build's lookups and writes.
type registryStore struct {
	repo   string
	client *registry.Client
}

func (s *registryStore) ref(diffID v1.Hash) (name.Tag, error) {
	t, err := name.NewTag(s.repo+":"+Tag(diffID), name.WeakValidation)
	if err != nil {
		return name.Tag{}, fmt.Errorf("cache repository %q: %w; check --cache-repo", s.repo, err)
	}
	return t, nil
}

// options are the client's options for ref, within ctx.
func (s *registryStore) options(ctx context.Context, ref name.Reference, forPush bool) []remote.Option {
	return append(s.client.RemoteOptions(ref, forPush), remote.WithContext(ctx))
}

func (s *registryStore) Get(ctx context.Context, diffID v1.Hash) (*TOC, error) {
	tag, err := s.ref(diffID)
	if err != nil {
		return nil, err
	}
	ref := s.client.Reference(tag, false)
	desc, err := remote.Get(ref, s.options(ctx, ref, false)...)
	if err != nil {
		if registry.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading %s: %w", tag, err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(desc.Manifest, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrDamaged, tag, err)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != MediaType || m.Layers[0].Size > maxTable {
		return nil, fmt.Errorf("%w: %s is not a table of contents (%d layers)", ErrDamaged, tag, len(m.Layers))
	}
	l, err := remote.Layer(ref.Context().Digest(m.Layers[0].Digest.String()), s.options(ctx, ref, false)...)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", tag, err)
	}
	rc, err := l.Compressed()
	if err != nil {
		if registry.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %s: its blob is missing", ErrDamaged, tag)
		}
		return nil, fmt.Errorf("reading %s: %w", tag, err)
	}
	defer rc.Close()
	// The reader checks the blob's digest as it reaches its end.
	t, err := Unmarshal(rc, diffID)
	if err != nil {
		if registry.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %s: its blob is missing", ErrDamaged, tag)
		}
		if !errors.Is(err, ErrDamaged) {
			err = fmt.Errorf("%w: %w", ErrDamaged, err)
		}
		return nil, fmt.Errorf("%s: %w", tag, err)
	}
	return t, nil
}

func (s *registryStore) Has(ctx context.Context, diffID v1.Hash) (bool, error) {
	tag, err := s.ref(diffID)
	if err != nil {
		return false, err
	}
	ref := s.client.Reference(tag, false)
	if _, err := remote.Head(ref, s.options(ctx, ref, false)...); err != nil {
		if registry.IsNotFound(err) {
			return false, nil
		}
		return false, fmt.Errorf("looking up %s: %w", tag, err)
	}
	return true, nil
}

func (s *registryStore) Put(ctx context.Context, t *TOC) error {
	tag, err := s.ref(t.DiffID)
	if err != nil {
		return err
	}
	ref := s.client.Reference(tag, true)
	opts := s.options(ctx, ref, true)
	blob, err := t.Marshal()
	if err != nil {
		return err
	}
	config := static.NewLayer(emptyConfig, types.OCIEmptyJSON)
	table := static.NewLayer(blob, MediaType)
	var m artifact
	m.SchemaVersion = 2
	m.Manifest.MediaType = types.OCIManifestSchema1
	m.ArtifactType = ArtifactType
	for i, l := range []v1.Layer{config, table} {
		if err := remote.WriteLayer(ref.Context(), l, opts...); err != nil {
			return fmt.Errorf("writing %s: %w", tag, err)
		}
		d, err := partial.Descriptor(l)
		if err != nil {
			return err
		}
		if i == 0 {
			m.Config = *d
		} else {
			m.Layers = []v1.Descriptor{*d}
		}
	}
	if err := remote.Put(ref, &m, opts...); err != nil {
		return fmt.Errorf("writing %s: %w", tag, err)
	}
	return nil
}

// artifact is a manifest to Put.
type artifact struct{ v1.Manifest }

func (a *artifact) RawManifest() ([]byte, error)        { return json.Marshal(a.Manifest) }
func (a *artifact) MediaType() (types.MediaType, error) { return a.Manifest.MediaType, nil }
