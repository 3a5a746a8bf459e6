// Package indexcmd is slipway-index's command line: it assembles
// per-platform images, each built by slipway-build, into one
// multi-platform image (an OCI image index, or a Docker manifest list) and
// pushes it. steps/index is its binary; the executor image's slipway-build
// runs it too, as slipway-index.
package indexcmd

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/slipway-build/slipway/engine/index"
	"github.com/slipway-build/slipway/engine/publish"
	"github.com/slipway-build/slipway/steps/internal/stepflags"
)

// Main runs the command on os.Args and exits non-zero on an error.
func Main() {
	stepflags.Run(&cli.App{
		Name:   "slipway-index",
		Usage:  "assemble per-platform images into a multi-platform image index and push it",
		Flags:  flags(),
		Before: stepflags.CheckLogging,
		Action: action,
	}, "--image", "--destination", "--platform")
}

func flags() []cli.Flag {
	flags := []cli.Flag{
		&cli.StringSliceFlag{Name: "image", Aliases: []string{"i"}, Usage: "a platform's image, REF@DIGEST in a registry or oci-layout://PATH[@DIGEST] (repeatable; each platform once)"},
		&cli.StringSliceFlag{Name: "platform", Usage: "a platform the index must hold, e.g. linux/arm64 (repeatable or comma-separated; default: whatever the images are)"},
		&cli.StringFlag{Name: "format", Value: index.FormatOCI, Usage: "oci (an OCI image index) or docker (a Docker manifest list)"},

		&cli.StringSliceFlag{Name: "destination", Aliases: []string{"d"}, Usage: "image reference to push the index to (repeatable)"},
		&cli.BoolFlag{Name: "no-push", Usage: "assemble and check without pushing"},
		&cli.StringFlag{Name: "oci-layout-path", Usage: "also write an OCI image layout holding the index here"},
		&cli.BoolFlag{Name: "skip-push-permission-check", Usage: "do not check push access first"},
	}
	flags = append(flags, stepflags.ResultFiles("index")...)
	flags = append(append(flags, stepflags.Push()...), stepflags.Pull()...)
	return append(flags, stepflags.Logging()...)
}

func action(c *cli.Context) error {
	log, err := stepflags.Logger(c)
	if err != nil {
		return err
	}
	reg, err := stepflags.PushOptions(c, "slipway-index")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err = index.Run(ctx, index.Options{
		Images:    c.StringSlice("image"),
		Platforms: c.StringSlice("platform"),
		Format:    c.String("format"),
		Publish: stepflags.WithResultFiles(c, publish.Options{
			Destinations:            c.StringSlice("destination"),
			NoPush:                  c.Bool("no-push"),
			OCILayoutPath:           c.String("oci-layout-path"),
			SkipPushPermissionCheck: c.Bool("skip-push-permission-check"),
		}),
		Registry: reg,
		Log:      log,
	})
	return err
}
