package step

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	spdxjson "github.com/spdx/tools-golang/json"
	spdx "github.com/spdx/tools-golang/spdx/v2/v2_3"

	"github.com/slipway-build/slipway/e2e/harness"
	"github.com/slipway-build/slipway/engine/attest"
)

// A Debian build that changes the dpkg database (a package made and
// installed offline with dpkg-deb and dpkg -i): the SBOM lists exactly what
// dpkg-query, run in the built image, lists.
const debianSBOMDockerfile = `ARG BASE
FROM ${BASE}
RUN mkdir -p /tmp/pkg/DEBIAN && printf 'Package: slipway-sbom-test\nVersion: 1.2.3-4\nArchitecture: all\nMaintainer: CI <ci@localhost>\nDescription: a test package\n' > /tmp/pkg/DEBIAN/control \
 && dpkg-deb --build /tmp/pkg /tmp/pkg.deb && dpkg -i /tmp/pkg.deb && rm -rf /tmp/pkg /tmp/pkg.deb
RUN dpkg-query -W -f '${Package} ${Version}\n' > /dpkg-query.txt
`

func TestSBOMDebian(t *testing.T) {
	reg := harness.StartRegistry(t)
	base := harness.Debian(t, reg)
	ctxDir := writeContext(t, map[string]string{"Dockerfile": debianSBOMDockerfile})
	out := t.TempDir()
	ref := reg.Host + "/team/debian-sbom:1"
	r := slipway(t, nil, "--insecure-registry", reg.Host, "--context", "dir://"+ctxDir,
		"--build-arg", "BASE="+base, "--destination", ref,
		"--sbom", "--sbom-path", filepath.Join(out, "sbom.json"), "--provenance",
		"--attestations-file", filepath.Join(out, "attestations"), "--digest-file", filepath.Join(out, "digest"))
	if r.code != 0 {
		t.Fatalf("slipway-build: exit %d\n%s", r.code, r.stderr)
	}
	digest := readFile(t, filepath.Join(out, "digest"))
	subject, err := name.NewDigest(reg.Host + "/team/debian-sbom@" + digest)
	if err != nil {
		t.Fatal(err)
	}

	// What dpkg-query said inside the image.
	img, err := remote.Image(subject)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSpace(imageFile(t, img, "dpkg-query.txt")), "\n")
	sort.Strings(want)

	// The SBOM attached and the one written agree, and list the same.
	sboms, err := attest.Fetch(context.Background(), subject, attest.SPDXArtifactType)
	if err != nil || len(sboms) != 1 {
		t.Fatalf("attached SBOMs: %d, %v", len(sboms), err)
	}
	if written := readFile(t, filepath.Join(out, "sbom.json")); written != string(sboms[0]) {
		t.Error("--sbom-path differs from the attached SBOM")
	}
	doc, err := spdxjson.Read(strings.NewReader(string(sboms[0])))
	if err != nil {
		t.Fatalf("the SBOM does not parse: %v", err)
	}
	got := debPackages(doc)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("SBOM's deb packages differ from dpkg-query's:\nSBOM: %q\ndpkg-query: %q", got, want)
	}
	if !slices.Contains(got, "slipway-sbom-test 1.2.3-4") || len(got) < 50 {
		t.Errorf("the SBOM lists %d deb packages, without the one the build installed", len(got))
	}

	// The provenance names the base image by digest, the build arg by name.
	provs, err := attest.Fetch(context.Background(), subject, attest.InTotoArtifactType)
	if err != nil || len(provs) != 1 {
		t.Fatalf("attached provenance: %d, %v", len(provs), err)
	}
	var st attest.Statement
	if err := json.Unmarshal(provs[0], &st); err != nil {
		t.Fatal(err)
	}
	baseDigest := remoteDigest(t, reg, base)
	deps, _ := json.Marshal(st.Predicate.BuildDefinition.ResolvedDependencies)
	if !strings.Contains(string(deps), baseDigest) {
		t.Errorf("the provenance lacks the base image %s: %s", baseDigest, deps)
	}
	if args, _ := json.Marshal(st.Predicate.BuildDefinition.ExternalParameters["buildArgs"]); string(args) != `["BASE"]` {
		t.Errorf("buildArgs = %s, want the names only", args)
	}
	if st.Predicate.RunDetails.Metadata.StartedOn == nil || st.Predicate.RunDetails.Metadata.FinishedOn == nil {
		t.Error("the provenance lacks its times")
	}
	if refs := strings.Split(readFile(t, filepath.Join(out, "attestations")), ","); len(refs) != 2 {
		t.Errorf("attestations file: %q", refs)
	}
}

func TestSBOMGoBinary(t *testing.T) {
	reg := harness.StartRegistry(t)
	ctxDir := writeContext(t, map[string]string{"Dockerfile": "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\n"})
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(ctxDir, "app"), "../../steps/image/cabundle")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	doc := buildSBOM(t, reg, ctxDir, "team/go-sbom")
	found := map[string]string{}
	for _, p := range doc.Packages {
		found[p.PackageName] = p.PackageVersion
	}
	for _, mod := range []string{"github.com/slipway-build/slipway", "golang.org/x/crypto/x509roots/fallback", "stdlib"} {
		if _, ok := found[mod]; !ok {
			t.Errorf("the SBOM lacks the module %s: %v", mod, found)
		}
	}
	if !strings.HasPrefix(found["stdlib"], "go1.") {
		t.Errorf("stdlib version %q", found["stdlib"])
	}
}

// buildSBOM builds ctxDir into the registry's repository repo with --sbom
// and returns the SBOM attached to the image.
func buildSBOM(t *testing.T, reg *harness.Registry, ctxDir, repo string) *spdx.Document {
	t.Helper()
	out := t.TempDir()
	r := slipway(t, nil, "--insecure-registry", reg.Host, "--context", "dir://"+ctxDir,
		"--destination", reg.Host+"/"+repo+":1", "--sbom", "--digest-file", filepath.Join(out, "digest"))
	if r.code != 0 {
		t.Fatalf("slipway-build: exit %d\n%s", r.code, r.stderr)
	}
	subject, err := name.NewDigest(reg.Host + "/" + repo + "@" + readFile(t, filepath.Join(out, "digest")))
	if err != nil {
		t.Fatal(err)
	}
	sboms, err := attest.Fetch(context.Background(), subject, attest.SPDXArtifactType)
	if err != nil || len(sboms) != 1 {
		t.Fatalf("attached SBOMs: %d, %v", len(sboms), err)
	}
	doc, err := spdxjson.Read(strings.NewReader(string(sboms[0])))
	if err != nil {
		t.Fatalf("the SBOM does not parse: %v", err)
	}
	return doc
}

func debPackages(doc *spdx.Document) []string {
	var out []string
	for _, p := range doc.Packages {
		for _, ref := range p.PackageExternalReferences {
			if ref.RefType == "purl" && strings.HasPrefix(ref.Locator, "pkg:deb/") {
				out = append(out, p.PackageName+" "+p.PackageVersion)
			}
		}
	}
	sort.Strings(out)
	return out
}

// imageFile reads one file of the image's flattened filesystem.
func imageFile(t *testing.T, img v1.Image, path string) string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("the image has no %s", path)
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(hdr.Name, "/") == path {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
}

// TestProvenancePerRepository pushes one image to two tags of one
// repository and a tag of another: each repository gets one provenance
// statement naming it, and ATTESTATIONS lists each attachment once.
func TestProvenancePerRepository(t *testing.T) {
	reg := harness.StartRegistry(t)
	base := harness.Busybox(t, reg)
	ctxDir := writeContext(t, map[string]string{"Dockerfile": "ARG BASE\nFROM ${BASE}\nRUN echo hi > /hi\n"})
	out := t.TempDir()
	r := slipway(t, nil, "--insecure-registry", reg.Host, "--context", "dir://"+ctxDir, "--build-arg", "BASE="+base,
		"--destination", reg.Host+"/team/app:1", "--destination", reg.Host+"/team/app:latest", "--destination", reg.Host+"/team/mirror:1",
		"--provenance", "--attestations-file", filepath.Join(out, "attestations"), "--digest-file", filepath.Join(out, "digest"))
	if r.code != 0 {
		t.Fatalf("slipway-build: exit %d\n%s", r.code, r.stderr)
	}
	refs := strings.Split(readFile(t, filepath.Join(out, "attestations")), ",")
	if len(refs) != 2 || refs[0] == refs[1] {
		t.Errorf("attestations file lists %q, want one provenance per repository (team/app, team/mirror)", refs)
	}
	for _, repo := range []string{"team/app", "team/mirror"} {
		subject, err := name.NewDigest(reg.Host + "/" + repo + "@" + readFile(t, filepath.Join(out, "digest")))
		if err != nil {
			t.Fatal(err)
		}
		statements, err := attest.Fetch(context.Background(), subject, attest.InTotoArtifactType)
		if err != nil || len(statements) != 1 {
			t.Fatalf("%s: %d provenance statements attached (%v), want 1", repo, len(statements), err)
		}
		var st struct {
			Subject []struct{ Name string } `json:"subject"`
		}
		if err := json.Unmarshal(statements[0], &st); err != nil || len(st.Subject) != 1 || st.Subject[0].Name != reg.Host+"/"+repo {
			t.Errorf("%s: provenance subject %+v (%v), want %s", repo, st.Subject, err, reg.Host+"/"+repo)
		}
	}
}
