package registry

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-build/slipway/engine/phase"
)

// Pull fetches the image ref. An index is resolved to platform; a zero
// platform means linux on this machine's architecture. Docker Hub pulls go
// through Options.Mirrors and any registry through Options.RegistryMaps
// first, as kaniko does. Layers are fetched lazily, when read.
func (c *Client) Pull(ctx context.Context, ref string, platform v1.Platform) (v1.Image, error) {
	defer phase.Start(phase.Pull)()
	platform = defaultPlatform(platform)
	parsed, err := name.ParseReference(ref, name.WeakValidation)
	if err != nil {
		return nil, fmt.Errorf("pulling %s: invalid image reference: %w", ref, err)
	}
	c.opts.Log.Info("Retrieving image manifest " + ref)

	for _, alt := range c.alternatives(parsed) {
		c.opts.Log.Info("Retrieving image " + alt.String() + " from mapped registry " + alt.Context().RegistryStr())
		img, err := c.pullFrom(ctx, ref, alt, platform)
		if err == nil {
			return img, nil
		}
		c.opts.Log.Warn("Failed to retrieve image from mapped registry; trying the next one, or the original registry",
			"image", alt.String(), "error", Redact(err.Error()))
	}
	if len(c.alternatives(parsed)) > 0 && c.opts.SkipDefaultRegistryFallback {
		return nil, fmt.Errorf("pulling %s: not found on any configured mirror or mapped registry, and --skip-default-registry-fallback is set", ref)
	}
	return c.pullFrom(ctx, ref, parsed, platform)
}

func (c *Client) pullFrom(ctx context.Context, userRef string, ref name.Reference, platform v1.Platform) (v1.Image, error) {
	registry := ref.Context().RegistryStr()
	subject := fmt.Sprintf("pulling %s from %s", userRef, registry)
	img, err := retry(ctx, c.opts.Log, subject, c.opts.ImageDownloadRetry, c.opts.RetryDelay, func() (v1.Image, error) {
		return c.fetch(ctx, userRef, ref, platform)
	})
	return img, c.explain(subject, registry, true, err)
}

func (c *Client) fetch(ctx context.Context, userRef string, ref name.Reference, platform v1.Platform) (v1.Image, error) {
	ref = c.Reference(ref, false)
	opts := append(c.RemoteOptions(ref, false), remote.WithContext(ctx), remote.WithPlatform(platform))
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, err
	}
	if !desc.MediaType.IsIndex() {
		img, err := desc.Image()
		if err != nil {
			return nil, err
		}
		if err := checkImagePlatform(userRef, img, platform); err != nil {
			return nil, err
		}
		return img, nil
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	manifest, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var available []v1.Platform
	for _, m := range manifest.Manifests {
		if m.Platform == nil || !m.MediaType.IsImage() {
			continue
		}
		if MatchPlatform(platform, *m.Platform) {
			return idx.Image(m.Digest)
		}
		// Attestation manifests carry unknown/unknown; they are no choice.
		if m.Platform.OS != "unknown" {
			available = append(available, *m.Platform)
		}
	}
	return nil, &PlatformError{Ref: userRef, Want: platform, Available: available}
}

// alternatives are the mirror and mapped references to try before ref's own
// registry, in order. Mirrors apply to Docker Hub only and are kaniko's
// registry-map entries for it.
func (c *Client) alternatives(ref name.Reference) []name.Reference {
	reg := ref.Context().RegistryStr()
	var targets []string
	targets = append(targets, c.opts.RegistryMaps[reg]...)
	if reg == name.DefaultRegistry {
		targets = append(targets, c.opts.Mirrors...)
	}
	var out []name.Reference
	for _, target := range targets {
		if alt, err := remap(ref, target); err == nil {
			out = append(out, alt)
		} else {
			c.opts.Log.Warn("Ignoring unusable registry mirror or map", "target", target, "error", Redact(err.Error()))
		}
	}
	return out
}

// remap moves ref to target, which is a registry host optionally followed by
// a repository prefix ("mirror.local:5000/dockerhub").
func remap(ref name.Reference, target string) (name.Reference, error) {
	target = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(target, "https://"), "http://"), "/")
	host, prefix, _ := strings.Cut(target, "/")
	repo := ref.Context().RepositoryStr()
	if prefix != "" {
		repo = prefix + "/" + repo
	}
	newRef := host + "/" + repo
	if d, ok := ref.(name.Digest); ok {
		return name.NewDigest(newRef+"@"+d.DigestStr(), name.WeakValidation)
	}
	return name.NewTag(newRef+":"+ref.Identifier(), name.WeakValidation)
}
