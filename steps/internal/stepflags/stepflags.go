// Package stepflags holds what every step binary's command line shares:
// kaniko's logging and pull flags, and the way a step starts.
package stepflags

import (
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/slipway-build/slipway/engine/flagvalue"
	"github.com/slipway-build/slipway/engine/logging"
	"github.com/slipway-build/slipway/engine/publish"
	"github.com/slipway-build/slipway/engine/registry"
	"github.com/slipway-build/slipway/engine/version"
	"github.com/slipway-build/slipway/tasks/argv"
)

// Run runs a step: the Tekton/Argo list tail (see tasks/argv) is expanded
// for listFlags, list flags keep commas in their values, positional
// arguments are refused, an unknown flag gets one line naming the closest
// one, and an error is printed (as JSON under --log-format json) with a
// non-zero exit.
func Run(app *cli.App, listFlags ...string) { RunArgs(app, os.Args[1:], listFlags...) }

// RunArgs is Run with the arguments given, not taken from os.Args: those of
// a mode that reads its settings from elsewhere (steps/internal/plugin).
func RunArgs(app *cli.App, arguments []string, listFlags ...string) {
	if wantsVersion(arguments) {
		fmt.Println(app.Name, version.Get())
		return
	}
	args, err := argv.ExpandListTail(arguments, listFlags...)
	if err == nil {
		app.DisableSliceFlagSeparator = true
		app.OnUsageError = usageError
		before := app.Before
		app.Before = func(c *cli.Context) error {
			if c.NArg() > 0 {
				return fmt.Errorf("unexpected argument %q: %s takes flags only (see %s --help)", c.Args().First(), app.Name, app.Name)
			}
			if before != nil {
				return before(c)
			}
			return nil
		}
		err = app.Run(append(os.Args[:1:1], args...))
	}
	if err != nil {
		printError(arguments, err)
		os.Exit(1)
	}
}

// Fail prints err as Run does and exits non-zero, for an error found before
// Run starts.
func Fail(err error) {
	printError(os.Args[1:], err)
	os.Exit(1)
}

func printError(args []string, err error) {
	// URLs in an error may carry a registry upload token.
	msg := registry.Redact(err.Error())
	if logFormat(args) == "json" {
		log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
		log.Error(msg)
		return
	}
	fmt.Fprintln(os.Stderr, "error:", msg)
}

// logFormat finds --log-format in raw arguments, so that an error raised
// before (or while) the flags are parsed is printed the way the user asked.
func logFormat(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		a = strings.TrimPrefix(a, "-")
		if v, ok := strings.CutPrefix(a, "-log-format="); ok {
			return v
		}
		if a == "-log-format" && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// usageError replaces urfave/cli's full help after a bad flag with one
// line: what was wrong, the closest flag, and where the help is.
func usageError(c *cli.Context, err error, _ bool) error {
	name := c.App.Name
	if provided, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
		provided = strings.TrimLeft(provided, "-")
		msg := "unknown flag --" + provided
		if len(provided) == 1 {
			msg = "unknown flag -" + provided
		}
		if s := cli.SuggestFlag(c.App.Flags, provided, true); s != "" {
			msg += ": did you mean " + s + "?"
		}
		return fmt.Errorf("%s (see %s --help)", msg, name)
	}
	return fmt.Errorf("%w (see %s --help)", err, name)
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

// OneOf refuses a flag value outside values, before anything runs.
func OneOf(c *cli.Context, flag string, values ...string) error {
	v := c.String(flag)
	if slices.Contains(values, v) {
		return nil
	}
	return fmt.Errorf("--%s %q: use %s", flag, v, orList(values))
}

func orList(values []string) string {
	if len(values) == 1 {
		return values[0]
	}
	return strings.Join(values[:len(values)-1], ", ") + " or " + values[len(values)-1]
}

// Compat is a flag accepted so that kaniko command lines run unchanged,
// with no effect in Slipway, and the reason why.
type Compat struct {
	Name, Why string
}

// Usage is the help text of a compatibility-only flag.
func (f Compat) Usage() string {
	return "accepted for kaniko compatibility, no effect: " + f.Why
}

// LogCompat says at debug level which compatibility-only flags were set.
func LogCompat(c *cli.Context, log *slog.Logger, flags []Compat) {
	for _, f := range flags {
		if c.IsSet(f.Name) {
			log.Debug(fmt.Sprintf("--%s is accepted for kaniko compatibility and has no effect: %s", f.Name, f.Why))
		}
	}
}

// Logging are kaniko's logging flags.
func Logging() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "verbosity", Aliases: []string{"v"}, Value: "info", Usage: "panic, fatal, error, warn, info, debug or trace"},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "text, color or json"},
		&cli.BoolFlag{Name: "log-timestamp", Usage: "timestamp each log line"},
	}
}

// CheckLogging refuses bad logging flag values before anything runs.
func CheckLogging(c *cli.Context) error {
	if _, err := logging.ParseLevel(c.String("verbosity")); err != nil {
		return err
	}
	return OneOf(c, "log-format", "text", "color", "json")
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
		&cli.StringSliceFlag{Name: "registry-client-cert", Usage: "host=cert.pem,key.pem (repeatable)"},
		&cli.StringSliceFlag{Name: "registry-mirror", Usage: "mirror for Docker Hub pulls (repeatable; also $KANIKO_REGISTRY_MIRROR)"},
		&cli.StringSliceFlag{Name: "registry-map", Usage: "original=remapped[;original=remapped] registry for pulls (repeatable; also $KANIKO_REGISTRY_MAP)"},
		&cli.BoolFlag{Name: "skip-default-registry-fallback", Usage: "fail instead of falling back to the original registry when mirrors fail"},
		&cli.IntFlag{Name: "image-download-retry", Usage: "retries of a failed image download, with backoff"},
	}
}

// Push are the flags of the steps that push: kaniko's --insecure,
// --skip-tls-verify and --push-retry.
func Push() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "insecure", Usage: "push over plain HTTP"},
		&cli.BoolFlag{Name: "skip-tls-verify", Usage: "do not verify TLS certificates when pushing"},
		&cli.IntFlag{Name: "push-retry", Usage: "retries of a failed push, with backoff"},
	}
}

// ResultFiles are the flags naming the files a pushing step writes its
// result to: kaniko's digest files and Tekton's IMAGE_URL and IMAGES.
// what is "image" or "index", as the step pushes one or the other.
func ResultFiles(what string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "digest-file", Usage: "write the " + what + " digest here"},
		&cli.StringFlag{Name: "image-name-with-digest-file", Usage: "write repo@digest lines here"},
		&cli.StringFlag{Name: "image-name-tag-with-digest-file", Usage: "write repo:tag@digest lines here"},
		&cli.StringFlag{Name: "image-url-file", Usage: "write the first destination, without digest or newline, here (Tekton IMAGE_URL)"},
		&cli.StringFlag{Name: "images-file", Usage: "write every pushed repository as repo@digest, once each, comma-separated, here (Tekton IMAGES; empty under --no-push)"},
	}
}

// WithResultFiles is opts with the ResultFiles flags' paths set.
func WithResultFiles(c *cli.Context, opts publish.Options) publish.Options {
	opts.DigestFile = c.String("digest-file")
	opts.ImageNameWithDigestFile = c.String("image-name-with-digest-file")
	opts.ImageNameTagWithDigestFile = c.String("image-name-tag-with-digest-file")
	opts.ImageURLFile = c.String("image-url-file")
	opts.ImagesFile = c.String("images-file")
	return opts
}

// PushOptions reads the Pull and Push flags.
func PushOptions(c *cli.Context, userAgent string) (registry.Options, error) {
	opts, err := PullOptions(c, userAgent)
	opts.Insecure, opts.SkipTLSVerify, opts.PushRetry = c.Bool("insecure"), c.Bool("skip-tls-verify"), c.Int("push-retry")
	return opts, err
}

// PullOptions reads the Pull flags, and kaniko's KANIKO_REGISTRY_MIRROR
// and KANIKO_REGISTRY_MAP, which add to them.
func PullOptions(c *cli.Context, userAgent string) (registry.Options, error) {
	certs, err := flagvalue.Pairs("--registry-certificate", "host=value", c.StringSlice("registry-certificate"), true)
	if err != nil {
		return registry.Options{}, err
	}
	clientCerts, err := flagvalue.Pairs("--registry-client-cert", "host=cert,key", c.StringSlice("registry-client-cert"), true)
	if err != nil {
		return registry.Options{}, err
	}
	mirrors := c.StringSlice("registry-mirror")
	if v := os.Getenv("KANIKO_REGISTRY_MIRROR"); v != "" {
		mirrors = append(mirrors, v)
	}
	maps := c.StringSlice("registry-map")
	if v := os.Getenv("KANIKO_REGISTRY_MAP"); v != "" {
		maps = append(maps, v)
	}
	registryMaps, err := RegistryMaps(maps)
	if err != nil {
		return registry.Options{}, err
	}
	return registry.Options{
		InsecurePull:                c.Bool("insecure-pull"),
		InsecureRegistries:          c.StringSlice("insecure-registry"),
		SkipTLSVerifyPull:           c.Bool("skip-tls-verify-pull"),
		SkipTLSVerifyRegistries:     c.StringSlice("skip-tls-verify-registry"),
		RegistryCertificates:        certs,
		RegistryClientCerts:         clientCerts,
		Mirrors:                     mirrors,
		RegistryMaps:                registryMaps,
		SkipDefaultRegistryFallback: c.Bool("skip-default-registry-fallback"),
		ImageDownloadRetry:          c.Int("image-download-retry"),
		UserAgent:                   userAgent,
	}, nil
}

// RegistryMaps reads kaniko's --registry-map values:
// "original=remapped", several joined with ";".
func RegistryMaps(values []string) (map[string][]string, error) {
	if len(values) == 0 {
		return nil, nil
	}
	out := map[string][]string{}
	for _, v := range values {
		for _, pair := range strings.Split(v, ";") {
			if pair == "" {
				continue
			}
			k, val, ok := strings.Cut(pair, "=")
			if !ok || k == "" || val == "" {
				return nil, fmt.Errorf("--registry-map %q: want original=remapped[;original=remapped]", v)
			}
			out[k] = append(out[k], val)
		}
	}
	return out, nil
}
