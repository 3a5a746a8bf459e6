// Command slipway-build builds a Dockerfile into an image and pushes it,
// taking kaniko's executor flags. Started as slipway-warm, slipway-index or
// one of the docker credential helpers it runs that program instead (see
// entryPoints): the executor image holds this one binary.
package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slipway-build/slipway/engine/flagvalue"
	"github.com/slipway-build/slipway/engine/job"
	"github.com/slipway-build/slipway/engine/publish"
	"github.com/slipway-build/slipway/engine/registry"
	"github.com/slipway-build/slipway/engine/registry/cloudauth"
	"github.com/slipway-build/slipway/engine/run"
	"github.com/slipway-build/slipway/steps/internal/plugin"
	"github.com/slipway-build/slipway/steps/internal/stepflags"
)

func main() {
	run.MaybeReexec()
	// Before the plugin settings: a credential helper run by a plugin's
	// build sees the same PLUGIN_* environment.
	if program := entryPoint(); program != nil {
		program()
		return
	}
	args, plan := os.Args[1:], pluginPlan()
	if plan != nil {
		args = plan.Args
	}
	stepflags.RunArgs(&cli.App{
		Name:   "slipway-build",
		Usage:  "build a Dockerfile into an OCI image without a daemon, and push it; with no flags and PLUGIN_* settings in the environment, as the Drone and Woodpecker kaniko plugins",
		Flags:  flags(),
		Before: checkFlags,
		Action: func(c *cli.Context) error { return action(c, plan) },
	}, args, "--build-arg", "--destination")
}

// pluginPlan is the Drone/Woodpecker plugin mode's plan when no flags are
// given and the environment holds plugin settings, else nil.
func pluginPlan() *plugin.Plan {
	env := plugin.Environ(os.Environ())
	if len(os.Args) > 1 || !plugin.Active(env) {
		return nil
	}
	dir, err := os.Getwd()
	if err != nil {
		stepflags.Fail(err)
	}
	plan, err := plugin.FromEnv(env, dir)
	if err != nil {
		stepflags.Fail(err)
	}
	return &plan
}

func flags() []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "context", Aliases: []string{"c"}, Value: "/workspace/", Usage: "build context: a path, dir://, tar://, git://, https://, s3://, gs:// or Azure Blob URL"},
		&cli.StringFlag{Name: "bucket", Aliases: []string{"b"}, Usage: "kaniko's older way to name a context tarball in object storage: BUCKET means gs://BUCKET/context.tar.gz; used when --context is not given"},
		&cli.StringFlag{Name: "context-sub-path", Usage: "sub-directory of the context to build from"},
		&cli.StringFlag{Name: "git", Usage: "git options: branch=,single-branch=,recurse-submodules=,insecure-skip-tls=,depth="},
		&cli.StringFlag{Name: "dockerfile", Aliases: []string{"f"}, Value: "Dockerfile", Usage: "path to the Dockerfile"},
		&cli.StringSliceFlag{Name: "build-arg", Usage: "NAME=value, or NAME to take it from the environment (repeatable)"},
		&cli.StringSliceFlag{Name: "target", Usage: "stage to build and push; given again, further stages to build and check, not pushed"},
		&cli.StringSliceFlag{Name: "label", Usage: "key=value label for the image (repeatable)"},
		&cli.StringSliceFlag{Name: "annotation", Usage: "key=value annotation on the image manifest (repeatable)"},
		&cli.StringFlag{Name: "custom-platform", Aliases: []string{"customPlatform"}, Usage: "target platform, e.g. linux/arm64"},
		&cli.BoolFlag{Name: "skip-unused-stages", Value: true, Usage: "build only the stages the target needs"},
		&cli.StringSliceFlag{Name: "secret", Usage: "id=NAME,src=FILE or id=NAME,env=VAR for RUN --mount=type=secret (repeatable)"},

		&cli.StringSliceFlag{Name: "destination", Aliases: []string{"d"}, Usage: "image reference to push to (repeatable)"},
		&cli.BoolFlag{Name: "no-push", EnvVars: []string{"KANIKO_NO_PUSH"}, Usage: "build without pushing"},
		&cli.BoolFlag{Name: "dryrun", Usage: "fetch the context and print the build plan; build and push nothing"},
		&cli.StringFlag{Name: "tar-path", Aliases: []string{"tarPath"}, Usage: "also write a docker-loadable tarball here"},
		&cli.StringFlag{Name: "oci-layout-path", Usage: "also write an OCI image layout here"},
		&cli.StringFlag{Name: "artifact-outputs-file", Usage: "write {\"uri\", \"digest\", \"isBuildArtifact\"} of the first destination as JSON here (Tekton Chains ARTIFACT_OUTPUTS; not written under --no-push)"},
		&cli.BoolFlag{Name: "tls-verify", Value: true, Usage: "buildah's spelling: false verifies no registry's certificate, for pushes and pulls (--skip-tls-verify and --skip-tls-verify-pull)"},
		&cli.BoolFlag{Name: "push-ignore-immutable-tag-errors", Usage: "take a push refused because the tag is immutable as a success"},
		&cli.BoolFlag{Name: "skip-push-permission-check", Usage: "do not check push access (checked while the build starts; a refusal stops it)"},
		&cli.StringFlag{Name: "compression", Value: "gzip", Usage: "layer compression: gzip or zstd"},
		&cli.IntFlag{Name: "compression-level", Value: -1, Usage: "compression level; -1 is the default, 1 (the fastest, as in kaniko)"},
		&cli.StringFlag{Name: "image-format", Usage: "oci or docker: the manifest and layer media types (default: the base image's)"},
		&cli.BoolFlag{Name: "reproducible", Usage: "strip timestamps so that identical inputs give identical digests"},

		&cli.BoolFlag{Name: "cache", Usage: "reuse the layers of earlier builds from --cache-repo"},
		&cli.StringFlag{Name: "cache-repo", Usage: "repository of the layer cache (default: <first destination>/cache)"},
		&cli.StringFlag{Name: "cache-dir", Usage: "base images stored by slipway-warm, extracted layers and RUN --mount=type=cache directories (default /cache in in-place mode, else $XDG_CACHE_HOME/slipway or ~/.cache/slipway)"},
		&cli.StringFlag{Name: "cache-dir-max-size", Value: "5GiB", Usage: "bound on the extracted layers kept in --cache-dir; the least recently used go first (e.g. 500MiB, 20GiB; 0 keeps none)"},
		&cli.DurationFlag{Name: "cache-ttl", Value: 336 * time.Hour, Usage: "cache entries older than this are not used"},
		&cli.BoolFlag{Name: "cache-copy-layers", Value: true, Usage: "cache COPY and ADD layers (keyed by the content they copy)"},
		&cli.BoolFlag{Name: "cache-run-layers", Value: true, Usage: "cache RUN layers"},
		&cli.BoolFlag{Name: "compressed-caching", Value: true, Usage: compat["compressed-caching"].Usage()},
		&cli.BoolFlag{Name: "no-push-cache", Usage: "read the layer cache but never write it"},

		&cli.StringFlag{Name: "snapshot-mode", Aliases: []string{"snapshotMode"}, Value: "full", Usage: "full, redo or time: " + compat["snapshot-mode"].Usage()},
		&cli.StringFlag{Name: "snapshotter", Value: "walk", Usage: "how RUN's changes are found: walk (compare with the index) or overlay (read an overlayfs upper dir; chroot mode as root; breaks hardlinks written in place)"},
		&cli.BoolFlag{Name: "single-snapshot", Usage: "take one layer per stage, at its end"},
		&cli.BoolFlag{Name: "use-new-run", Usage: compat["use-new-run"].Usage()},
		&cli.StringSliceFlag{Name: "ignore-path", Usage: "path never snapshotted (repeatable)"},
		&cli.BoolFlag{Name: "ignore-var-run", Aliases: []string{"whitelist-var-run"}, Value: true, Usage: "in in-place mode, never snapshot /var/run"},
		&cli.StringFlag{Name: "kaniko-dir", EnvVars: []string{"KANIKO_DIR"}, Value: registry.DefaultKanikoDir, Usage: "kaniko's own directory: never snapshotted, and its .docker is read for credentials"},
		&cli.BoolFlag{Name: "cleanup", EnvVars: []string{"KANIKO_CLEANUP"}, Usage: compat["cleanup"].Usage()},
		&cli.BoolFlag{Name: "pre-cleanup", EnvVars: []string{"KANIKO_PRE_CLEANUP"}, Usage: compat["pre-cleanup"].Usage()},
		&cli.BoolFlag{Name: "preserve-context", EnvVars: []string{"KANIKO_PRESERVE_CONTEXT"}, Usage: compat["preserve-context"].Usage()},
		&cli.IntFlag{Name: "image-fs-extract-retry", Usage: compat["image-fs-extract-retry"].Usage()},
		&cli.BoolFlag{Name: "force-build-metadata", Usage: compat["force-build-metadata"].Usage()},
		&cli.StringFlag{Name: "mode", EnvVars: []string{"SLIPWAY_MODE"}, Value: "chroot", Usage: "how RUN executes: chroot (a root under --work-dir) or in-place (the container's own /; executor image only)"},
		&cli.BoolFlag{Name: "force", Usage: "run in-place mode even where no container is recognised: / is emptied and rewritten"},
		&cli.BoolFlag{Name: "disk-sync", EnvVars: []string{"SLIPWAY_DISK_SYNC"}, Usage: "let RUN commands' fsync and the other disk-sync calls wait for the disk (by default they return at once, as under eatmydata: a build's files never need to survive a crash)"},
		&cli.StringFlag{Name: "work-dir", EnvVars: []string{"SLIPWAY_WORK_DIR"}, Usage: "where stage filesystems and layers are kept during the build"},
		// A debugging aid, not a kaniko flag: hidden from --help.
		&cli.StringFlag{Name: "cpu-profile", EnvVars: []string{"SLIPWAY_CPU_PROFILE"}, Hidden: true, Usage: "write a Go CPU profile of the build to this file (in-place mode: on a mounted volume, such as /workspace)"},

		&cli.StringSliceFlag{Name: "credential-helpers", Usage: "ambient credential sources to use when no config.json names the registry: env, gitlab, google, ecr, acr (repeatable; default all; \"\" for none)"},
	}
	flags = append(flags, attestationFlags()...)
	flags = append(flags, stepflags.ResultFiles("image")...)
	flags = append(append(flags, stepflags.Push()...), stepflags.Pull()...)
	return append(flags, stepflags.Logging()...)
}

// compat are the kaniko flags Slipway accepts without effect, and why
// they need none.
var compat = map[string]stepflags.Compat{
	"compressed-caching":     {Name: "compressed-caching", Why: "layers are compressed once, as they are written"},
	"snapshot-mode":          {Name: "snapshot-mode", Why: "Slipway always compares metadata, ctime included, and hashes only where that cannot decide"},
	"use-new-run":            {Name: "use-new-run", Why: "Slipway always snapshots only what changed"},
	"cleanup":                {Name: "cleanup", Why: "Slipway always removes its work directory ($KANIKO_CLEANUP too)"},
	"pre-cleanup":            {Name: "pre-cleanup", Why: "in in-place mode / is always cleared before a stage is unpacked ($KANIKO_PRE_CLEANUP too)"},
	"preserve-context":       {Name: "preserve-context", Why: "the build context lives in the work directory, which stages never touch ($KANIKO_PRESERVE_CONTEXT too)"},
	"image-fs-extract-retry": {Name: "image-fs-extract-retry", Why: "layers are verified by digest and a damaged one is pulled again"},
	"force-build-metadata":   {Name: "force-build-metadata", Why: "metadata-only instructions are recorded in the history, never as empty layers"},
}

var credentialSources = []string{"env", "gitlab", "google", "ecr", "acr"}

// attestationFlags are the supply-chain records of the image (engine/attest);
// all are off by default, as kaniko has none.
func attestationFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "sbom", Usage: "attach an SPDX 2.3 SBOM of the image to each destination as an OCI referrer"},
		&cli.StringFlag{Name: "sbom-path", Usage: "also write the SPDX SBOM here"},
		&cli.BoolFlag{Name: "provenance", Usage: "attach a SLSA v1 provenance statement to each destination as an OCI referrer"},
		&cli.StringFlag{Name: "attestations-file", Usage: "write the references of the attached SBOM and provenance here, comma-separated (Tekton ATTESTATIONS)"},
	}
}

// checkFlags refuses bad values before anything is fetched or built.
func checkFlags(c *cli.Context) error {
	if err := stepflags.CheckLogging(c); err != nil {
		return err
	}
	checks := []struct {
		flag   string
		values []string
	}{
		{"snapshot-mode", []string{"full", "redo", "time"}},
		{"snapshotter", []string{"walk", "overlay"}},
		{"compression", []string{"gzip", "zstd"}},
		{"mode", []string{"chroot", "in-place"}},
		{"image-format", []string{"", "oci", "docker"}},
	}
	for _, ch := range checks {
		if err := stepflags.OneOf(c, ch.flag, ch.values...); err != nil {
			return err
		}
	}
	level := c.Int("compression-level")
	if c.String("compression") == "gzip" && (level < -1 || level > 9) {
		return fmt.Errorf("--compression-level %d: gzip levels are 1 to 9, or -1 for the default", level)
	}
	if c.String("compression") == "zstd" && (level < -1 || level > 22) {
		return fmt.Errorf("--compression-level %d: zstd levels are 1 to 22, or -1 for the default", level)
	}
	for _, h := range c.StringSlice("credential-helpers") {
		if h != "" && !slices.Contains(credentialSources, h) {
			return fmt.Errorf("--credential-helpers %q: use env, gitlab, google, ecr or acr, or \"\" for none", h)
		}
	}
	return nil
}

func action(c *cli.Context, plan *plugin.Plan) error {
	log, err := stepflags.Logger(c)
	if err != nil {
		return err
	}
	if plan != nil {
		log.Info("Plugin mode: the PLUGIN_* settings give " + strings.Join(plan.Args, " "))
		for _, s := range plan.Ignored {
			log.Warn("Plugin setting not used by Slipway", "setting", s)
		}
	}
	stepflags.LogCompat(c, log, slices.Collect(maps.Values(compat)))
	if p := c.String("cpu-profile"); p != "" {
		stop, err := startCPUProfile(p)
		if err != nil {
			return err
		}
		defer stop()
	}
	maxSize, err := flagvalue.Size("--cache-dir-max-size", c.String("cache-dir-max-size"))
	if err != nil {
		return err
	}
	reg, err := stepflags.PushOptions(c, "slipway-build")
	if err != nil {
		return err
	}
	reg.KanikoDir = c.String("kaniko-dir")
	if !c.Bool("tls-verify") {
		reg.SkipTLSVerify, reg.SkipTLSVerifyPull = true, true
	}
	reg.CloudSources = cloudauth.Sources()
	if plan != nil && plan.Credentials != nil {
		reg.CloudSources = append([]registry.AmbientSource{plan.Credentials}, reg.CloudSources...)
	}
	if c.IsSet("credential-helpers") {
		reg.CredentialHelpers = slices.DeleteFunc(c.StringSlice("credential-helpers"), func(h string) bool { return h == "" })
		if reg.CredentialHelpers == nil {
			reg.CredentialHelpers = []string{}
		}
	}
	ignore := c.StringSlice("ignore-path")
	if c.String("mode") == string(run.InPlace) {
		if c.Bool("ignore-var-run") {
			ignore = append(ignore, "/var/run")
		}
		ignore = append(ignore, c.String("kaniko-dir"))
	}
	level := c.Int("compression-level")
	if level < 0 {
		level = 0
	}
	var target string
	targets := c.StringSlice("target")
	if len(targets) > 0 {
		target = targets[0]
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err = job.Run(ctx, job.Config{
		Context:          contextURL(c),
		ContextSubPath:   c.String("context-sub-path"),
		Git:              c.String("git"),
		Dockerfile:       c.String("dockerfile"),
		BuildArgs:        c.StringSlice("build-arg"),
		Target:           target,
		ExtraTargets:     targets[min(1, len(targets)):],
		Labels:           c.StringSlice("label"),
		Annotations:      c.StringSlice("annotation"),
		ImageFormat:      c.String("image-format"),
		DryRun:           c.Bool("dryrun"),
		CustomPlatform:   c.String("custom-platform"),
		SkipUnusedStages: c.Bool("skip-unused-stages"),
		Secrets:          c.StringSlice("secret"),
		Publish: stepflags.WithResultFiles(c, publish.Options{
			Destinations:             c.StringSlice("destination"),
			NoPush:                   c.Bool("no-push"),
			TarPath:                  c.String("tar-path"),
			OCILayoutPath:            c.String("oci-layout-path"),
			ArtifactOutputsFile:      c.String("artifact-outputs-file"),
			SkipPushPermissionCheck:  c.Bool("skip-push-permission-check"),
			IgnoreImmutableTagErrors: c.Bool("push-ignore-immutable-tag-errors"),
		}),
		Registry:         reg,
		Cache:            c.Bool("cache"),
		CacheRepo:        c.String("cache-repo"),
		CacheTTL:         c.Duration("cache-ttl"),
		CacheRunLayers:   c.Bool("cache-run-layers"),
		CacheCopyLayers:  c.Bool("cache-copy-layers"),
		NoPushCache:      c.Bool("no-push-cache"),
		SingleSnapshot:   c.Bool("single-snapshot"),
		Snapshotter:      c.String("snapshotter"),
		Reproducible:     c.Bool("reproducible"),
		Compression:      c.String("compression"),
		CompressionLevel: level,
		Mode:             c.String("mode"),
		Force:            c.Bool("force"),
		DiskSync:         c.Bool("disk-sync"),
		WorkDir:          c.String("work-dir"),
		CacheDir:         c.String("cache-dir"),
		CacheDirMaxSize:  maxSize,
		IgnorePaths:      ignore,
		SBOM:             c.Bool("sbom"),
		SBOMPath:         c.String("sbom-path"),
		Provenance:       c.Bool("provenance"),
		AttestationsFile: c.String("attestations-file"),
		Stdin:            os.Stdin,
		Log:              log,
		Output:           os.Stderr,
	})
	return err
}

// contextURL is --context, or kaniko's --bucket when no --context was
// given: a bare bucket name is a Google Cloud Storage bucket holding
// context.tar.gz.
func contextURL(c *cli.Context) string {
	b := c.String("bucket")
	if b == "" || c.IsSet("context") {
		return c.String("context")
	}
	if !strings.Contains(b, "://") {
		b = "gs://" + b
	}
	scheme, rest, _ := strings.Cut(b, "://")
	if bucket, object, _ := strings.Cut(rest, "/"); object == "" {
		return scheme + "://" + bucket + "/context.tar.gz"
	}
	return b
}

// startCPUProfile writes a CPU profile of the build to path, for `go tool
// pprof`, until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpu-profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
