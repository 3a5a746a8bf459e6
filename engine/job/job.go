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
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"golang.org/x/sync/errgroup"

	"github.com/slipway-build/slipway/engine/build"
	"github.com/slipway-build/slipway/engine/buildcontext"
	"github.com/slipway-build/slipway/engine/cache"
	"github.com/slipway-build/slipway/engine/extracted"
	"github.com/slipway-build/slipway/engine/flagvalue"
	"github.com/slipway-build/slipway/engine/layer"
	"github.com/slipway-build/slipway/engine/layertoc"
	"github.com/slipway-build/slipway/engine/phase"
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
	BuildArgs []string
	// Target is the stage to build and publish; ExtraTargets are built as
	// well, and checked, but not published (the kaniko fork's --target
	// given more than once).
	Target           string
	ExtraTargets     []string
	Labels           []string
	CustomPlatform   string
	SkipUnusedStages bool
	// Secrets are "id=NAME,src=FILE" or "id=NAME,env=VAR".
	Secrets []string

	// Annotations are "key=value" manifest annotations (--annotation).
	Annotations []string
	// ImageFormat is "oci" or "docker" to force the manifest and layer
	// media types; empty keeps the base image's.
	ImageFormat string
	// DryRun fetches the context and prints the build plan, building and
	// pushing nothing (--dryrun).
	DryRun bool

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
	// In-place mode is refused outside a container unless Force is set
	// (kaniko's --force).
	Mode  string
	Force bool
	// DiskSync lets RUN commands' fsync and the other disk-sync calls
	// wait for the disk (run.WithDiskSync).
	DiskSync bool
	WorkDir  string
	CacheDir string
	// CacheDirMaxSize bounds the extracted layers kept in CacheDir, in
	// bytes; the least recently used go first. Zero keeps none.
	CacheDirMaxSize int64
	IgnorePaths     []string
	Stdin           io.Reader

	// SBOM attaches an SPDX 2.3 SBOM of the image to every destination as
	// an OCI referrer, and SBOMPath (also without SBOM) writes it to a
	// file. Provenance attaches a SLSA v1 provenance statement.
	// AttestationsFile receives the references of everything attached,
	// comma-separated (the Tekton result ATTESTATIONS).
	SBOM             bool
	SBOMPath         string
	Provenance       bool
	AttestationsFile string

	Log *slog.Logger
	// Output receives RUN commands' output.
	Output io.Writer
}

// Run builds and publishes, returning the image digest. On any error no
// digest file is written and nothing is pushed that was not complete.
func Run(ctx context.Context, cfg Config) (v1.Hash, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	cfg.Registry.Log, cfg.Publish.Log = cfg.Log, cfg.Log
	if err := cfg.Registry.Validate(); err != nil {
		return v1.Hash{}, err
	}
	in, err := parseInputs(cfg)
	if err != nil {
		return v1.Hash{}, err
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = defaultCacheDir(in.mode)
	}
	if in.mode == run.InPlace {
		// Before the first write, even the work directory's.
		if err := run.ThisHost().CheckContainer(cfg.Force); err != nil {
			return v1.Hash{}, err
		}
	}
	if cfg.DryRun {
		cfg.Publish.NoPush = true
	}
	// Where the time went, for --verbosity debug and the benchmarks.
	phases, stopPhases := phase.Record()
	defer stopPhases()
	client := registry.New(cfg.Registry)
	// A destination that is not an image name fails at once, and one the
	// credentials cannot push to fails the build early: the registries are
	// asked while the build starts (the work tree, the context, the base
	// image), a refusal stops it, and nothing is published before their
	// answer. The refusal is the error reported.
	if _, err := publish.Tags(cfg.Publish); err != nil {
		return v1.Hash{}, err
	}
	ctx, refuse := context.WithCancelCause(ctx)
	defer refuse(nil)
	var permission errgroup.Group
	permission.Go(func() error {
		err := publish.Check(ctx, client, cfg.Publish)
		if err != nil {
			refuse(err)
		}
		return err
	})
	digest, err := buildAndPublish(ctx, cfg, in, client, &permission)
	if perr := permission.Wait(); perr != nil {
		return v1.Hash{}, perr
	}
	if err != nil {
		return v1.Hash{}, err
	}
	cfg.Log.Debug("Seconds per phase (overlapping phases count in full)", phases.Attrs()...)
	return digest, nil
}

// buildAndPublish is Run once the inputs are checked: it builds, and
// publishes once permission (the push permission check) has passed.
func buildAndPublish(ctx context.Context, cfg Config, in inputs, client *registry.Client, permission *errgroup.Group) (v1.Hash, error) {
	tree, err := makeWorkTree(cfg.WorkDir, cfg.Log)
	if err != nil {
		return v1.Hash{}, err
	}
	defer tree.Remove()
	workDir := tree.dir

	store, tocs, err := layerCacheStore(cfg, client)
	if err != nil {
		return v1.Hash{}, err
	}
	contextDir, cleanup, err := fetchContext(ctx, cfg, workDir)
	if err != nil {
		return v1.Hash{}, err
	}
	defer cleanup()

	// The executor's scratch files live in the work directory, which
	// snapshots never see.
	runOpts := []run.Option{run.WithLogger(cfg.Log), run.WithStateDir(workDir)}
	if cfg.Force {
		runOpts = append(runOpts, run.WithForce())
	}
	if cfg.DiskSync {
		runOpts = append(runOpts, run.WithDiskSync())
	}
	executor, err := run.New(in.mode, runOpts...)
	if err != nil {
		return v1.Hash{}, err
	}
	layersDir := extractedLayerDir(cfg.CacheDir, in.mode, cfg.Log)
	if layersDir != "" {
		// Bounded after the build, whatever its outcome.
		defer func() {
			if err := extracted.Dir(layersDir).Evict(cfg.CacheDirMaxSize); err != nil {
				cfg.Log.Warn("Could not trim the layer cache in --cache-dir", "dir", layersDir, "error", err.Error())
			}
		}()
	}
	var cacheWrites errgroup.Group
	sources := &recordingSource{ImageSource: imageSource(cfg, client), pulled: map[string]bool{}}
	started := time.Now()
	buildOpts := build.Options{
		Inputs: build.Inputs{
			ContextDir: contextDir,
			Dockerfile: cfg.Dockerfile,
			BuildArgs:  in.buildArgs,
			Target:     cfg.Target,
			Platform:   in.platform,
			Labels:     in.labels,
			Secrets:    in.secrets,
		},
		Collaborators: build.Collaborators{
			Images:            sources,
			Executor:          executor,
			Mode:              in.mode,
			LayerCache:        store,
			CacheWrites:       &cacheWrites,
			TOCs:              tocs,
			LayerBlobs:        client,
			WorkDir:           workDir,
			ExtractedLayerDir: layersDir,
			CacheMountDir:     cfg.CacheDir,
			Log:               cfg.Log,
			Output:            cfg.Output,
		},
		Policy: build.Policy{
			Epoch:            in.epoch,
			Compression:      layer.Compression(cfg.Compression),
			CompressionLevel: cfg.CompressionLevel,
			IgnorePaths:      cfg.IgnorePaths,
			Snapshotter:      build.Snapshotter(cfg.Snapshotter),
			SingleSnapshot:   cfg.SingleSnapshot,
			CacheRunLayers:   cfg.CacheRunLayers,
			CacheCopyLayers:  cfg.CacheCopyLayers,
			NoPushCache:      cfg.NoPushCache,
			SkipUnusedStages: &cfg.SkipUnusedStages,
		},
	}
	if cfg.DryRun {
		plan, err := build.Plan(buildOpts)
		if err != nil {
			return v1.Hash{}, err
		}
		printPlan(cfg.Output, plan)
		return v1.Hash{}, nil
	}
	// The image's layers go up while the build runs; the push at the end
	// writes what is left, then the manifest and the tag.
	uploads, err := publish.NewUploader(ctx, client, cfg.Publish)
	if err != nil {
		return v1.Hash{}, err
	}
	defer uploads.Stop()
	if uploads != nil {
		buildOpts.Uploads = uploads
	}
	img, err := build.Build(ctx, buildOpts)
	if err != nil {
		return v1.Hash{}, err
	}
	for _, target := range cfg.ExtraTargets {
		extra := buildOpts
		extra.Target = target
		extra.Uploads = nil
		cfg.Log.Info("Building the extra --target " + target)
		if _, err := build.Build(ctx, extra); err != nil {
			return v1.Hash{}, fmt.Errorf("--target %s: %w", target, err)
		}
	}
	cfg.Log.Info(fmt.Sprintf("Built image in %s", time.Since(started).Round(time.Millisecond)))
	if img, err = withFormat(img, cfg.ImageFormat); err != nil {
		return v1.Hash{}, err
	}
	if len(in.annotations) > 0 {
		img = mutate.Annotations(img, in.annotations).(v1.Image)
	}
	if cfg.SBOM || cfg.SBOMPath != "" || cfg.Provenance || cfg.AttestationsFile != "" {
		a := &attestations{cfg: cfg, client: client, img: img, dockerfile: resolveDockerfile(cfg.Dockerfile, contextDir),
			contextDir: contextDir, workDir: workDir, started: started, sources: sources}
		cfg.Publish.AfterPush = a.afterPush
	}
	uploads.UploadConfig(img)
	if err := permission.Wait(); err != nil {
		return v1.Hash{}, err
	}
	uploads.Wait()
	digest, err := publish.Publish(ctx, img, client, cfg.Publish)
	// The cache writes ran beside the build and the push; their layers
	// live in the work directory, removed on return.
	_ = cacheWrites.Wait()
	tocs.Wait()
	return digest, err
}

// inputs are the Config's flag values, parsed.
type inputs struct {
	buildArgs, labels map[string]string
	annotations       map[string]string
	secrets           map[string]build.Secret
	platform          v1.Platform
	epoch             *time.Time
	mode              run.Mode
}

func parseInputs(cfg Config) (in inputs, err error) {
	if in.buildArgs, err = flagvalue.BuildArgs(cfg.BuildArgs, os.LookupEnv); err != nil {
		return in, err
	}
	if in.labels, err = flagvalue.Pairs("--label", "key=value", cfg.Labels, false); err != nil {
		return in, err
	}
	if in.annotations, err = flagvalue.Pairs("--annotation", "key=value", cfg.Annotations, false); err != nil {
		return in, err
	}
	if err = checkImageFormat(cfg.ImageFormat, cfg.Compression); err != nil {
		return in, err
	}
	if in.secrets, err = ParseSecrets(cfg.Secrets); err != nil {
		return in, err
	}
	if in.platform, err = flagvalue.Platform(cfg.CustomPlatform); err != nil {
		return in, err
	}
	if in.epoch, err = buildEpoch(cfg.Reproducible); err != nil {
		return in, err
	}
	in.mode = run.Mode(cfg.Mode)
	if in.mode == "" {
		in.mode = run.Chroot
	}
	if in.mode != run.Chroot && in.mode != run.InPlace {
		return in, fmt.Errorf("unknown --mode %q: use chroot or in-place", cfg.Mode)
	}
	return in, nil
}

// fetchContext places the build context (--context, /workspace/ by
// default) under workDir.
func fetchContext(ctx context.Context, cfg Config, workDir string) (dir string, cleanup func(), err error) {
	contextURL := cfg.Context
	if contextURL == "" {
		contextURL = "/workspace/"
	}
	gitOpts, err := buildcontext.ParseGitOptions(cfg.Git)
	if err != nil {
		return "", nil, err
	}
	return buildcontext.Prepare(ctx, contextURL, workDir, buildcontext.Options{
		SubPath: cfg.ContextSubPath,
		Git:     gitOpts,
		Stdin:   cfg.Stdin,
	})
}

// imageSource pulls base images from the registries, or first from the
// base-image layout a warmer (slipway-warm) stored in --cache-dir.
// A directory kaniko's warmer filled (a tarball and a manifest per digest)
// is read as well.
func imageSource(cfg Config, client *registry.Client) build.ImageSource {
	var images build.ImageSource = client
	if _, err := os.Stat(filepath.Join(cfg.CacheDir, "index.json")); err == nil {
		images = cache.CachedSource{Cache: cache.NewLayoutCache(cfg.CacheDir, cfg.CacheTTL, cache.WithLayoutLogger(cfg.Log)), Upstream: client}
	}
	if cache.HasKanikoEntries(cfg.CacheDir) {
		images = cache.KanikoSource{Dir: cfg.CacheDir, TTL: cfg.CacheTTL, Upstream: images, Log: cfg.Log}
	}
	return images
}

// defaultCacheDir is --cache-dir when none is given: kaniko's /cache in
// in-place mode, where / is the container's; elsewhere the user's cache
// directory ($XDG_CACHE_HOME/slipway or ~/.cache/slipway), never a
// directory at the root of the machine.
func defaultCacheDir(mode run.Mode) string {
	if mode == run.InPlace {
		return "/cache"
	}
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "slipway")
	}
	return ""
}

// extractedLayerDir is where extracted layers are kept between builds:
// <--cache-dir>/layers. In in-place mode only a --cache-dir that exists (a
// mounted volume) is used, since a directory made in / would be
// snapshotted. A directory that cannot be made is one warning, and no
// layer is kept.
func extractedLayerDir(cacheDir string, mode run.Mode, log *slog.Logger) string {
	if cacheDir == "" {
		return ""
	}
	if mode == run.InPlace {
		if fi, err := os.Stat(cacheDir); err != nil || !fi.IsDir() {
			return ""
		}
	}
	dir := filepath.Join(cacheDir, "layers")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Warn("The layer cache in --cache-dir cannot be written; the build goes on without keeping layers", "dir", dir, "error", err.Error())
		return ""
	}
	return dir
}

// layerCacheStore is the registry layer cache (--cache, --cache-repo) and
// the layers' tables of contents kept beside it; nil when --cache is off.
func layerCacheStore(cfg Config, client *registry.Client) (cache.Store, *layertoc.Index, error) {
	if !cfg.Cache {
		return nil, nil, nil
	}
	var dest name.Tag
	if len(cfg.Publish.Destinations) > 0 {
		// Check has accepted every destination already.
		tags, err := publish.Tags(cfg.Publish)
		if err != nil {
			return nil, nil, err
		}
		dest = tags[0]
	}
	repo := cfg.CacheRepo
	if repo == "" {
		if len(cfg.Publish.Destinations) == 0 {
			return nil, nil, errors.New("--cache needs --cache-repo, or a --destination to derive <destination>/cache from")
		}
		var err error
		if repo, err = cache.DefaultRepo(cfg.Publish.Destinations[0]); err != nil {
			return nil, nil, err
		}
	}
	if strings.HasPrefix(repo, "oci:") {
		return nil, nil, fmt.Errorf("--cache-repo %s: an OCI layout as the layer cache is not supported; name a registry repository", repo)
	}
	cfg.Log.Info("Using the layer cache in " + repo)
	storeOpts := []cache.RegistryOption{cache.WithLogger(cfg.Log)}
	if len(cfg.Publish.Destinations) > 0 {
		// Layers already pushed to the destination are mounted into the
		// cache rather than uploaded twice.
		storeOpts = append(storeOpts, cache.WithMountFrom(dest.Context().Name()))
	}
	// eStargz base layers carry their tables: read by range, they spare
	// the first build from an eStargz base its download too.
	tocOpts := []layertoc.IndexOption{layertoc.CarriedTOCs(client)}
	if cfg.NoPushCache {
		tocOpts = append(tocOpts, layertoc.ReadOnly())
	}
	tocs := layertoc.NewIndex(layertoc.NewRegistryStore(repo, client), cfg.Log, tocOpts...)
	return cache.NewRegistryStore(repo, client, cfg.CacheTTL, storeOpts...), tocs, nil
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
