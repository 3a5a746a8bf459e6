package attest

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	spdxjson "github.com/spdx/tools-golang/json"
)

func TestAttachAndFetch(t *testing.T) {
	for _, api := range []bool{false, true} {
		name := "referrers tag schema"
		if api {
			name = "referrers API"
		}
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(registry.New(registry.WithReferrersSupport(api)))
			defer srv.Close()
			ref, err := nameParse(strings.TrimPrefix(srv.URL, "http://") + "/app:1")
			if err != nil {
				t.Fatal(err)
			}
			img, err := random.Image(64, 1)
			if err != nil {
				t.Fatal(err)
			}
			if err := remote.Write(ref, img); err != nil {
				t.Fatal(err)
			}
			d, _ := img.Digest()
			subject := ref.Context().Digest(d.String())
			ctx := context.Background()
			if _, err := Attach(ctx, subject, SPDXArtifactType, []byte(`{"spdxVersion":"SPDX-2.3"}`), nil); err != nil {
				t.Fatal(err)
			}
			if _, err := Attach(ctx, subject, InTotoArtifactType, []byte(`{"_type":"x"}`), map[string]string{"a": "b"}); err != nil {
				t.Fatal(err)
			}
			for at, want := range map[string]string{SPDXArtifactType: "SPDX-2.3", InTotoArtifactType: `"_type"`} {
				recs, err := Fetch(ctx, subject, at)
				if err != nil {
					t.Fatal(err)
				}
				if len(recs) != 1 || !strings.Contains(string(recs[0]), want) {
					t.Errorf("%s: got %q", at, recs)
				}
			}
			if !api {
				// The tag schema: an index tagged sha256-<hex>.
				if _, err := remote.Index(ref.Context().Tag("sha256-" + d.Hex)); err != nil {
					t.Errorf("no referrers tag: %v", err)
				}
			}
		})
	}
}

func nameParse(s string) (name.Reference, error) { return name.ParseReference(s) }

func TestGoPackagesAndSPDX(t *testing.T) {
	// A small Go binary of this module (test binaries record no
	// dependencies): put it in an image and find its modules.
	exe := filepath.Join(t.TempDir(), "app")
	build := exec.Command("go", "build", "-o", exe, "./steps/image/cabundle")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	layer, err := tarball.LayerFromFile(writeTar(t, exe))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(emptyImage(t), layer)
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := GoPackages(img)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]Package{}
	for _, p := range pkgs {
		found[p.Name] = p
	}
	for _, want := range []string{"github.com/slipway-build/slipway", "golang.org/x/crypto/x509roots/fallback", "stdlib"} {
		p, ok := found[want]
		if !ok || (p.Version == "" && want != "github.com/slipway-build/slipway") || p.Location != "/bin/app" || !strings.HasPrefix(p.PURL, "pkg:golang/") {
			t.Errorf("%s: got %+v", want, p)
		}
	}
	d, _ := img.Digest()
	doc, err := SPDX(pkgs, SBOMOptions{Name: "registry.example/app", Digest: d, Tool: "slipway-test", Created: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := spdxjson.Read(strings.NewReader(string(doc)))
	if err != nil {
		t.Fatalf("the SPDX library cannot read it back: %v", err)
	}
	if parsed.SPDXVersion != "SPDX-2.3" || len(parsed.Packages) < 3 {
		t.Errorf("version %s, %d packages", parsed.SPDXVersion, len(parsed.Packages))
	}
}

func TestProvenanceStatement(t *testing.T) {
	d := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("a", 64)}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	b, err := ProvenanceStatement(Build{
		Image: "registry.example/app", Digest: d, BuilderID: "https://example/builder", BuilderVersion: "v1.2.3",
		Dockerfile: "Dockerfile", DockerfileDigest: d, Context: "git://example/repo.git", ContextCommit: "0123",
		BuildArgs: []string{"TOKEN"}, BaseImages: []string{"debian:12@sha256:" + strings.Repeat("b", 64)},
		Started: start, Finished: start.Add(time.Minute),
	})
	if err != nil {
		t.Fatal(err)
	}
	var st Statement
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st.Type != StatementType || st.PredicateType != SLSAProvenanceV1 || st.Subject[0].Digest["sha256"] != d.Hex {
		t.Errorf("statement header: %+v", st)
	}
	if len(st.Predicate.BuildDefinition.ResolvedDependencies) != 3 {
		t.Errorf("dependencies: %+v", st.Predicate.BuildDefinition.ResolvedDependencies)
	}
	if st.Predicate.RunDetails.Metadata.FinishedOn.Sub(*st.Predicate.RunDetails.Metadata.StartedOn) != time.Minute {
		t.Errorf("times: %+v", st.Predicate.RunDetails.Metadata)
	}
	if strings.Contains(string(b), "secret") {
		t.Error("build arg values must never appear")
	}
}
