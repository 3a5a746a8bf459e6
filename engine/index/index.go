// Package index assembles per-platform images into one multi-platform
// image: an OCI image index, or a Docker manifest list. It is the engine of
// slipway-index, which runs after one slipway-build per platform (a Tekton
// matrix, an Argo fan-out).
//
// Every image is checked before anything is pushed: it is pinned by digest,
// it is one image and not an index, its config names its platform, and no
// platform appears twice. The index is then published like a build's
// image, with its digest and result files (engine/publish).
package index

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway-build/slipway/engine/publish"
	"github.com/slipway-build/slipway/engine/registry"
)

// Formats of the index.
const (
	FormatOCI    = "oci"    // application/vnd.oci.image.index.v1+json
	FormatDocker = "docker" // application/vnd.docker.distribution.manifest.list.v2+json
)

// Options are slipway-index's inputs.
type Options struct {
	// Images are the per-platform images, each REF@DIGEST.
	Images []string
	// Platforms, when given, are the platforms the index must hold: each
	// exactly once, and no other.
	Platforms []string
	// Format is FormatOCI (the default) or FormatDocker.
	Format   string
	Publish  publish.Options
	Registry registry.Options
	Log      *slog.Logger
}

// Entry is one image of the index.
type Entry struct {
	Ref      name.Digest
	Platform v1.Platform
	Image    v1.Image
	// MediaType is the image manifest's media type.
	MediaType types.MediaType
}

// Run assembles the index, publishes it and returns its digest.
func Run(ctx context.Context, opts Options) (v1.Hash, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if err := opts.Registry.Validate(); err != nil {
		return v1.Hash{}, err
	}
	if opts.Registry.Log == nil {
		opts.Registry.Log = opts.Log
	}
	if opts.Publish.Log == nil {
		opts.Publish.Log = opts.Log
	}
	c := registry.New(opts.Registry)
	if err := publish.Check(ctx, c, opts.Publish); err != nil {
		return v1.Hash{}, err
	}
	entries, err := Resolve(ctx, c, opts.Images)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := checkPlatforms(entries, opts.Platforms); err != nil {
		return v1.Hash{}, err
	}
	idx, err := Assemble(entries, opts.Format)
	if err != nil {
		return v1.Hash{}, err
	}
	for _, e := range entries {
		opts.Log.Info("Index entry", "platform", registry.FormatPlatform(e.Platform), "image", e.Ref.String())
	}
	return publish.PublishIndex(ctx, idx, c, opts.Publish)
}

// Resolve reads each image's manifest and config and checks it can be an
// index entry: pinned by digest, one image (not an index), naming its
// platform, every platform once.
func Resolve(ctx context.Context, c *registry.Client, refs []string) ([]Entry, error) {
	refs, err := imageList(refs)
	if err != nil {
		return nil, err
	}
	if len(refs) == 0 {
		return nil, errors.New("no --image given: name each platform's image as REF@DIGEST")
	}
	var entries []Entry
	seen := map[string]string{}
	for _, r := range refs {
		r = strings.TrimSpace(r)
		ref, err := name.NewDigest(r, name.WeakValidation)
		if err != nil {
			return nil, fmt.Errorf("--image %q: want REF@DIGEST (e.g. registry/app@sha256:…), an image pinned by its digest, as slipway-build's IMAGES result gives: %w", r, err)
		}
		desc, err := remote.Get(c.Reference(ref, false), append(c.RemoteOptions(ref, false), remote.WithContext(ctx))...)
		if err != nil {
			return nil, fmt.Errorf("--image %s: reading its manifest from %s: %w", r, ref.Context().RegistryStr(), err)
		}
		if desc.MediaType.IsIndex() {
			return nil, fmt.Errorf("--image %s is itself a multi-platform index, not a single-platform image: give each platform's image", r)
		}
		if !desc.MediaType.IsImage() {
			return nil, fmt.Errorf("--image %s has media type %s, not an image manifest", r, desc.MediaType)
		}
		img, err := desc.Image()
		if err != nil {
			return nil, fmt.Errorf("--image %s: %w", r, err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("--image %s: reading its config: %w", r, err)
		}
		if cf.OS == "" || cf.Architecture == "" {
			return nil, fmt.Errorf("--image %s: its config names no platform (os %q, architecture %q), so it cannot be placed in an index", r, cf.OS, cf.Architecture)
		}
		p := registry.NormalizePlatform(v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant, OSVersion: cf.OSVersion, OSFeatures: cf.OSFeatures})
		key := registry.FormatPlatform(p)
		if other, dup := seen[key]; dup {
			return nil, fmt.Errorf("platform %s appears twice: --image %s and --image %s; give one image per platform", key, other, r)
		}
		seen[key] = r
		entries = append(entries, Entry{Ref: ref, Platform: p, Image: img, MediaType: desc.MediaType})
	}
	return entries, nil
}

// imageList expands the --image values: a JSON array (the outputs of an
// Argo withParam fan-out) gives one image per element, and of a
// comma-separated list (slipway-build's IMAGES result with several
// destinations, all the same image) the first reference is taken.
func imageList(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		v = strings.TrimSpace(v)
		if strings.HasPrefix(v, "[") {
			var list []string
			if err := json.Unmarshal([]byte(v), &list); err != nil {
				return nil, fmt.Errorf("--image %q: not a JSON array of strings: %w", v, err)
			}
			more, err := imageList(list)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
			continue
		}
		first, _, _ := strings.Cut(v, ",")
		if first = strings.TrimSpace(first); first != "" {
			out = append(out, first)
		}
	}
	return out, nil
}

// checkPlatforms compares the entries' platforms with the expected ones.
func checkPlatforms(entries []Entry, want []string) error {
	if len(want) == 0 {
		return nil
	}
	expected := map[string]bool{}
	for _, w := range want {
		var list []string
		if err := json.Unmarshal([]byte(w), &list); err != nil || !strings.HasPrefix(strings.TrimSpace(w), "[") {
			list = strings.Split(w, ",")
		}
		for _, s := range list {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			p, err := registry.ParsePlatform(s)
			if err != nil {
				return fmt.Errorf("--platform %q: %w", s, err)
			}
			expected[registry.FormatPlatform(p)] = true
		}
	}
	var missing, extra []string
	have := map[string]bool{}
	for _, e := range entries {
		k := registry.FormatPlatform(e.Platform)
		have[k] = true
		if !expected[k] {
			extra = append(extra, k+" ("+e.Ref.String()+")")
		}
	}
	for k := range expected {
		if !have[k] {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 || len(extra) > 0 {
		return fmt.Errorf("the images do not match --platform %s: missing %v, not asked for %v", strings.Join(want, ","), missing, extra)
	}
	return nil
}

// Assemble makes the index of entries, in their order.
func Assemble(entries []Entry, format string) (v1.ImageIndex, error) {
	var mt types.MediaType
	switch format {
	case "", FormatOCI:
		mt = types.OCIImageIndex
	case FormatDocker:
		mt = types.DockerManifestList
		for _, e := range entries {
			if e.MediaType != types.DockerManifestSchema2 {
				return nil, fmt.Errorf("--format docker: --image %s is an %s, and a Docker manifest list holds only Docker images; use --format oci", e.Ref, e.MediaType)
			}
		}
	default:
		return nil, fmt.Errorf("--format %q: use oci or docker", format)
	}
	idx := mutate.IndexMediaType(empty.Index, mt)
	adds := make([]mutate.IndexAddendum, 0, len(entries))
	for _, e := range entries {
		p := e.Platform
		adds = append(adds, mutate.IndexAddendum{Add: e.Image, Descriptor: v1.Descriptor{MediaType: e.MediaType, Platform: &p}})
	}
	return mutate.AppendManifests(idx, adds...), nil
}
