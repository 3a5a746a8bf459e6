package attest

import (
	"encoding/json"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The in-toto and SLSA identifiers of a provenance statement.
const (
	StatementType       = "https://in-toto.io/Statement/v1"
	SLSAProvenanceV1    = "https://slsa.dev/provenance/v1"
	BuildTypeDockerfile = "https://github.com/slipway-build/slipway/blob/main/engine/attest/BUILDTYPE.md"
)

// Statement is an in-toto v1 Statement carrying a SLSA v1 provenance
// predicate (slsa.dev/spec/v1.0/provenance).
type Statement struct {
	Type          string     `json:"_type"`
	Subject       []Subject  `json:"subject"`
	PredicateType string     `json:"predicateType"`
	Predicate     Provenance `json:"predicate"`
}

// Subject names an artifact by digest.
type Subject struct {
	Name   string            `json:"name,omitempty"`
	URI    string            `json:"uri,omitempty"`
	Digest map[string]string `json:"digest"`
}

// Provenance is SLSA v1's predicate.
type Provenance struct {
	BuildDefinition BuildDefinition `json:"buildDefinition"`
	RunDetails      RunDetails      `json:"runDetails"`
}

// BuildDefinition says what was built from what.
type BuildDefinition struct {
	BuildType            string         `json:"buildType"`
	ExternalParameters   map[string]any `json:"externalParameters"`
	InternalParameters   map[string]any `json:"internalParameters,omitempty"`
	ResolvedDependencies []Subject      `json:"resolvedDependencies,omitempty"`
}

// RunDetails says who built it and when.
type RunDetails struct {
	Builder  Builder  `json:"builder"`
	Metadata Metadata `json:"metadata"`
}

// Builder is the builder's identity.
type Builder struct {
	ID      string            `json:"id"`
	Version map[string]string `json:"version,omitempty"`
}

// Metadata holds the build's times.
type Metadata struct {
	InvocationID string     `json:"invocationId,omitempty"`
	StartedOn    *time.Time `json:"startedOn,omitempty"`
	FinishedOn   *time.Time `json:"finishedOn,omitempty"`
}

// Build describes one image build for ProvenanceStatement.
type Build struct {
	// Image is the repository pushed to, Digest the image's digest.
	Image  string
	Digest v1.Hash
	// BuilderID identifies the builder (e.g. the executor image, or a CI
	// workflow's URL); BuilderVersion is Slipway's version.
	BuilderID, BuilderVersion string
	// Dockerfile is its path in the context, DockerfileDigest its sha256.
	Dockerfile       string
	DockerfileDigest v1.Hash
	// Context is the build context's source; ContextCommit the git commit
	// when it is a git repository.
	Context, ContextCommit string
	// Target is the stage built; BuildArgs the names of the build args
	// given (never their values, which may be secrets).
	Target    string
	BuildArgs []string
	// Platform is the target platform.
	Platform string
	// BaseImages are the images the build pulled, as repo@digest.
	BaseImages []string
	// Started and Finished bound the build.
	Started, Finished time.Time
	// InvocationID identifies the run (a TaskRun, a workflow run).
	InvocationID string
}

// ProvenanceStatement writes b as a SLSA v1 provenance in-toto Statement.
func ProvenanceStatement(b Build) ([]byte, error) {
	ext := map[string]any{}
	set := func(k string, v string) {
		if v != "" {
			ext[k] = v
		}
	}
	set("context", b.Context)
	set("dockerfile", b.Dockerfile)
	set("target", b.Target)
	set("platform", b.Platform)
	if len(b.BuildArgs) > 0 {
		ext["buildArgs"] = b.BuildArgs
	}
	var deps []Subject
	if b.DockerfileDigest.Hex != "" {
		deps = append(deps, Subject{Name: "Dockerfile", URI: b.Dockerfile, Digest: map[string]string{b.DockerfileDigest.Algorithm: b.DockerfileDigest.Hex}})
	}
	if b.ContextCommit != "" {
		deps = append(deps, Subject{URI: b.Context, Digest: map[string]string{"gitCommit": b.ContextCommit}})
	}
	for _, ref := range b.BaseImages {
		repo, digest, ok := cutDigest(ref)
		if !ok {
			continue
		}
		deps = append(deps, Subject{URI: "pkg:docker/" + repo + "@" + digest.String(), Digest: map[string]string{digest.Algorithm: digest.Hex}})
	}
	st := Statement{
		Type:          StatementType,
		Subject:       []Subject{{Name: b.Image, Digest: map[string]string{b.Digest.Algorithm: b.Digest.Hex}}},
		PredicateType: SLSAProvenanceV1,
		Predicate: Provenance{
			BuildDefinition: BuildDefinition{
				BuildType:            BuildTypeDockerfile,
				ExternalParameters:   ext,
				ResolvedDependencies: deps,
			},
			RunDetails: RunDetails{
				Builder:  Builder{ID: b.BuilderID, Version: map[string]string{"slipway": b.BuilderVersion}},
				Metadata: Metadata{InvocationID: b.InvocationID, StartedOn: timePtr(b.Started), FinishedOn: timePtr(b.Finished)},
			},
		},
	}
	return json.MarshalIndent(st, "", "  ")
}

func cutDigest(ref string) (string, v1.Hash, bool) {
	for i := len(ref) - 1; i >= 0; i-- {
		if ref[i] == '@' {
			h, err := v1.NewHash(ref[i+1:])
			return ref[:i], h, err == nil
		}
	}
	return "", v1.Hash{}, false
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
