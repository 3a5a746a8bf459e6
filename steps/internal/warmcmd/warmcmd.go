// Package warmcmd is slipway-warm's command line: it pulls base images
// into a --cache-dir OCI layout that builds read before going to the
// registry, as kaniko's warmer does. steps/warm is its binary; the
// executor image's slipway-build runs it too, as slipway-warm and as
// kaniko's /kaniko/warmer, so that the image holds one copy of the code.
package warmcmd

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/slipway-build/slipway/engine/warm"
	"github.com/slipway-build/slipway/steps/internal/stepflags"
)

// Main runs the command on os.Args and exits non-zero on an error.
func Main() {
	stepflags.Run(&cli.App{
		Name:   "slipway-warm",
		Usage:  "pull base images into a cache directory that slipway-build --cache-dir reads",
		Flags:  flags(),
		Before: stepflags.CheckLogging,
		Action: action,
	}, "--image", "--build-arg")
}

func flags() []cli.Flag {
	flags := []cli.Flag{
		&cli.StringSliceFlag{Name: "image", Aliases: []string{"i"}, Usage: "image to cache (repeatable)"},
		&cli.StringFlag{Name: "dockerfile", Aliases: []string{"d"}, Usage: "cache the FROM images of this Dockerfile's stages"},
		&cli.StringSliceFlag{Name: "build-arg", Usage: "NAME=value, or NAME to take it from the environment, for --dockerfile (repeatable)"},
		&cli.StringFlag{Name: "target", Usage: "stage of --dockerfile whose images are needed; default the last"},
		&cli.StringFlag{Name: "cache-dir", Aliases: []string{"c"}, Value: "/cache", Usage: "OCI image layout directory to keep the images in"},
		&cli.DurationFlag{Name: "cache-ttl", Value: 336 * time.Hour, Usage: "how long an image cached by tag stays fresh"},
		&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "pull again even when cached"},
		&cli.StringFlag{Name: "custom-platform", Aliases: []string{"customPlatform"}, Usage: "platform to cache, e.g. linux/arm64"},

		&cli.BoolFlag{Name: "insecure", Usage: "pull over plain HTTP (the same as --insecure-pull: the warmer only pulls)"},
		&cli.BoolFlag{Name: "skip-tls-verify", Usage: "do not verify TLS certificates (the same as --skip-tls-verify-pull: the warmer only pulls)"},
	}
	flags = append(flags, stepflags.Pull()...)
	return append(flags, stepflags.Logging()...)
}

func action(c *cli.Context) error {
	log, err := stepflags.Logger(c)
	if err != nil {
		return err
	}
	pull, err := stepflags.PullOptions(c, "slipway-warm")
	if err != nil {
		return err
	}
	// The warmer only pulls: kaniko's warmer reads --insecure and
	// --skip-tls-verify as applying to its pulls.
	pull.InsecurePull = pull.InsecurePull || c.Bool("insecure")
	pull.SkipTLSVerifyPull = pull.SkipTLSVerifyPull || c.Bool("skip-tls-verify")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return warm.Warm(ctx, warm.Options{
		Images:     c.StringSlice("image"),
		Dockerfile: c.String("dockerfile"),
		BuildArgs:  c.StringSlice("build-arg"),
		Target:     c.String("target"),
		CacheDir:   c.String("cache-dir"),
		CacheTTL:   c.Duration("cache-ttl"),
		Force:      c.Bool("force"),
		Platform:   c.String("custom-platform"),
		Registry:   pull,
		Log:        log,
	})
}
