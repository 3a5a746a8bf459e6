package index

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func entry(t *testing.T, ref string, p v1.Platform) Entry {
	t.Helper()
	img, err := random.Image(32, 1)
	if err != nil {
		t.Fatal(err)
	}
	mt, _ := img.MediaType()
	d, _ := img.Digest()
	r, err := name.NewDigest(ref + "@" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	return Entry{Ref: r, Platform: p, Image: img, MediaType: mt}
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
	})
	want := []string{"r/a@sha256:1", "r/b@sha256:2", "r/c@sha256:3", "r/d@sha256:4"}
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
