// Package job is the whole slipway-build job, as one call: fetch the build
// context, build the Dockerfile, publish the image. The step binary only
// turns kaniko's flags into a Config.
package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

	"github.com/slipway-build/slipway/engine/build"
	"github.com/slipway-build/slipway/engine/buildcontext"
	"github.com/slipway-build/slipway/engine/cache"
	"github.com/slipway-build/slipway/engine/flagvalue"
	"github.com/slipway-build/slipway/engine/publish"
	"github.com/slipway-build/slipway/engine/registry"
	"github.com/slipway-build/slipway/engine/run"
)

// Config is everything a slipway-build run is told.
type Config struct {
	Context        string
	ContextSubPath string
	Git            string
	Dockerfile     string
	// BuildArgs are "NAME=value", or "NAME" to take the value from the
	// environment, as kaniko's --build-arg.
	BuildArgs        []string
	Target           string
	Labels           []string
	CustomPlatform   string
	SkipUnusedStages bool
	// Secrets are "id=NAME,src=FILE" or "id=NAME,env=VAR".
	Secrets []string

	Publish  publish.Options
	Registry registry.Options

	// Cache turns on the registry layer cache in CacheRepo (default
	// <first destination>/cache), entries older than CacheTTL missing.
	Cache           bool
	CacheRepo       string
	CacheTTL        time.Duration
	CacheRunLayers  bool
	CacheCopyLayers bool
	NoPushCache     bool

	Reproducible     bool
	SingleSnapshot   bool
	Snapshotter      string
	Compression      string
	CompressionLevel int

	// Mode is "chroot" or "in-place"; the executor image presets it.
	Mode        string
	WorkDir     string
	CacheDir    string
	IgnorePaths []string
	Stdin       io.Reader
	Log         *slog.Logger
	// Output receives RUN commands' output.
	Output io.Writer
}

// Run builds and publishes, returning the image digest. On any error no
// digest file is written and nothing is pushed that was not complete.
func Run(ctx context.Context, cfg Config) (v1.Hash, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if err := cfg.Registry.Validate(); err != nil {
		return v1.Hash{}, err
	}
	buildArgs, err := flagvalue.BuildArgs(cfg.BuildArgs, os.LookupEnv)
	if err != nil {
		return v1.Hash{}, err
	}
	labels, err := flagvalue.Pairs("--label", "key=value", cfg.Labels, false)
	if err != nil {
		return v1.Hash{}, err
	}
	secrets, err := ParseSecrets(cfg.Secrets)
	if err != nil {
		return v1.Hash{}, err
	}
	platform, err := flagvalue.Platform(cfg.CustomPlatform)
	if err != nil {
		return v1.Hash{}, err
	}
	epoch, err := buildEpoch(cfg.Reproducible)
	if err != nil {
		return v1.Hash{}, err
	}
	mode := run.Mode(cfg.Mode)
	if mode == "" {
		mode = run.Chroot
	}
	if mode != run.Chroot && mode != run.InPlace {
		return v1.Hash{}, fmt.Errorf("unknown --mode %q: use chroot or in-place", cfg.Mode)
	}
	if len(cfg.Publish.Destinations) == 0 && !cfg.Publish.NoPush {
		return v1.Hash{}, errors.New("no --destination given: name where to push the image, or pass --no-push")
	}
	workDir, err := makeWorkDir(cfg.WorkDir)
	if err != nil {
		return v1.Hash{}, err
	}
	defer os.RemoveAll(workDir)

	client := registry.New(cfg.Registry)
	if !cfg.Publish.NoPush && !cfg.Publish.SkipPushPermissionCheck {
		// Fail before a long build when the credentials cannot push.
		tags, err := tagsOf(cfg.Publish.Destinations)
		if err != nil {
			return v1.Hash{}, err
		}
		if err := publish.CheckPushPermissions(ctx, client, tags); err != nil {
			return v1.Hash{}, err
		}
	}

	contextURL := cfg.Context
	if contextURL == "" {
		contextURL = "/workspace/"
	}
	gitOpts, err := buildcontext.ParseGitOptions(cfg.Git)
	if err != nil {
		return v1.Hash{}, err
	}
	contextDir, cleanup, err := buildcontext.Prepare(ctx, contextURL, workDir, buildcontext.Options{
		SubPath: cfg.ContextSubPath,
		Git:     gitOpts,
		Stdin:   cfg.Stdin,
	})
	if err != nil {
		return v1.Hash{}, err
	}
	defer cleanup()

	// The executor's scratch files live in the work directory, which
	// snapshots never see.
	executor, err := run.New(mode, run.WithLogger(cfg.Log), run.WithStateDir(workDir))
	if err != nil {
		return v1.Hash{}, err
	}
	images := build.ImageSource(client)
	if _, err := os.Stat(filepath.Join(cfg.CacheDir, "index.json")); err == nil {
		// Base images a warmer (slipway-warm) stored in --cache-dir are
		// read from there before the registry.
		images = cache.CachedSource{Cache: cache.NewLayoutCache(cfg.CacheDir, cfg.CacheTTL, cache.WithLayoutLogger(cfg.Log)), Upstream: client}
	}
	layerCache := ""
	if fi, err := os.Stat(cfg.CacheDir); err == nil && fi.IsDir() {
		// A cache directory that exists (a Tekton workspace, a PVC) also
		// keeps extracted layers, where it is writable.
		if dir := filepath.Join(cfg.CacheDir, "layers"); os.MkdirAll(dir, 0o755) == nil {
			layerCache = dir
		}
	}
	var store cache.Store
	var cacheWrites errgroup.Group
	if cfg.Cache {
		repo := cfg.CacheRepo
		if repo == "" {
			if len(cfg.Publish.Destinations) == 0 {
				return v1.Hash{}, errors.New("--cache needs --cache-repo, or a --destination to derive <destination>/cache from")
			}
			if repo, err = cache.DefaultRepo(cfg.Publish.Destinations[0]); err != nil {
				return v1.Hash{}, err
			}
		}
		if strings.HasPrefix(repo, "oci:") {
			return v1.Hash{}, fmt.Errorf("--cache-repo %s: an OCI layout as the layer cache is not supported; name a registry repository", repo)
		}
		cfg.Log.Info("Using the layer cache in " + repo)
		storeOpts := []cache.RegistryOption{cache.WithLogger(cfg.Log)}
		if len(cfg.Publish.Destinations) > 0 {
			if tags, err := tagsOf(cfg.Publish.Destinations[:1]); err == nil {
				// Layers already pushed to the destination are mounted
				// into the cache rather than uploaded twice.
				storeOpts = append(storeOpts, cache.WithMountFrom(tags[0].Context().Name()))
			}
		}
		store = cache.NewRegistryStore(repo, client, cfg.CacheTTL, storeOpts...)
	}
	started := time.Now()
	img, err := build.Build(ctx, build.Options{
		Cache:            store,
		CacheRunLayers:   cfg.CacheRunLayers,
		CacheCopyLayers:  cfg.CacheCopyLayers,
		NoPushCache:      cfg.NoPushCache,
		CacheWrites:      &cacheWrites,
		LayerCacheDir:    layerCache,
		ContextDir:       contextDir,
		Dockerfile:       dockerfilePath(cfg.Dockerfile, contextDir),
		BuildArgs:        buildArgs,
		Target:           cfg.Target,
		Platform:         platform,
		Labels:           labels,
		Epoch:            epoch,
		Compression:      cfg.Compression,
		CompressionLevel: cfg.CompressionLevel,
		WorkDir:          workDir,
		Images:           images,
		Executor:         executor,
		Mode:             mode,
		IgnorePaths:      cfg.IgnorePaths,
		Secrets:          secrets,
		CacheDir:         cfg.CacheDir,
		SkipUnusedStages: &cfg.SkipUnusedStages,
		SingleSnapshot:   cfg.SingleSnapshot,
		Snapshotter:      cfg.Snapshotter,
		Log:              cfg.Log,
		Output:           cfg.Output,
	})
	if err != nil {
		return v1.Hash{}, err
	}
	cfg.Log.Info(fmt.Sprintf("Built image in %s", time.Since(started).Round(time.Millisecond)))
	digest, err := publish.Publish(ctx, img, client, cfg.Publish)
	// The cache writes ran beside the build and the push; their layers
	// live in the work directory, removed on return.
	_ = cacheWrites.Wait()
	if err != nil {
		return v1.Hash{}, err
	}
	return digest, nil
}

// dockerfilePath resolves --dockerfile as kaniko does: as given when it
// exists, else relative to the context.
func dockerfilePath(p, contextDir string) string {
	if p == "" {
		return filepath.Join(contextDir, "Dockerfile")
	}
	if filepath.IsAbs(p) {
		return p
	}
	if _, err := os.Stat(p); err == nil {
		abs, _ := filepath.Abs(p)
		return abs
	}
	return filepath.Join(contextDir, p)
}

func makeWorkDir(dir string) (string, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("--work-dir %s: %w", dir, err)
	}
	w, err := os.MkdirTemp(dir, "slipway-")
	if err != nil {
		return "", fmt.Errorf("--work-dir %s: %w", dir, err)
	}
	return w, nil
}

func tagsOf(dests []string) ([]name.Tag, error) {
	var tags []name.Tag
	for _, d := range dests {
		t, err := name.NewTag(d, name.WeakValidation)
		if err != nil {
			return nil, fmt.Errorf("--destination %s: %w", d, err)
		}
		tags = append(tags, t)
	}
	return tags, nil
}

// buildEpoch is the time a reproducible build stamps everywhere:
// SOURCE_DATE_EPOCH when set, else the Unix epoch with --reproducible.
func buildEpoch(reproducible bool) (*time.Time, error) {
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", v)
		}
		t := time.Unix(sec, 0).UTC()
		return &t, nil
	}
	if reproducible {
		t := time.Unix(0, 0).UTC()
		return &t, nil
	}
	return nil, nil
}
