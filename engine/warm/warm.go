// Package warm fills a --cache-dir with base images ahead of builds, as
// kaniko's warmer does: the images named with --image, or the FROM images
// of the stages a Dockerfile needs with its build args.
package warm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-build/slipway/engine/cache"
	"github.com/slipway-build/slipway/engine/dockerfile"
	"github.com/slipway-build/slipway/engine/flagvalue"
	"github.com/slipway-build/slipway/engine/registry"
)

// Options are slipway-warm's flags.
type Options struct {
	Images     []string // --image
	Dockerfile string   // --dockerfile; empty means none
	BuildArgs  []string // --build-arg NAME=value, or NAME from the environment
	Target     string   // --target, for --dockerfile
	CacheDir   string   // --cache-dir
	CacheTTL   time.Duration
	Force      bool   // --force: pull again even when cached
	Platform   string // --custom-platform os/arch[/variant]
	Registry   registry.Options
	Log        *slog.Logger
}

// Image is one image to warm, for one platform.
type Image struct {
	Ref      string
	Platform v1.Platform
}

// Warm caches every image Options name, and fails if any could not be.
func Warm(ctx context.Context, opts Options) error {
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	if opts.CacheDir == "" {
		return fmt.Errorf("no --cache-dir given: name the directory to keep images in")
	}
	if err := opts.Registry.Validate(); err != nil {
		return err
	}
	platform, err := flagvalue.Platform(opts.Platform)
	if err != nil {
		return err
	}
	var images []Image
	for _, ref := range opts.Images {
		images = append(images, Image{Ref: ref, Platform: platform})
	}
	if opts.Dockerfile != "" {
		args, err := flagvalue.BuildArgs(opts.BuildArgs, os.LookupEnv)
		if err != nil {
			return err
		}
		found, err := DockerfileImages(opts.Dockerfile, args, opts.Target, platform)
		if err != nil {
			return err
		}
		images = append(images, found...)
	}
	if len(images) == 0 {
		return fmt.Errorf("nothing to warm: give --image or --dockerfile")
	}
	layout := cache.NewLayoutCache(opts.CacheDir, opts.CacheTTL, cache.WithLayoutLogger(log))
	client := registry.New(opts.Registry)
	// One image that cannot be fetched does not keep the others out of
	// the cache, but the step still fails: a build would miss it too.
	var errs []error
	for _, img := range dedupe(images) {
		if err := warmOne(ctx, layout, client, img, opts.Force, log); err != nil {
			log.Error("Could not cache image", "image", img.Ref, "error", err.Error())
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func warmOne(ctx context.Context, layout *cache.LayoutCache, client *registry.Client, want Image, force bool, log *slog.Logger) error {
	if !force {
		img, ok, err := layout.Get(want.Ref, want.Platform)
		if err != nil {
			return err
		}
		if ok {
			// Get checks sizes only; a warmer can afford to read every
			// layer, so that builds meet no corrupt blob later.
			if err := cache.Verify(img); err != nil {
				log.Warn("Cached image is corrupt; pulling it again", "image", want.Ref, "error", err.Error())
			} else {
				log.Info(fmt.Sprintf("Image %s is already cached in %s; skipping it (--force pulls it again)", want.Ref, layout.Dir()))
				return nil
			}
		}
	}
	img, err := client.Pull(ctx, want.Ref, want.Platform)
	if err != nil {
		return err
	}
	if err := layout.Put(ctx, want.Ref, img); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	log.Info(fmt.Sprintf("Cached image %s (%s) in %s", want.Ref, digest, layout.Dir()))
	return nil
}

// DockerfileImages returns the images the stages needed for target start
// from or read with COPY --from and RUN --mount from=, with the platform
// each is pulled for; scratch and stage references are left out.
func DockerfileImages(path string, buildArgs map[string]string, target string, platform v1.Platform) ([]Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading --dockerfile: %w", err)
	}
	defer f.Close()
	df, err := dockerfile.Parse(f, path)
	if err != nil {
		return nil, err
	}
	planOpts := dockerfile.PlanOptions{BuildArgs: buildArgs, Target: target}
	if platform.OS != "" {
		planOpts.TargetPlatform.OS = platform.OS
		planOpts.TargetPlatform.Architecture = platform.Architecture
		planOpts.TargetPlatform.Variant = platform.Variant
	}
	plan, err := df.Plan(planOpts)
	if err != nil {
		return nil, err
	}
	var out []Image
	for _, st := range plan.Stages {
		p := platform
		if st.Platform != nil {
			p = v1.Platform{OS: st.Platform.OS, Architecture: st.Platform.Architecture, Variant: st.Platform.Variant}
		}
		if st.BaseStage < 0 && st.Base != dockerfile.Scratch {
			out = append(out, Image{Ref: st.Base, Platform: p})
		}
		for _, ref := range st.Images {
			out = append(out, Image{Ref: ref, Platform: p})
		}
	}
	return out, nil
}

func dedupe(images []Image) []Image {
	var out []Image
	for _, img := range images {
		if !slices.ContainsFunc(out, func(o Image) bool { return o.Ref == img.Ref && o.Platform.Equals(img.Platform) }) {
			out = append(out, img)
		}
	}
	return out
}
