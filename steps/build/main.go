// Command slipway-build builds a Dockerfile into an image and pushes it,
// taking kaniko's executor flags.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slipway-build/slipway/engine/flagvalue"
	"github.com/slipway-build/slipway/engine/job"
	"github.com/slipway-build/slipway/engine/publish"
	"github.com/slipway-build/slipway/engine/run"
	"github.com/slipway-build/slipway/steps/internal/stepflags"
)

func main() {
	run.MaybeReexec()
	stepflags.Run(&cli.App{
		Name:   "slipway-build",
		Usage:  "build a Dockerfile into an OCI image without a daemon, and push it",
		Flags:  flags(),
		Before: checkFlags,
		Action: action,
	}, "--build-arg", "--destination")
}

func flags() []cli.Flag {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "context", Aliases: []string{"c"}, Value: "/workspace/", Usage: "build context: a path, dir://, tar://, git://, https://, s3://, gs:// or Azure Blob URL"},
		&cli.StringFlag{Name: "context-sub-path", Usage: "sub-directory of the context to build from"},
		&cli.StringFlag{Name: "git", Usage: "git options: branch=,single-branch=,recurse-submodules=,insecure-skip-tls=,depth="},
		&cli.StringFlag{Name: "dockerfile", Aliases: []string{"f"}, Value: "Dockerfile", Usage: "path to the Dockerfile"},
		&cli.StringSliceFlag{Name: "build-arg", Usage: "NAME=value, or NAME to take it from the environment (repeatable)"},
		&cli.StringFlag{Name: "target", Usage: "stage to build"},
		&cli.StringSliceFlag{Name: "label", Usage: "key=value label for the image (repeatable)"},
		&cli.StringFlag{Name: "custom-platform", Usage: "target platform, e.g. linux/arm64"},
		&cli.BoolFlag{Name: "skip-unused-stages", Value: true, Usage: "build only the stages the target needs"},
		&cli.StringSliceFlag{Name: "secret", Usage: "id=NAME,src=FILE or id=NAME,env=VAR for RUN --mount=type=secret (repeatable)"},

		&cli.StringSliceFlag{Name: "destination", Aliases: []string{"d"}, Usage: "image reference to push to (repeatable)"},
		&cli.BoolFlag{Name: "no-push", Usage: "build without pushing"},
		&cli.StringFlag{Name: "tar-path", Usage: "also write a docker-loadable tarball here"},
		&cli.StringFlag{Name: "oci-layout-path", Usage: "also write an OCI image layout here"},
		&cli.StringFlag{Name: "digest-file", Usage: "write the image digest here"},
		&cli.StringFlag{Name: "image-name-with-digest-file", Usage: "write repo@digest lines here"},
		&cli.StringFlag{Name: "image-name-tag-with-digest-file", Usage: "write repo:tag@digest lines here"},
		&cli.StringFlag{Name: "image-url-file", Usage: "write the first destination, without digest or newline, here (Tekton IMAGE_URL)"},
		&cli.StringFlag{Name: "images-file", Usage: "write every destination as repo@digest, comma-separated, here (Tekton IMAGES)"},
		&cli.IntFlag{Name: "push-retry", Usage: "retries of a failed push, with backoff"},
		&cli.BoolFlag{Name: "skip-push-permission-check", Usage: "do not check push access before building"},
		&cli.StringFlag{Name: "compression", Value: "gzip", Usage: "layer compression: gzip or zstd"},
		&cli.IntFlag{Name: "compression-level", Value: -1, Usage: "compression level; -1 is the default"},
		&cli.BoolFlag{Name: "reproducible", Usage: "strip timestamps so that identical inputs give identical digests"},

		&cli.BoolFlag{Name: "cache", Usage: "reuse the layers of earlier builds from --cache-repo"},
		&cli.StringFlag{Name: "cache-repo", Usage: "repository of the layer cache (default: <first destination>/cache)"},
		&cli.StringFlag{Name: "cache-dir", Value: "/cache", Usage: "base images stored by slipway-warm, and RUN --mount=type=cache directories"},
		&cli.DurationFlag{Name: "cache-ttl", Value: 336 * time.Hour, Usage: "cache entries older than this are not used"},
		&cli.BoolFlag{Name: "cache-copy-layers", Value: true, Usage: "cache COPY and ADD layers (keyed by the content they copy)"},
		&cli.BoolFlag{Name: "cache-run-layers", Value: true, Usage: "cache RUN layers"},
		&cli.BoolFlag{Name: "compressed-caching", Value: true, Usage: "accepted for kaniko compatibility: layers are always compressed once"},
		&cli.BoolFlag{Name: "no-push-cache", Usage: "read the layer cache but never write it"},

		&cli.StringFlag{Name: "snapshot-mode", Value: "full", Usage: "full, redo or time: accepted for kaniko compatibility; Slipway always compares metadata including ctime"},
		&cli.StringFlag{Name: "snapshotter", Value: "walk", Usage: "how RUN's changes are found: walk (compare with the index) or overlay (read an overlayfs upper dir; chroot mode as root; breaks hardlinks written in place)"},
		&cli.BoolFlag{Name: "single-snapshot", Usage: "take one layer per stage, at its end"},
		&cli.BoolFlag{Name: "use-new-run", Usage: "accepted for kaniko compatibility; Slipway always snapshots only what changed"},
		&cli.StringSliceFlag{Name: "ignore-path", Usage: "path never snapshotted (repeatable)"},
		&cli.BoolFlag{Name: "ignore-var-run", Value: true, Usage: "in in-place mode, never snapshot /var/run"},
		&cli.BoolFlag{Name: "cleanup", Usage: "accepted for kaniko compatibility; Slipway always cleans its work directory"},
		&cli.StringFlag{Name: "mode", EnvVars: []string{"SLIPWAY_MODE"}, Value: "chroot", Usage: "how RUN executes: chroot (a root under --work-dir) or in-place (the container's own /; executor image only)"},
		&cli.StringFlag{Name: "work-dir", EnvVars: []string{"SLIPWAY_WORK_DIR"}, Usage: "where stage filesystems and layers are kept during the build"},

		&cli.BoolFlag{Name: "insecure", Usage: "push over plain HTTP"},
		&cli.BoolFlag{Name: "skip-tls-verify", Usage: "do not verify TLS certificates when pushing"},
		&cli.StringSliceFlag{Name: "registry-client-cert", Usage: "host=cert.pem,key.pem (repeatable)"},
		&cli.StringSliceFlag{Name: "registry-map", Usage: "original=remapped registry for pulls (repeatable)"},
		&cli.BoolFlag{Name: "skip-default-registry-fallback", Usage: "fail instead of falling back to the original registry when mirrors fail"},
	}
	flags = append(flags, stepflags.Pull()...)
	return append(flags, stepflags.Logging()...)
}

func checkFlags(c *cli.Context) error {
	if m := c.String("snapshot-mode"); m != "full" && m != "redo" && m != "time" {
		return fmt.Errorf("--snapshot-mode %q: use full, redo or time", m)
	}
	return nil
}

func action(c *cli.Context) error {
	log, err := stepflags.Logger(c)
	if err != nil {
		return err
	}
	reg, err := stepflags.PullOptions(c, "slipway-build")
	if err != nil {
		return err
	}
	reg.Insecure, reg.SkipTLSVerify = c.Bool("insecure"), c.Bool("skip-tls-verify")
	reg.SkipDefaultRegistryFallback, reg.PushRetry = c.Bool("skip-default-registry-fallback"), c.Int("push-retry")
	if reg.RegistryClientCerts, err = flagvalue.Pairs("--registry-client-cert", "host=value", c.StringSlice("registry-client-cert"), true); err != nil {
		return err
	}
	if reg.RegistryMaps, err = registryMaps(c.StringSlice("registry-map")); err != nil {
		return err
	}
	ignore := c.StringSlice("ignore-path")
	if c.Bool("ignore-var-run") && c.String("mode") == string(run.InPlace) {
		ignore = append(ignore, "/var/run")
	}
	level := c.Int("compression-level")
	if level < 0 {
		level = 0
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err = job.Run(ctx, job.Config{
		Context:          c.String("context"),
		ContextSubPath:   c.String("context-sub-path"),
		Git:              c.String("git"),
		Dockerfile:       c.String("dockerfile"),
		BuildArgs:        c.StringSlice("build-arg"),
		Target:           c.String("target"),
		Labels:           c.StringSlice("label"),
		CustomPlatform:   c.String("custom-platform"),
		SkipUnusedStages: c.Bool("skip-unused-stages"),
		Secrets:          c.StringSlice("secret"),
		Publish: publish.Options{
			Destinations:               c.StringSlice("destination"),
			NoPush:                     c.Bool("no-push"),
			TarPath:                    c.String("tar-path"),
			OCILayoutPath:              c.String("oci-layout-path"),
			DigestFile:                 c.String("digest-file"),
			ImageNameWithDigestFile:    c.String("image-name-with-digest-file"),
			ImageNameTagWithDigestFile: c.String("image-name-tag-with-digest-file"),
			ImageURLFile:               c.String("image-url-file"),
			ImagesFile:                 c.String("images-file"),
			SkipPushPermissionCheck:    c.Bool("skip-push-permission-check"),
		},
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
		WorkDir:          c.String("work-dir"),
		CacheDir:         c.String("cache-dir"),
		IgnorePaths:      ignore,
		Stdin:            os.Stdin,
		Log:              log,
		Output:           os.Stderr,
	})
	return err
}

func registryMaps(values []string) (map[string][]string, error) {
	if len(values) == 0 {
		return nil, nil
	}
	out := map[string][]string{}
	for _, v := range values {
		k, val, err := flagvalue.Pair("--registry-map", "original=remapped", v, true)
		if err != nil {
			return nil, err
		}
		for _, to := range strings.Split(val, ";") {
			if to == "" {
				// An empty name would mean Docker Hub to the registry
				// client: never a mirror the user asked for.
				return nil, fmt.Errorf("--registry-map %q: an empty registry between the semicolons; want original=remapped[;remapped...]", v)
			}
			out[k] = append(out[k], to)
		}
	}
	return out, nil
}
