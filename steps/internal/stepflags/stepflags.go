// Package stepflags holds what every step binary's command line shares:
// kaniko's logging and pull flags, and the way a step starts.
package stepflags

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/slipway-build/slipway/engine/flagvalue"
	"github.com/slipway-build/slipway/engine/logging"
	"github.com/slipway-build/slipway/engine/registry"
	"github.com/slipway-build/slipway/engine/version"
	"github.com/slipway-build/slipway/tasks/argv"
)

// Run runs a step: the Tekton/Argo list tail (see tasks/argv) is expanded
// for listFlags, list flags keep commas in their values, and an error is
// printed with a non-zero exit.
func Run(app *cli.App, listFlags ...string) {
	if wantsVersion(os.Args[1:]) {
		fmt.Println(app.Name, version.Get())
		return
	}
	args, err := argv.ExpandListTail(os.Args[1:], listFlags...)
	if err == nil {
		app.DisableSliceFlagSeparator = true
		err = app.Run(append(os.Args[:1:1], args...))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

// wantsVersion is `STEP version` (kaniko's `executor version`) or
// --version anywhere before a list tail.
func wantsVersion(args []string) bool {
	if len(args) == 1 && args[0] == "version" {
		return true
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "--version" {
			return true
		}
	}
	return false
}

// Logging are kaniko's logging flags.
func Logging() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "verbosity", Aliases: []string{"v"}, Value: "info", Usage: "panic, fatal, error, warn, info, debug or trace"},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text, color or json"},
		&cli.BoolFlag{Name: "log-timestamp", Usage: "timestamp each log line"},
	}
}

// Logger makes the logger the logging flags ask for and makes it slog's
// default, which the engine's packages log through.
func Logger(c *cli.Context) (*slog.Logger, error) {
	log, err := logging.New(os.Stderr, logging.Options{
		Verbosity: c.String("verbosity"), Format: c.String("log-format"), Timestamp: c.Bool("log-timestamp"),
	})
	if err != nil {
		return nil, err
	}
	slog.SetDefault(log)
	return log, nil
}

// Pull are kaniko's flags for reaching the registries images come from.
func Pull() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "insecure-pull", Usage: "pull over plain HTTP"},
		&cli.StringSliceFlag{Name: "insecure-registry", Usage: "registry to use over plain HTTP (repeatable)"},
		&cli.BoolFlag{Name: "skip-tls-verify-pull", Usage: "do not verify TLS certificates when pulling"},
		&cli.StringSliceFlag{Name: "skip-tls-verify-registry", Usage: "registry whose certificate is not verified (repeatable)"},
		&cli.StringSliceFlag{Name: "registry-certificate", Usage: "host=path/to/ca.pem (repeatable)"},
		&cli.StringSliceFlag{Name: "registry-mirror", Usage: "mirror for Docker Hub pulls (repeatable)"},
		&cli.IntFlag{Name: "image-download-retry", Usage: "retries of a failed image download, with backoff"},
	}
}

// PullOptions reads the Pull flags.
func PullOptions(c *cli.Context, userAgent string) (registry.Options, error) {
	certs, err := flagvalue.Pairs("--registry-certificate", "host=value", c.StringSlice("registry-certificate"), true)
	if err != nil {
		return registry.Options{}, err
	}
	return registry.Options{
		InsecurePull:            c.Bool("insecure-pull"),
		InsecureRegistries:      c.StringSlice("insecure-registry"),
		SkipTLSVerifyPull:       c.Bool("skip-tls-verify-pull"),
		SkipTLSVerifyRegistries: c.StringSlice("skip-tls-verify-registry"),
		RegistryCertificates:    certs,
		Mirrors:                 c.StringSlice("registry-mirror"),
		ImageDownloadRetry:      c.Int("image-download-retry"),
		UserAgent:               userAgent,
	}, nil
}
