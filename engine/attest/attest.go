// Package attest makes the supply-chain records of an image and attaches
// them to it: an SPDX 2.3 JSON SBOM (sbom.go) and a SLSA v1 provenance
// statement in an in-toto Statement (provenance.go).
//
// Records are attached as OCI 1.1 referrers: an image manifest with an
// artifactType, the empty config and one layer holding the record, whose
// subject is the image. go-containerregistry does the rest: on a registry
// without the referrers API (the distribution registry 2.8, for one) it
// keeps the referrers tag schema's index, tagged sha256-<hex of the
// subject>, and reads it back the same way.
package attest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The artifact types of the records, as BuildKit, cosign and the registries'
// UIs know them.
const (
	SPDXArtifactType   = "application/spdx+json"
	InTotoArtifactType = "application/vnd.in-toto+json"
)

// emptyConfig is OCI 1.1's empty descriptor's content.
var emptyConfig = []byte("{}")

// Attach pushes record as an artifact of artifactType referring to subject
// (a manifest in the same repository) and returns the artifact's reference.
// annotations go on the artifact manifest, where a referrers listing shows
// them.
func Attach(ctx context.Context, subject name.Digest, artifactType string, record []byte, annotations map[string]string, opts ...remote.Option) (name.Digest, error) {
	opts = append(opts, remote.WithContext(ctx))
	desc, err := remote.Head(subject, opts...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("attaching %s to %s: %w", artifactType, subject, err)
	}
	repo := subject.Context()
	layer := static.NewLayer(record, types.MediaType(artifactType))
	config := static.NewLayer(emptyConfig, types.OCIEmptyJSON)
	for _, l := range []v1.Layer{config, layer} {
		if err := remote.WriteLayer(repo, l, opts...); err != nil {
			return name.Digest{}, fmt.Errorf("attaching %s to %s: %w", artifactType, subject, err)
		}
	}
	m := manifest{
		SchemaVersion: 2,
		MediaType:     types.OCIManifestSchema1,
		ArtifactType:  artifactType,
		Config:        descriptorOf(config),
		Layers:        []v1.Descriptor{descriptorOf(layer)},
		Subject:       &v1.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size},
		Annotations:   annotations,
	}
	raw, err := json.Marshal(m)
	if err != nil {
		return name.Digest{}, err
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return name.Digest{}, err
	}
	ref := repo.Digest(h.String())
	if err := remote.Put(ref, rawManifest{raw: raw, mediaType: types.OCIManifestSchema1}, opts...); err != nil {
		return name.Digest{}, fmt.Errorf("attaching %s to %s: %w", artifactType, subject, err)
	}
	return ref, nil
}

// Fetch returns the records of artifactType attached to subject, through the
// referrers API or its tag schema.
func Fetch(ctx context.Context, subject name.Digest, artifactType string, opts ...remote.Option) ([][]byte, error) {
	opts = append(opts, remote.WithContext(ctx))
	idx, err := remote.Referrers(subject, opts...)
	if err != nil {
		return nil, fmt.Errorf("referrers of %s: %w", subject, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var records [][]byte
	for _, d := range im.Manifests {
		// Registries that predate OCI 1.1's artifactType (ggcr's own, for
		// one) list the config's media type instead: look inside those.
		if d.ArtifactType != artifactType && d.ArtifactType != string(types.OCIEmptyJSON) {
			continue
		}
		img, err := remote.Image(subject.Context().Digest(d.Digest.String()), opts...)
		if err != nil {
			return nil, fmt.Errorf("referrer %s of %s: %w", d.Digest, subject, err)
		}
		if d.ArtifactType != artifactType {
			raw, err := img.RawManifest()
			if err != nil {
				return nil, err
			}
			var m manifest
			if json.Unmarshal(raw, &m) != nil || m.ArtifactType != artifactType {
				continue
			}
		}
		layers, err := img.Layers()
		if err != nil || len(layers) != 1 {
			return nil, fmt.Errorf("referrer %s of %s: want one layer (%v)", d.Digest, subject, err)
		}
		rc, err := layers[0].Compressed()
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		records = append(records, b)
	}
	return records, nil
}

// manifest is an OCI image manifest with the 1.1 fields ggcr's v1.Manifest
// lacks (artifactType).
type manifest struct {
	SchemaVersion int64             `json:"schemaVersion"`
	MediaType     types.MediaType   `json:"mediaType"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        v1.Descriptor     `json:"config"`
	Layers        []v1.Descriptor   `json:"layers"`
	Subject       *v1.Descriptor    `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

func descriptorOf(l v1.Layer) v1.Descriptor {
	// static layers cannot fail these.
	d, _ := l.Digest()
	n, _ := l.Size()
	mt, _ := l.MediaType()
	return v1.Descriptor{MediaType: mt, Digest: d, Size: n}
}

type rawManifest struct {
	raw       []byte
	mediaType types.MediaType
}

func (r rawManifest) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r rawManifest) MediaType() (types.MediaType, error) { return r.mediaType, nil }
