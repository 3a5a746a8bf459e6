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

// immutableTagErrors are the messages registries give when a tag may not
// be overwritten: Artifact Registry's and ECR's, as kaniko knows them.
var immutableTagErrors = []string{
	"The repository has enabled tag immutability",
	"cannot be overwritten because the repository is immutable",
}

// IsImmutableTagError reports whether a push failed only because the
// registry refuses to move an immutable tag.
func IsImmutableTagError(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	for _, m := range immutableTagErrors {
		if strings.Contains(msg, m) {
			return true
		}
	}
	return false
}

// Push writes img to ref, retrying Options.PushRetry times with backoff,
// and returns the pushed manifest's digest.
func (c *Client) Push(ctx context.Context, img v1.Image, ref name.Reference) (v1.Hash, error) {
	return c.push(ctx, img, ref, func(ref name.Reference, opts []remote.Option) error {
		return remote.Write(ref, img, opts...)
	})
}

// PushIndex writes a multi-platform index and its images to ref.
func (c *Client) PushIndex(ctx context.Context, idx v1.ImageIndex, ref name.Reference) (v1.Hash, error) {
	return c.push(ctx, idx, ref, func(ref name.Reference, opts []remote.Option) error {
		return remote.WriteIndex(ref, idx, opts...)
	})
}

type digester interface{ Digest() (v1.Hash, error) }

func (c *Client) push(ctx context.Context, what digester, ref name.Reference, write func(name.Reference, []remote.Option) error) (v1.Hash, error) {
	registry := ref.Context().RegistryStr()
	subject := "pushing to " + ref.Context().Name()
	digest, err := what.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("%s: computing the image digest: %w", subject, err)
	}
	c.opts.Log.Info("Pushing image to " + ref.String())
	defer phase.Start(phase.Push)()
	target := c.Reference(ref, true)
	_, err = retry(ctx, c.opts.Log, subject, c.opts.PushRetry, c.opts.RetryDelay, func() (struct{}, error) {
		return struct{}{}, write(target, append(c.RemoteOptions(target, true), remote.WithContext(ctx)))
	})
	if err != nil {
		return v1.Hash{}, c.explain(subject, registry, false, err)
	}
	c.opts.Log.Info(fmt.Sprintf("Pushed %s@%s", ref.Context().Name(), digest))
	return digest, nil
}

// CheckPushPermission starts (and abandons) a blob upload to ref's
// repository, so that refused credentials fail the build before it runs
// rather than after, as kaniko does.
func (c *Client) CheckPushPermission(ctx context.Context, ref name.Reference) error {
	registry := ref.Context().RegistryStr()
	subject := "checking push permission for " + ref.Context().Name()
	target := c.Reference(ref, true)
	_, err := retry(ctx, c.opts.Log, subject, c.opts.PushRetry, c.opts.RetryDelay, func() (struct{}, error) {
		return struct{}{}, remote.CheckPushPermission(target, c.keychain, c.transport(registry, true))
	})
	return c.explain(subject, registry, false, err)
}
