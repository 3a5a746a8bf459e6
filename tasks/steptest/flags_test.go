package steptest

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/slipway-build/slipway/tasks/argv"
)

// The flags below are the part of slipway-build's, slipway-warm's and slipway-index's
// command lines that the published definitions rely on: kaniko's executor
// and warmer flags plus --image-url-file, --images-file,
// --artifact-outputs-file, --tls-verify and the attestation flags (--sbom,
// --provenance, --attestations-file). They are
// declared here, not imported, because the step binaries are written
// elsewhere; a definition that passes anything else fails these tests.

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(v string) error { *l = append(*l, v); return nil }

type buildFlags struct {
	dockerfile, context, digestFile, urlFile, imagesFile string
	target, cacheRepo, platform, cacheDir                string
	attestationsFile, artifactOutputsFile                string
	contextSubPath                                       string
	cache, reproducible, sbom, provenance                bool
	noPush, tlsVerify                                    bool
	destinations, buildArgs                              list
}

func parseBuild(args []string) (*buildFlags, error) {
	args, err := argv.ExpandListTail(args, "--build-arg", "--destination")
	if err != nil {
		return nil, err
	}
	var f buildFlags
	fs := flag.NewFlagSet("slipway-build", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.dockerfile, "dockerfile", "Dockerfile", "")
	fs.StringVar(&f.context, "context", "/workspace/", "")
	fs.StringVar(&f.digestFile, "digest-file", "", "")
	fs.StringVar(&f.urlFile, "image-url-file", "", "")
	fs.StringVar(&f.imagesFile, "images-file", "", "")
	fs.StringVar(&f.target, "target", "", "")
	fs.StringVar(&f.cacheRepo, "cache-repo", "", "")
	fs.StringVar(&f.platform, "custom-platform", "", "")
	fs.StringVar(&f.cacheDir, "cache-dir", "/cache", "")
	fs.BoolVar(&f.cache, "cache", false, "")
	fs.BoolVar(&f.reproducible, "reproducible", false, "")
	fs.BoolVar(&f.sbom, "sbom", false, "")
	fs.BoolVar(&f.provenance, "provenance", false, "")
	fs.StringVar(&f.attestationsFile, "attestations-file", "", "")
	fs.StringVar(&f.artifactOutputsFile, "artifact-outputs-file", "", "")
	fs.StringVar(&f.contextSubPath, "context-sub-path", "", "")
	fs.BoolVar(&f.noPush, "no-push", false, "")
	fs.BoolVar(&f.tlsVerify, "tls-verify", true, "")
	fs.Var(&f.destinations, "destination", "")
	fs.Var(&f.buildArgs, "build-arg", "")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("positional arguments left after parsing: %q", fs.Args())
	}
	return &f, nil
}

type warmFlags struct {
	cacheDir, dockerfile string
	images, buildArgs    list
	cacheTTL             string
}

func parseWarm(args []string) (*warmFlags, error) {
	args, err := argv.ExpandListTail(args, "--image", "--build-arg")
	if err != nil {
		return nil, err
	}
	var f warmFlags
	fs := flag.NewFlagSet("slipway-warm", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.cacheDir, "cache-dir", "/cache", "")
	fs.StringVar(&f.dockerfile, "dockerfile", "", "")
	fs.StringVar(&f.cacheTTL, "cache-ttl", "", "")
	fs.Var(&f.images, "image", "")
	fs.Var(&f.buildArgs, "build-arg", "")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("positional arguments left after parsing: %q", fs.Args())
	}
	return &f, nil
}

type indexFlags struct {
	destinations, images, platforms, insecureRegistries list
	format, digestFile, urlFile, imagesFile             string
}

// parseIndex mirrors the slipway-index flags the index Task and the Argo
// index template pass (steps/internal/indexcmd): its list flags, its
// result files and the registry flags EXTRA_ARGS examples name.
func parseIndex(args []string) (*indexFlags, error) {
	args, err := argv.ExpandListTail(args, "--image", "--platform", "--destination")
	if err != nil {
		return nil, err
	}
	var f indexFlags
	fs := flag.NewFlagSet("slipway-index", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.format, "format", "oci", "")
	fs.StringVar(&f.digestFile, "digest-file", "", "")
	fs.StringVar(&f.urlFile, "image-url-file", "", "")
	fs.StringVar(&f.imagesFile, "images-file", "", "")
	fs.Var(&f.destinations, "destination", "")
	fs.Var(&f.images, "image", "")
	fs.Var(&f.platforms, "platform", "")
	fs.Var(&f.insecureRegistries, "insecure-registry", "")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("positional arguments left after parsing: %q", fs.Args())
	}
	return &f, nil
}
