// Command supplychain attests and signs a Slipway release: `make release`
// runs it after the images are pushed. It is a release tool, not a step:
// it is never put into the executor image, so that cosign's dependencies
// stay out of slipway-build.
//
//	supplychain attest --image REPO@DIGEST [--source-commit C] ...
//	    SPDX 2.3 SBOM and SLSA v1 provenance, attached as OCI 1.1 referrers
//	supplychain sign --image REPO@DIGEST (--key cosign.key | --keyless [KEYLESS FLAGS])
//	    a cosign signature of the digest (`cosign verify` accepts it)
//	supplychain sign-blob --file SHA256SUMS (--key cosign.key | --keyless [KEYLESS FLAGS])
//	    SHA256SUMS.sig (and, keyless, SHA256SUMS.pem and the Sigstore
//	    bundle SHA256SUMS.sigstore.json, which `cosign verify-blob --bundle` reads)
//	supplychain verify --key cosign.pub [--image REF]... [--blob FILE]...
//	supplychain generate-key-pair --output-key-prefix DIR/cosign
//
// Keys are cosign's: an encrypted private key whose password is in
// COSIGN_PASSWORD (empty for none), and its PEM public key. --keyless signs
// with a Fulcio certificate for the ambient OIDC identity (a GitHub Actions
// workflow with `id-token: write`) and records the signature in Rekor. Its
// flags are cosign's own, with cosign's defaults (Sigstore's public
// instance): --fulcio-url, --rekor-url, --oidc-issuer, --identity-token
// (a token, or a file holding one, instead of the ambient identity) and
// --trusted-root (the trusted_root.json that checks Fulcio's certificate
// and its SCT; by default Sigstore's, through TUF).
package main

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/options"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/sign"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	_ "github.com/sigstore/cosign/v2/pkg/providers/all" // the ambient OIDC identities keyless signing reads (GitHub Actions among them)
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/urfave/cli/v2"

	"github.com/slipway-build/slipway/engine/attest"
	"github.com/slipway-build/slipway/engine/version"
)

func main() {
	if err := newApp().Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "supplychain:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	return &cli.App{
		Name:  "supplychain",
		Usage: "attest and sign the artifacts of a Slipway release",
		Commands: []*cli.Command{
			{Name: "attest", Usage: "attach an SPDX SBOM and a SLSA provenance statement to an image", Flags: attestFlags(), Action: attestAction},
			{Name: "sign", Usage: "sign image digests with cosign", Flags: signFlags(&cli.StringSliceFlag{Name: "image", Required: true, Usage: "REPO@DIGEST to sign (repeatable)"}), Action: signAction},
			{Name: "sign-blob", Usage: "sign a file with cosign", Flags: signFlags(&cli.StringFlag{Name: "file", Required: true, Usage: "the file to sign; FILE.sig (and keyless, FILE.sigstore.json) are written beside it"}), Action: signBlobAction},
			{Name: "verify", Usage: "verify image and file signatures made with a key", Flags: []cli.Flag{
				&cli.StringFlag{Name: "key", Required: true, Usage: "cosign public key"},
				&cli.StringSliceFlag{Name: "image", Usage: "image to verify (repeatable)"},
				&cli.StringSliceFlag{Name: "blob", Usage: "file whose FILE.sig to verify (repeatable)"},
			}, Action: verifyAction},
			{Name: "generate-key-pair", Usage: "write PREFIX.key (encrypted with COSIGN_PASSWORD) and PREFIX.pub", Flags: []cli.Flag{
				&cli.StringFlag{Name: "output-key-prefix", Value: "cosign"},
			}, Action: generateAction},
		},
	}
}

func attestFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "image", Required: true, Usage: "REPO@DIGEST to attest (repeatable)"},
		&cli.StringFlag{Name: "builder-id", Value: "https://github.com/slipway-build/slipway/blob/main/Makefile#release", Usage: "the provenance's builder id (a CI run's URL in CI)"},
		&cli.StringFlag{Name: "source", Value: "git+https://github.com/slipway-build/slipway.git", Usage: "the source repository"},
		&cli.StringFlag{Name: "source-commit", Usage: "the commit released"},
		&cli.StringFlag{Name: "target", Usage: "the Dockerfile target built"},
		&cli.StringFlag{Name: "invocation-id", Usage: "the run's id"},
		&cli.TimestampFlag{Name: "started", Layout: time.RFC3339, Usage: "when the build started (RFC 3339)"},
		&cli.TimestampFlag{Name: "finished", Layout: time.RFC3339, Usage: "when it finished (RFC 3339; default now)"},
	}
}

func attestAction(c *cli.Context) error {
	ctx := c.Context
	finished := time.Now()
	if t := c.Timestamp("finished"); t != nil {
		finished = *t
	}
	var started time.Time
	if t := c.Timestamp("started"); t != nil {
		started = *t
	}
	for _, s := range c.StringSlice("image") {
		d, err := name.NewDigest(s)
		if err != nil {
			return fmt.Errorf("--image %s: want REPO@sha256:…: %w", s, err)
		}
		img, err := remote.Image(d, remote.WithAuthFromKeychain(authn.DefaultKeychain))
		if err != nil {
			return err
		}
		pkgs, err := attest.Packages(img)
		if err != nil {
			return fmt.Errorf("%s: %w", d, err)
		}
		h, err := v1.NewHash(d.DigestStr())
		if err != nil {
			return err
		}
		sbom, err := attest.SPDX(pkgs, attest.SBOMOptions{Name: d.Context().Name(), Digest: h, Tool: "slipway-" + version.Get().Version, Created: finished})
		if err != nil {
			return err
		}
		prov, err := attest.ProvenanceStatement(attest.Build{
			Image: d.Context().Name(), Digest: h,
			BuilderID: c.String("builder-id"), BuilderVersion: version.Get().Version,
			Dockerfile: "steps/image/Dockerfile", Target: c.String("target"),
			Context: c.String("source"), ContextCommit: c.String("source-commit"),
			Started: started, Finished: finished, InvocationID: c.String("invocation-id"),
		})
		if err != nil {
			return err
		}
		for _, r := range []struct {
			kind, artifactType string
			record             []byte
		}{{"SBOM", attest.SPDXArtifactType, sbom}, {"provenance", attest.InTotoArtifactType, prov}} {
			ref, err := attest.Attach(ctx, d, r.artifactType, r.record, map[string]string{"org.opencontainers.image.created": finished.UTC().Format(time.RFC3339)})
			if err != nil {
				return err
			}
			fmt.Printf("%s of %s: %s\n", r.kind, d, ref)
		}
	}
	return nil
}

func signFlags(target cli.Flag) []cli.Flag {
	return []cli.Flag{
		target,
		&cli.StringFlag{Name: "key", Usage: "cosign private key (password in COSIGN_PASSWORD)"},
		&cli.BoolFlag{Name: "keyless", Usage: "sign with Fulcio and Rekor, for the ambient OIDC identity (CI)"},
		&cli.StringFlag{Name: "fulcio-url", Value: options.DefaultFulcioURL, Usage: "keyless: the Fulcio certificate authority"},
		&cli.StringFlag{Name: "rekor-url", Value: options.DefaultRekorURL, Usage: "keyless: the Rekor transparency log"},
		&cli.StringFlag{Name: "oidc-issuer", Value: options.DefaultOIDCIssuerURL, Usage: "keyless: the OIDC issuer asked for a token when there is neither --identity-token nor an ambient identity"},
		&cli.StringFlag{Name: "identity-token", Usage: "keyless: an OIDC identity token, or a file holding one (default: the ambient identity, e.g. GitHub Actions')"},
		&cli.StringFlag{Name: "trusted-root", Usage: "keyless: a Sigstore trusted_root.json for Fulcio's certificate and SCT (default: Sigstore's, through TUF)"},
	}
}

// keylessFlags are the flags that only --keyless reads.
var keylessFlags = []string{"fulcio-url", "rekor-url", "oidc-issuer", "identity-token", "trusted-root"}

// keyOpts are cosign's options for --key or --keyless, and whether the
// signature goes to the Rekor transparency log (keyless only: a local key
// release is for a registry Rekor cannot see).
func keyOpts(c *cli.Context) (options.KeyOpts, bool, error) {
	key, keyless := c.String("key"), c.Bool("keyless")
	switch {
	case key != "" && keyless:
		return options.KeyOpts{}, false, fmt.Errorf("--key and --keyless exclude each other")
	case key != "":
		for _, f := range keylessFlags {
			if c.IsSet(f) {
				return options.KeyOpts{}, false, fmt.Errorf("--%s is for --keyless, not --key", f)
			}
		}
		return options.KeyOpts{KeyRef: key, PassFunc: envPassword, SkipConfirmation: true}, false, nil
	case keyless:
		ko := options.KeyOpts{
			FulcioURL: c.String("fulcio-url"), RekorURL: c.String("rekor-url"),
			OIDCIssuer: c.String("oidc-issuer"), OIDCClientID: "sigstore",
			IDToken: c.String("identity-token"), SkipConfirmation: true,
		}
		// As `cosign sign` does: Fulcio's certificate, and the SCT embedded
		// in it, are checked against the trusted root before anything is
		// signed with it.
		if tr := c.String("trusted-root"); tr != "" {
			m, err := root.NewTrustedRootFromPath(tr)
			if err != nil {
				return options.KeyOpts{}, false, fmt.Errorf("--trusted-root %s: %w", tr, err)
			}
			ko.TrustedMaterial = m
		} else if os.Getenv("SIGSTORE_CT_LOG_PUBLIC_KEY_FILE") != "" {
			// cosign's own override of the CT log key: no TUF then.
		} else if m, err := cosign.TrustedRoot(); err == nil {
			ko.TrustedMaterial = m
		} else {
			// cosign goes on with TUF's individual targets then; so do we.
			fmt.Fprintf(os.Stderr, "supplychain: no trusted_root.json from Sigstore's TUF repository (%v): checking Fulcio's SCT with TUF's CT log keys\n", err)
		}
		return ko, true, nil
	}
	return options.KeyOpts{}, false, fmt.Errorf("give --key FILE or --keyless")
}

func envPassword(bool) ([]byte, error) { return []byte(os.Getenv("COSIGN_PASSWORD")), nil }

func signAction(c *cli.Context) error {
	ko, tlog, err := keyOpts(c)
	if err != nil {
		return err
	}
	ro := &options.RootOptions{Timeout: options.DefaultTimeout}
	so := options.SignOptions{Upload: true, TlogUpload: tlog, SkipConfirmation: true}
	for _, img := range c.StringSlice("image") {
		if _, err := name.NewDigest(img); err != nil {
			return fmt.Errorf("--image %s: sign digests, not tags: %w", img, err)
		}
	}
	if err := sign.SignCmd(ro, ko, so, c.StringSlice("image")); err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	for _, img := range c.StringSlice("image") {
		fmt.Printf("signed %s\n", img)
	}
	return nil
}

func signBlobAction(c *cli.Context) error {
	ko, tlog, err := keyOpts(c)
	if err != nil {
		return err
	}
	file := c.String("file")
	cert := ""
	if c.Bool("keyless") {
		// A Sigstore bundle (certificate, signature, Rekor entry with its
		// inclusion proof), what the name .sigstore.json promises.
		ko.BundlePath = file + ".sigstore.json"
		ko.NewBundleFormat = true
		cert = file + ".pem"
	}
	ro := &options.RootOptions{Timeout: options.DefaultTimeout}
	if _, err := sign.SignBlobCmd(ro, ko, file, true, file+".sig", cert, tlog); err != nil {
		return fmt.Errorf("signing %s: %w", file, err)
	}
	fmt.Printf("signed %s: %s.sig\n", file, file)
	return nil
}

func verifyAction(c *cli.Context) error {
	ctx := c.Context
	pem, err := os.ReadFile(c.String("key"))
	if err != nil {
		return err
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pem)
	if err != nil {
		return fmt.Errorf("%s: %w", c.String("key"), err)
	}
	verifier, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return err
	}
	for _, s := range c.StringSlice("image") {
		ref, err := name.ParseReference(s)
		if err != nil {
			return err
		}
		sigs, _, err := cosign.VerifyImageSignatures(ctx, ref, &cosign.CheckOpts{
			SigVerifier: verifier, IgnoreTlog: true, ClaimVerifier: cosign.SimpleClaimVerifier,
		})
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
		fmt.Printf("verified %s: %d signature(s)\n", s, len(sigs))
	}
	for _, f := range c.StringSlice("blob") {
		if err := verifyBlob(ctx, verifier, f); err != nil {
			return err
		}
		fmt.Printf("verified %s\n", f)
	}
	return nil
}

func verifyBlob(ctx context.Context, v signature.Verifier, file string) error {
	b64, err := os.ReadFile(file + ".sig")
	if err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b64)))
	if err != nil {
		return fmt.Errorf("%s.sig: %w", file, err)
	}
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := v.VerifySignature(bytes.NewReader(sig), f); err != nil {
		return fmt.Errorf("%s: the signature in %s.sig does not verify: %w", file, file, err)
	}
	return nil
}

func generateAction(c *cli.Context) error {
	keys, err := cosign.GenerateKeyPair(envPassword)
	if err != nil {
		return err
	}
	prefix := c.String("output-key-prefix")
	if err := os.MkdirAll(filepath.Dir(prefix), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(prefix+".key", keys.PrivateBytes, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(prefix+".pub", keys.PublicBytes, 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s.key and %s.pub\n", prefix, prefix)
	return nil
}
