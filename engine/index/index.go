// Package index assembles per-platform images into one multi-platform
// image: an OCI image index, or a Docker manifest list. It is the engine of
// slipway-index, which runs after one slipway-build per platform (a Tekton
// matrix, an Argo fan-out).
//
// Every image is checked before anything is pushed: it is pinned by digest
// (or read from a local OCI layout), it is one image and not an index, its
// config names its platform, and no platform appears twice. The index is then published like a build's
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
	"github.com/google/go-containerregistry/pkg/v1/layout"
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
	// Images are the per-platform images, each REF@DIGEST in a registry or
	// oci-layout://PATH[@DIGEST], an image in a local OCI image layout (the
	// --oci-layout-path of a slipway-build --no-push).
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

// LayoutScheme prefixes an --image that names a local OCI image layout.
const LayoutScheme = "oci-layout://"

// Entry is one image of the index.
type Entry struct {
	// Source is the --image the entry came from, for messages.
	Source   string
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
		opts.Log.Info("Index entry", "platform", registry.FormatPlatform(e.Platform), "image", e.Source)
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
		var img v1.Image
		var mt types.MediaType
		if strings.HasPrefix(r, LayoutScheme) {
			img, mt, err = layoutImage(r)
		} else {
			img, mt, err = remoteImage(ctx, c, r)
		}
		if err != nil {
			return nil, err
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
		entries = append(entries, Entry{Source: r, Platform: p, Image: img, MediaType: mt})
	}
	return entries, nil
}

// remoteImage reads the image REF@DIGEST from its registry.
func remoteImage(ctx context.Context, c *registry.Client, r string) (v1.Image, types.MediaType, error) {
	ref, err := name.NewDigest(r, name.WeakValidation)
	if err != nil {
		return nil, "", fmt.Errorf("--image %q: want REF@DIGEST (e.g. registry/app@sha256:…), an image pinned by its digest, as slipway-build's IMAGES result gives, or %sPATH: %w", r, LayoutScheme, err)
	}
	desc, err := remote.Get(c.Reference(ref, false), append(c.RemoteOptions(ref, false), remote.WithContext(ctx))...)
	if err != nil {
		return nil, "", fmt.Errorf("--image %s: reading its manifest from %s: %w", r, ref.Context().RegistryStr(), err)
	}
	if err := checkImageType(r, desc.MediaType); err != nil {
		return nil, "", err
	}
	img, err := desc.Image()
	if err != nil {
		return nil, "", fmt.Errorf("--image %s: %w", r, err)
	}
	return img, desc.MediaType, nil
}

// layoutImage reads oci-layout://PATH[@DIGEST]: the image of that digest
// in the layout at PATH, or without a digest the layout's only manifest.
func layoutImage(r string) (v1.Image, types.MediaType, error) {
	path := strings.TrimPrefix(r, LayoutScheme)
	var want *v1.Hash
	if at := strings.LastIndex(path, "@"); at >= 0 && strings.HasPrefix(path[at+1:], "sha256:") {
		h, err := v1.NewHash(path[at+1:])
		if err != nil {
			return nil, "", fmt.Errorf("--image %s: %w", r, err)
		}
		path, want = path[:at], &h
	}
	if path == "" {
		return nil, "", fmt.Errorf("--image %s: want %sPATH[@DIGEST], the directory of an OCI image layout", r, LayoutScheme)
	}
	idx, err := layout.ImageIndexFromPath(path)
	if err != nil {
		return nil, "", fmt.Errorf("--image %s: reading the OCI layout at %s (as slipway-build --oci-layout-path writes): %w", r, path, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, "", fmt.Errorf("--image %s: %w", r, err)
	}
	var found []v1.Descriptor
	for _, m := range im.Manifests {
		if want == nil || m.Digest == *want {
			found = append(found, m)
		}
	}
	switch {
	case len(found) == 0 && want != nil:
		return nil, "", fmt.Errorf("--image %s: the layout at %s holds no manifest %s", r, path, want)
	case len(found) != 1:
		return nil, "", fmt.Errorf("--image %s: the layout at %s holds %d manifests; name one as %s%s@DIGEST", r, path, len(found), LayoutScheme, path)
	}
	if err := checkImageType(r, found[0].MediaType); err != nil {
		return nil, "", err
	}
	img, err := idx.Image(found[0].Digest)
	if err != nil {
		return nil, "", fmt.Errorf("--image %s: %w", r, err)
	}
	return img, found[0].MediaType, nil
}

func checkImageType(r string, mt types.MediaType) error {
	if mt.IsIndex() {
		return fmt.Errorf("--image %s is itself a multi-platform index, not a single-platform image: give each platform's image", r)
	}
	if !mt.IsImage() {
		return fmt.Errorf("--image %s has media type %s, not an image manifest", r, mt)
	}
	return nil
}

// imageList expands the --image values: a JSON array (the outputs of an
// Argo withParam fan-out) gives one image per element, and of a
// comma-separated list (slipway-build's IMAGES result with several
// destinations, all the same image) the first reference is taken. A layout
// path is taken whole.
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
		if strings.HasPrefix(v, LayoutScheme) {
			out = append(out, v)
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
			extra = append(extra, k+" ("+e.Source+")")
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
				return nil, fmt.Errorf("--format docker: --image %s is an %s, and a Docker manifest list holds only Docker images; use --format oci", e.Source, e.MediaType)
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
