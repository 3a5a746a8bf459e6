package index

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway-build/slipway/engine/registry"
)

func entry(t *testing.T, ref string, p v1.Platform) Entry {
	t.Helper()
	img, err := random.Image(32, 1)
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := img.MediaType()
	d, _ := img.Digest()
	return Entry{Source: ref + "@" + d.String(), Platform: p, Image: img, MediaType: mt}
}

func TestAssemble(t *testing.T) {
	entries := []Entry{
		entry(t, "reg.example/app", v1.Platform{OS: "linux", Architecture: "amd64"}),
		entry(t, "reg.example/app", v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}),
	}
	for format, want := range map[string]types.MediaType{"": types.OCIImageIndex, FormatOCI: types.OCIImageIndex, FormatDocker: types.DockerManifestList} {
		idx, err := Assemble(entries, format)
		if err != nil {
			t.Fatalf("%q: %v", format, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if im.MediaType != want || len(im.Manifests) != 2 {
			t.Fatalf("%q: %s with %d manifests", format, im.MediaType, len(im.Manifests))
		}
		for i, m := range im.Manifests {
			d, _ := entries[i].Image.Digest()
			if m.Digest != d || m.MediaType != types.DockerManifestSchema2 || m.Platform.String() != entries[i].Platform.String() {
				t.Errorf("%q: manifest %d = %+v", format, i, m)
			}
		}
	}
	if _, err := Assemble(entries, "zip"); err == nil || !strings.Contains(err.Error(), "use oci or docker") {
		t.Errorf("unknown format: %v", err)
	}
}

func TestCheckPlatforms(t *testing.T) {
	entries := []Entry{
		entry(t, "reg.example/app", v1.Platform{OS: "linux", Architecture: "amd64"}),
		entry(t, "reg.example/app", v1.Platform{OS: "linux", Architecture: "arm64"}),
	}
	for _, tc := range []struct {
		want []string
		err  string
	}{
		{nil, ""},
		{[]string{"linux/amd64", "linux/arm64"}, ""},
		{[]string{"linux/amd64,linux/arm64/v8"}, ""},
		{[]string{"linux/amd64"}, "not asked for [linux/arm64"},
		{[]string{"linux/amd64", "linux/arm64", "linux/s390x"}, "missing [linux/s390x]"},
	} {
		err := checkPlatforms(entries, tc.want)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%v: got %v, want %q", tc.want, err, tc.err)
		}
	}
}

func TestImageList(t *testing.T) {
	got, err := imageList([]string{
		`["r/a@sha256:1","r/b@sha256:2"]`,
		"r/c@sha256:3,other/c@sha256:3",
		" ",
		"r/d@sha256:4",
		"oci-layout:///tmp/a,b",
	})
	want := []string{"r/a@sha256:1", "r/b@sha256:2", "r/c@sha256:3", "r/d@sha256:4", "oci-layout:///tmp/a,b"}
	if err != nil || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %v %v, want %v", got, err, want)
	}
	if _, err := imageList([]string{"[1,2]"}); err == nil {
		t.Error("a JSON array of numbers was taken")
	}
	entries := []Entry{entry(t, "reg.example/app", v1.Platform{OS: "linux", Architecture: "arm64"})}
	if err := checkPlatforms(entries, []string{`["linux/arm64"]`}); err != nil {
		t.Errorf("a JSON platforms list: %v", err)
	}
}

// platformImage is a random image whose config names platform p.
func platformImage(t *testing.T, p v1.Platform) v1.Image {
	t.Helper()
	img, err := random.Image(32, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestResolveLayouts reads entries from local OCI layouts, as build.sh
// joins its per-platform builds without a registry.
func TestResolveLayouts(t *testing.T) {
	dir := t.TempDir()
	single := func(name string, p v1.Platform) (string, v1.Image) {
		path := filepath.Join(dir, name)
		lp, err := layout.Write(path, empty.Index)
		if err != nil {
			t.Fatal(err)
		}
		img := platformImage(t, p)
		if err := lp.AppendImage(img); err != nil {
			t.Fatal(err)
		}
		return path, img
	}
	amdPath, amd := single("amd64", v1.Platform{OS: "linux", Architecture: "amd64"})
	armPath, _ := single("arm64", v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"})

	// Two images in one layout: each must be named by digest.
	twoPath := filepath.Join(dir, "two")
	lp, err := layout.Write(twoPath, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	s390 := platformImage(t, v1.Platform{OS: "linux", Architecture: "s390x"})
	for _, img := range []v1.Image{s390, platformImage(t, v1.Platform{OS: "linux", Architecture: "ppc64le"})} {
		if err := lp.AppendImage(img); err != nil {
			t.Fatal(err)
		}
	}
	s390Digest, _ := s390.Digest()
	// A layout holding an index.
	idxPath := filepath.Join(dir, "index")
	ip, err := layout.Write(idxPath, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := ip.AppendIndex(mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: amd})); err != nil {
		t.Fatal(err)
	}

	entries, err := Resolve(context.Background(), nil, []string{
		LayoutScheme + amdPath, LayoutScheme + armPath, LayoutScheme + twoPath + "@" + s390Digest.String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"linux/amd64", "linux/arm64", "linux/s390x"}
	if len(entries) != len(want) {
		t.Fatalf("%d entries, want %d", len(entries), len(want))
	}
	for i, e := range entries {
		if got := registry.FormatPlatform(e.Platform); got != want[i] {
			t.Errorf("entry %d: platform %s, want %s", i, got, want[i])
		}
	}
	if d, _ := entries[2].Image.Digest(); d != s390Digest {
		t.Errorf("entry 2 is %s, want %s", d, s390Digest)
	}

	for _, tc := range []struct {
		image, want string
	}{
		{LayoutScheme + twoPath, "holds 2 manifests; name one"},
		{LayoutScheme + amdPath + "@" + s390Digest.String(), "holds no manifest " + s390Digest.String()},
		{LayoutScheme + idxPath, "is itself a multi-platform index"},
		{LayoutScheme + filepath.Join(dir, "missing"), "reading the OCI layout"},
		{LayoutScheme, "want " + LayoutScheme + "PATH"},
	} {
		if _, err := Resolve(context.Background(), nil, []string{tc.image}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error saying %q", tc.image, err, tc.want)
		}
	}
	if _, err := Resolve(context.Background(), nil, []string{LayoutScheme + amdPath, LayoutScheme + amdPath}); err == nil || !strings.Contains(err.Error(), "appears twice") {
		t.Errorf("the same layout twice: %v", err)
	}
}
