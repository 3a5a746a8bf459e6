// Command slipway-warm pulls base images into a --cache-dir OCI layout
// that builds read before going to the registry, as kaniko's warmer does.
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

	"github.com/slipway-build/slipway/engine/logging"
	"github.com/slipway-build/slipway/engine/registry"
	"github.com/slipway-build/slipway/engine/warm"
	"github.com/slipway-build/slipway/tasks/argv"
)

func main() {
	// Tekton and Argo pass list params as a tail; see tasks/argv.
	args, err := argv.ExpandListTail(os.Args[1:], "--image", "--build-arg")
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
	app := &cli.App{
		Name:                      "slipway-warm",
		Usage:                     "pull base images into a cache directory that slipway-build --cache-dir reads",
		DisableSliceFlagSeparator: true,
		Flags:                     flags(),
		Action:                    action,
	}
	if err := app.Run(append(os.Args[:1:1], args...)); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "image", Aliases: []string{"i"}, Usage: "image to cache (repeatable)"},
		&cli.StringFlag{Name: "dockerfile", Aliases: []string{"f"}, Usage: "cache the FROM images of this Dockerfile's stages"},
		&cli.StringSliceFlag{Name: "build-arg", Usage: "NAME=value, or NAME to take it from the environment, for --dockerfile (repeatable)"},
		&cli.StringFlag{Name: "target", Usage: "stage of --dockerfile whose images are needed; default the last"},
		&cli.StringFlag{Name: "cache-dir", Aliases: []string{"c"}, Value: "/cache", Usage: "OCI image layout directory to keep the images in"},
		&cli.DurationFlag{Name: "cache-ttl", Value: 336 * time.Hour, Usage: "how long an image cached by tag stays fresh"},
		&cli.BoolFlag{Name: "force", Usage: "pull again even when cached"},
		&cli.StringFlag{Name: "custom-platform", Usage: "platform to cache, e.g. linux/arm64"},

		&cli.BoolFlag{Name: "insecure", Usage: "pull over plain HTTP (kaniko's warmer flag; same as --insecure-pull)"},
		&cli.BoolFlag{Name: "insecure-pull", Usage: "pull over plain HTTP"},
		&cli.StringSliceFlag{Name: "insecure-registry", Usage: "registry to use over plain HTTP (repeatable)"},
		&cli.BoolFlag{Name: "skip-tls-verify", Usage: "do not verify TLS certificates (kaniko's warmer flag; same as --skip-tls-verify-pull)"},
		&cli.BoolFlag{Name: "skip-tls-verify-pull", Usage: "do not verify TLS certificates when pulling"},
		&cli.StringSliceFlag{Name: "skip-tls-verify-registry", Usage: "registry whose certificate is not verified (repeatable)"},
		&cli.StringSliceFlag{Name: "registry-certificate", Usage: "host=path/to/ca.pem (repeatable)"},
		&cli.StringSliceFlag{Name: "registry-mirror", Usage: "mirror for Docker Hub pulls (repeatable)"},
		&cli.IntFlag{Name: "image-download-retry", Usage: "retries of a failed image download"},

		&cli.StringFlag{Name: "verbosity", Aliases: []string{"v"}, Value: "info", Usage: "panic, fatal, error, warn, info, debug or trace"},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text, color or json"},
		&cli.BoolFlag{Name: "log-timestamp", Usage: "timestamp each log line"},
	}
}

func action(c *cli.Context) error {
	log, err := logging.New(os.Stderr, logging.Options{
		Verbosity: c.String("verbosity"), Format: c.String("log-format"), Timestamp: c.Bool("log-timestamp"),
	})
	if err != nil {
		return err
	}
	certs, err := pairs("--registry-certificate", c.StringSlice("registry-certificate"))
	if err != nil {
		return err
	}
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
		Registry: registry.Options{
			// The warmer only pulls: kaniko's warmer reads --insecure and
			// --skip-tls-verify as applying to its pulls.
			InsecurePull:            c.Bool("insecure-pull") || c.Bool("insecure"),
			InsecureRegistries:      c.StringSlice("insecure-registry"),
			SkipTLSVerifyPull:       c.Bool("skip-tls-verify-pull") || c.Bool("skip-tls-verify"),
			SkipTLSVerifyRegistries: c.StringSlice("skip-tls-verify-registry"),
			RegistryCertificates:    certs,
			Mirrors:                 c.StringSlice("registry-mirror"),
			ImageDownloadRetry:      c.Int("image-download-retry"),
			UserAgent:               "slipway-warm",
		},
		Log: log,
	})
}

func pairs(flag string, values []string) (map[string]string, error) {
	if len(values) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, v := range values {
		k, val, ok := strings.Cut(v, "=")
		if !ok || k == "" || val == "" {
			return nil, fmt.Errorf("%s %q: want host=value", flag, v)
		}
		out[k] = val
	}
	return out, nil
}
