package job

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-build/slipway/engine/atomicfile"
	"github.com/slipway-build/slipway/engine/attest"
	"github.com/slipway-build/slipway/engine/build"
	"github.com/slipway-build/slipway/engine/registry"
	"github.com/slipway-build/slipway/engine/version"
)

// BuilderID is the provenance's builder.id for slipway-build.
const BuilderID = "https://github.com/slipway-build/slipway/tree/main/steps/build"

// recordingSource remembers the digest of every image the build pulls, for
// the provenance's base images.
type recordingSource struct {
	build.ImageSource
	mu     sync.Mutex
	pulled map[string]bool
}

func (r *recordingSource) Pull(ctx context.Context, ref string, platform v1.Platform) (v1.Image, error) {
	img, err := r.ImageSource.Pull(ctx, ref, platform)
	if err != nil {
		return nil, err
	}
	if d, err := img.Digest(); err == nil {
		repo := ref
		if r, err := name.ParseReference(ref); err == nil {
			repo = r.Context().Name()
		}
		r.mu.Lock()
		r.pulled[repo+"@"+d.String()] = true
		r.mu.Unlock()
	}
	return img, nil
}

func (r *recordingSource) images() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for ref := range r.pulled {
		out = append(out, ref)
	}
	sort.Strings(out)
	return out
}

// attestations makes the SBOM and provenance asked for and attaches them to
// every pushed image; it is publish's AfterPush.
type attestations struct {
	cfg        Config
	client     *registry.Client
	img        v1.Image
	dockerfile string
	contextDir string
	workDir    string
	started    time.Time
	sources    *recordingSource
}

func (a *attestations) afterPush(ctx context.Context, pushed []name.Digest) error {
	digest, err := a.img.Digest()
	if err != nil {
		return err
	}
	type record struct {
		kind, artifactType string
		data               []byte
	}
	var records []record
	if a.cfg.SBOM || a.cfg.SBOMPath != "" {
		pkgs, err := ImagePackages(a.img, attest.WithScratchDir(a.workDir))
		if err != nil {
			return fmt.Errorf("--sbom: %w", err)
		}
		imageName := "image"
		if len(pushed) > 0 {
			imageName = pushed[0].Context().Name()
		} else if len(a.cfg.Publish.Destinations) > 0 {
			if r, err := name.ParseReference(a.cfg.Publish.Destinations[0]); err == nil {
				imageName = r.Context().Name()
			}
		}
		doc, err := attest.SPDX(pkgs, attest.SBOMOptions{Name: imageName, Digest: digest, Tool: "slipway-" + version.Get().Version, Created: time.Now()})
		if err != nil {
			return err
		}
		if a.cfg.SBOMPath != "" {
			if err := atomicfile.WriteFile(a.cfg.SBOMPath, doc, 0o644); err != nil {
				return fmt.Errorf("--sbom-path: %w", err)
			}
		}
		if a.cfg.SBOM {
			records = append(records, record{"SBOM", attest.SPDXArtifactType, doc})
		}
	}
	var provenance *attest.Build
	if a.cfg.Provenance {
		provenance = &attest.Build{
			Digest:         digest,
			BuilderID:      BuilderID,
			BuilderVersion: version.Get().Version,
			Dockerfile:     a.cfg.Dockerfile,
			Context:        a.cfg.Context,
			ContextCommit:  gitCommit(a.contextDir),
			Target:         a.cfg.Target,
			BuildArgs:      argNames(a.cfg.BuildArgs),
			Platform:       a.cfg.CustomPlatform,
			BaseImages:     a.sources.images(),
			Started:        a.started,
			Finished:       time.Now(),
		}
		if data, err := os.ReadFile(a.dockerfile); err == nil {
			sum := sha256.Sum256(data)
			provenance.DockerfileDigest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
		}
		if len(pushed) == 0 {
			a.cfg.Log.Warn("--provenance: nothing was pushed, so there is nothing to attach it to")
		}
	}
	// Each repository gets the attestations once, however many of its tags
	// were pushed: a referrer belongs to the digest in that repository. The
	// provenance's subject names the repository, so it is made per
	// repository.
	var refs []string
	seen := map[string]bool{}
	for _, p := range pushed {
		repo := p.Context().Name()
		if seen[repo] {
			continue
		}
		seen[repo] = true
		repoRecords := records
		if provenance != nil {
			provenance.Image = repo
			st, err := attest.ProvenanceStatement(*provenance)
			if err != nil {
				return err
			}
			repoRecords = append(slices.Clip(records), record{"provenance", attest.InTotoArtifactType, st})
		}
		target := p
		if d, ok := a.client.Reference(p, true).(name.Digest); ok {
			target = d
		}
		for _, r := range repoRecords {
			ref, err := attest.Attach(ctx, target, r.artifactType, r.data, nil, a.client.RemoteOptions(p, true)...)
			if err != nil {
				return err
			}
			a.cfg.Log.Info(fmt.Sprintf("Attached the %s of %s: %s", r.kind, p, ref))
			refs = append(refs, ref.String())
		}
	}
	if a.cfg.AttestationsFile != "" {
		if err := atomicfile.WriteFile(a.cfg.AttestationsFile, []byte(strings.Join(refs, ",")), 0o644); err != nil {
			return fmt.Errorf("--attestations-file: %w", err)
		}
	}
	return nil
}

// resolveDockerfile finds --dockerfile as the build does: as given when it
// exists, else relative to the context.
func resolveDockerfile(p, contextDir string) string {
	if p == "" {
		return filepath.Join(contextDir, "Dockerfile")
	}
	if _, err := os.Stat(p); err == nil || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(contextDir, p)
}

// ImagePackages lists what --sbom catalogues in img.
func ImagePackages(img v1.Image, opts ...attest.PackagesOption) ([]attest.Package, error) {
	return attest.Packages(img, opts...)
}

// argNames are the names of --build-arg values, never the values.
func argNames(args []string) []string {
	var names []string
	for _, a := range args {
		n, _, _ := strings.Cut(a, "=")
		names = append(names, n)
	}
	return names
}

// gitCommit is the commit checked out in dir, when dir is a git work tree
// (a git context, or a workspace a git-clone step filled).
func gitCommit(dir string) string {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return ""
	}
	head, err := repo.Head()
	if err != nil {
		return ""
	}
	return head.Hash().String()
}
