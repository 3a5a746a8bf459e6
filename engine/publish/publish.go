// Package publish is the Publisher: it sends a built image to every output
// the user asked for (registry destinations, a docker-loadable tarball, an
// OCI layout) and then writes the digest files CI systems read.
//
// Digest files are the signal that a build succeeded, so they are written
// last, only after every other output succeeded, each atomically. Local
// outputs are staged beside their final path and moved into place only
// after every push succeeded, so a failed publish leaves none of them.
package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/slipway-build/slipway/engine/registry"
)

// Options are kaniko's output flags.
type Options struct {
	Destinations []string // --destination, repeatable; every one is pushed
	NoPush       bool     // --no-push
	TarPath      string   // --tar-path: docker-loadable tarball tagged with the destinations
	// OCILayoutPath (--oci-layout-path) receives an OCI image layout whose
	// index holds this image.
	OCILayoutPath string
	// DigestFile holds the digest ("sha256:…") with no newline;
	// ImageNameWithDigestFile one "repo@digest" line per destination;
	// ImageNameTagWithDigestFile one "repo:tag@digest" line per destination.
	DigestFile, ImageNameWithDigestFile, ImageNameTagWithDigestFile string
	// ImageURLFile receives the first destination without its digest, and
	// ImagesFile every pushed repository as repo@digest, once each,
	// comma-separated (nothing under NoPush): the Tekton Chains results
	// IMAGE_URL and IMAGES. Neither ends in a newline.
	ImageURLFile, ImagesFile string
	// ArtifactOutputsFile receives the first destination and the digest as
	// the JSON object {"uri", "digest", "isBuildArtifact"}: Chains' newer
	// ARTIFACT_OUTPUTS type hint. Under NoPush it is not written, since
	// there is no artifact, and an empty object result would fail the
	// TaskRun.
	ArtifactOutputsFile string
	// SkipPushPermissionCheck makes Check pass without asking the
	// registries.
	SkipPushPermissionCheck bool
	// Log receives progress; nil means slog.Default().
	Log *slog.Logger
	// IgnoreImmutableTagErrors (--push-ignore-immutable-tag-errors) takes
	// a push refused because the tag is immutable as a success, as kaniko
	// does: parallel builds of one tag then all succeed.
	IgnoreImmutableTagErrors bool
	// AfterPush runs once every push has succeeded (with pushed empty under
	// --no-push), before the digest files are put in place: an error there
	// (an SBOM that could not be attached) fails the build like a failed
	// push, leaving no digest file.
	AfterPush func(ctx context.Context, pushed []name.Digest) error
}

// dummyDestination names the image in a tarball when --no-push is given
// without a destination, as kaniko does.
const dummyDestination = "docker.io/unset-repo/unset-image-name"

// Check refuses, before a build, outputs that cannot work: destinations
// that are not image names, or (unless SkipPushPermissionCheck) that the
// credentials cannot push to. Publish does not check again: a refused push
// fails it all the same, and leaves nothing behind.
func Check(ctx context.Context, c *registry.Client, opts Options) error {
	tags, err := Tags(opts)
	if err != nil || opts.NoPush || opts.SkipPushPermissionCheck {
		return err
	}
	return checkPushPermissions(ctx, c, tags)
}

// artifact is what is published: one image, or a multi-platform index.
type artifact interface {
	Digest() (v1.Hash, error)
	push(ctx context.Context, c *registry.Client, tag name.Tag) error
	appendTo(p layout.Path) error
}

type imageArtifact struct{ v1.Image }

func (a imageArtifact) push(ctx context.Context, c *registry.Client, tag name.Tag) error {
	_, err := c.Push(ctx, a.Image, tag)
	return err
}

func (a imageArtifact) appendTo(p layout.Path) error { return p.AppendImage(a.Image) }

type indexArtifact struct{ v1.ImageIndex }

func (a indexArtifact) push(ctx context.Context, c *registry.Client, tag name.Tag) error {
	_, err := c.PushIndex(ctx, a.ImageIndex, tag)
	return err
}

func (a indexArtifact) appendTo(p layout.Path) error { return p.AppendIndex(a.ImageIndex) }

// Publish writes img to every output in opts and returns its digest.
func Publish(ctx context.Context, img v1.Image, c *registry.Client, opts Options) (v1.Hash, error) {
	return publish(ctx, imageArtifact{img}, c, opts)
}

// PublishIndex writes a multi-platform index, with its images, to every
// output in opts and returns the index's digest; the digest and result
// files name the index. A docker tarball cannot hold an index, so
// opts.TarPath is refused.
func PublishIndex(ctx context.Context, idx v1.ImageIndex, c *registry.Client, opts Options) (v1.Hash, error) {
	if opts.TarPath != "" {
		return v1.Hash{}, errors.New("--tar-path: a docker-loadable tarball cannot hold a multi-platform index; use --oci-layout-path")
	}
	return publish(ctx, indexArtifact{idx}, c, opts)
}

func publish(ctx context.Context, art artifact, c *registry.Client, opts Options) (v1.Hash, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	digest, err := art.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("computing the image digest: %w", err)
	}
	tags, err := Tags(opts)
	if err != nil {
		return v1.Hash{}, err
	}

	var staged []*stagedPath
	defer func() {
		for _, s := range staged {
			s.discard()
		}
	}()
	if opts.OCILayoutPath != "" {
		s, err := stageOCILayout(opts.Log, art, opts.OCILayoutPath)
		if err != nil {
			return v1.Hash{}, err
		}
		staged = append(staged, s)
	}
	if img, ok := art.(imageArtifact); ok && opts.TarPath != "" {
		s, err := stageTarball(opts.Log, img.Image, tags, opts.TarPath)
		if err != nil {
			return v1.Hash{}, err
		}
		staged = append(staged, s)
	}

	// The digest and result files are staged before the push, so that a
	// results directory that cannot be written fails the build before
	// anything is pushed.
	//
	// kaniko lists its placeholder name here when there is no destination;
	// naming an image that exists nowhere would mislead, so the
	// name files then stay empty.
	named := tags
	if len(opts.Destinations) == 0 {
		named = nil
	}
	files := digestFiles(opts, named, digest)
	for _, f := range files {
		s, err := stageFile(f.path, f.content)
		if err != nil {
			return v1.Hash{}, fmt.Errorf("writing %s: %w", f.flag, err)
		}
		staged = append(staged, s)
	}

	var pushed []name.Digest
	if opts.NoPush {
		opts.Log.Info("Skipping push to container registry due to --no-push flag")
	} else {
		for _, tag := range tags {
			if err := art.push(ctx, c, tag); err != nil {
				if opts.IgnoreImmutableTagErrors && registry.IsImmutableTagError(err) {
					opts.Log.Info(fmt.Sprintf("Immutable tag error ignored for %s@%s (--push-ignore-immutable-tag-errors)", tag, digest))
					continue
				}
				return v1.Hash{}, err
			}
			pushed = append(pushed, tag.Context().Digest(digest.String()))
		}
	}
	if opts.AfterPush != nil {
		if err := opts.AfterPush(ctx, pushed); err != nil {
			return v1.Hash{}, err
		}
	}
	if err := commit(staged); err != nil {
		return v1.Hash{}, err
	}
	staged = nil
	return digest, nil
}

// checkPushPermissions fails when the credentials cannot push to one of
// the destination repositories. Each repository is checked once.
func checkPushPermissions(ctx context.Context, c *registry.Client, tags []name.Tag) error {
	checked := map[string]bool{}
	for _, tag := range tags {
		repo := tag.Context().String()
		if checked[repo] {
			continue
		}
		if err := c.CheckPushPermission(ctx, tag); err != nil {
			return err
		}
		checked[repo] = true
	}
	return nil
}

// Tags parses the destinations: the one parser of --destination. Without
// one, --no-push is needed, and a --tar-path names its image as kaniko
// does.
func Tags(opts Options) ([]name.Tag, error) {
	dests := opts.Destinations
	if len(dests) == 0 {
		if !opts.NoPush {
			return nil, errors.New("no --destination given: name where to push the image, or pass --no-push")
		}
		if opts.TarPath != "" {
			dests = []string{dummyDestination}
		}
	}
	var tags []name.Tag
	for _, d := range dests {
		tag, err := name.NewTag(d, name.WeakValidation)
		if err != nil {
			return nil, fmt.Errorf("--destination %q is not a valid image name: %w: use registry/repository[:tag]", d, err)
		}
		tags = append(tags, tag)
	}
	return tags, nil
}

type digestFile struct{ flag, path, content string }

// digestFiles renders kaniko's formats (the bare digest without a
// newline, and one "name@digest" or "name:tag@digest" line per
// destination) and Tekton's results. They are all written, or none.
func digestFiles(opts Options, tags []name.Tag, digest v1.Hash) []digestFile {
	var files []digestFile
	if opts.DigestFile != "" {
		files = append(files, digestFile{"--digest-file", opts.DigestFile, digest.String()})
	}
	if opts.ImageURLFile != "" && len(tags) > 0 {
		files = append(files, digestFile{"--image-url-file", opts.ImageURLFile, tags[0].Name()})
	}
	if opts.ImagesFile != "" {
		var refs []string
		for _, tag := range tags {
			if ref := tag.Context().Name() + "@" + digest.String(); !opts.NoPush && !slices.Contains(refs, ref) {
				refs = append(refs, ref)
			}
		}
		files = append(files, digestFile{"--images-file", opts.ImagesFile, strings.Join(refs, ",")})
	}
	if opts.ArtifactOutputsFile != "" && !opts.NoPush && len(tags) > 0 {
		out, _ := json.Marshal(map[string]string{"uri": tags[0].Name(), "digest": digest.String(), "isBuildArtifact": "true"})
		files = append(files, digestFile{"--artifact-outputs-file", opts.ArtifactOutputsFile, string(out)})
	}
	if opts.ImageNameWithDigestFile != "" || opts.ImageNameTagWithDigestFile != "" {
		var withDigest, withTag strings.Builder
		for _, tag := range tags {
			fmt.Fprintf(&withDigest, "%s@%s\n", tag.Context().Name(), digest)
			fmt.Fprintf(&withTag, "%s:%s@%s\n", tag.Context().Name(), tag.TagStr(), digest)
		}
		if opts.ImageNameWithDigestFile != "" {
			files = append(files, digestFile{"--image-name-with-digest-file", opts.ImageNameWithDigestFile, withDigest.String()})
		}
		if opts.ImageNameTagWithDigestFile != "" {
			files = append(files, digestFile{"--image-name-tag-with-digest-file", opts.ImageNameTagWithDigestFile, withTag.String()})
		}
	}
	return files
}

// stagedPath is an output written beside its final path, to be renamed
// into place or discarded.
type stagedPath struct {
	tmp, final string
	// existingLayout is set when final is an OCI layout that already
	// existed; it is updated in place at commit instead of being replaced.
	existingLayout artifact
}

func (s *stagedPath) discard() {
	if s.tmp != "" {
		_ = os.RemoveAll(s.tmp)
	}
}

func commit(staged []*stagedPath) error {
	var done []*stagedPath
	for _, s := range staged {
		if s.existingLayout != nil {
			if err := writeLayout(s.final, s.existingLayout); err != nil {
				return err
			}
			continue
		}
		if err := os.Rename(s.tmp, s.final); err != nil {
			// Leave no digest file behind when a later one cannot be placed.
			for _, d := range done {
				_ = os.RemoveAll(d.final)
			}
			return fmt.Errorf("moving %s into place: %w", s.final, err)
		}
		s.tmp = ""
		done = append(done, s)
	}
	return nil
}

// stageFile writes content to a temporary file in path's directory, created
// as kaniko does when missing, so the final rename is atomic.
func stageFile(path, content string) (*stagedPath, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, err
	}
	s := &stagedPath{tmp: f.Name(), final: path}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		s.discard()
		return nil, err
	}
	if err := f.Close(); err != nil {
		s.discard()
		return nil, err
	}
	if err := os.Chmod(s.tmp, 0o644); err != nil {
		s.discard()
		return nil, err
	}
	return s, nil
}

func stageTarball(log *slog.Logger, img v1.Image, tags []name.Tag, path string) (*stagedPath, error) {
	s, err := stageFile(path, "")
	if err != nil {
		return nil, fmt.Errorf("--tar-path %s: %w", path, err)
	}
	refs := map[name.Reference]v1.Image{}
	for _, tag := range tags {
		refs[tag] = img
	}
	log.Info("Writing image tarball to " + path)
	if err := tarball.MultiRefWriteToFile(s.tmp, refs); err != nil {
		s.discard()
		return nil, fmt.Errorf("--tar-path %s: writing the tarball: %w", path, err)
	}
	return s, nil
}

// stageOCILayout writes a fresh layout beside path. An existing layout is
// rewritten in place at commit, its index then holding only this image, as
// kaniko does; any other non-empty path is refused rather than overwritten.
func stageOCILayout(log *slog.Logger, img artifact, path string) (*stagedPath, error) {
	entries, err := os.ReadDir(path)
	switch {
	case err == nil && len(entries) > 0:
		if _, err := os.Stat(filepath.Join(path, "oci-layout")); err != nil {
			return nil, fmt.Errorf("--oci-layout-path %s exists and is not an OCI layout: give an empty or new directory", path)
		}
		return &stagedPath{final: path, existingLayout: img}, nil
	case err == nil:
		// An empty directory is replaced by the staged one.
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("--oci-layout-path %s: %w", path, err)
		}
	case !os.IsNotExist(err):
		return nil, fmt.Errorf("--oci-layout-path %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("--oci-layout-path %s: %w", path, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("--oci-layout-path %s: %w", path, err)
	}
	s := &stagedPath{tmp: tmp, final: path}
	log.Info("Writing OCI layout to " + path)
	if err := writeLayout(tmp, img); err != nil {
		s.discard()
		return nil, err
	}
	return s, nil
}

// writeLayout makes dir's index hold img alone, keeping blobs already there.
func writeLayout(dir string, img artifact) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("--oci-layout-path: creating layout in %s: %w", dir, err)
	}
	if err := img.appendTo(p); err != nil {
		return fmt.Errorf("--oci-layout-path: writing image to %s: %w", dir, err)
	}
	return nil
}
