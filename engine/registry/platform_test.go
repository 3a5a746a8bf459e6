package registry_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway-build/slipway/e2e/harness"
	"github.com/slipway-build/slipway/engine/registry"
)

// platformImage is a small image whose config names p.
func platformImage(t *testing.T, p v1.Platform) v1.Image {
	t.Helper()
	img, err := random.Image(64, 1)
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

// TestPullPlatform resolves an index's manifest by platform, variant
// included, with containerd's normalisation (arm64/v8 is arm64, arm is
// arm/v7), and refuses a single-platform image for another platform.
func TestPullPlatform(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the distribution registry; run without -short")
	}
	reg := harness.StartRegistry(t)
	c := reg.Client()
	ctx := context.Background()
	entries := []v1.Platform{
		{OS: "linux", Architecture: "amd64"},
		{OS: "linux", Architecture: "arm64", Variant: "v8"},
		{OS: "linux", Architecture: "arm", Variant: "v7"},
		{OS: "linux", Architecture: "arm", Variant: "v6"},
		{OS: "unknown", Architecture: "unknown"}, // an attestation manifest
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	digests := map[string]v1.Hash{}
	for _, p := range entries {
		img := platformImage(t, p)
		d, _ := img.Digest()
		digests[p.String()] = d
		pp := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &pp}})
	}
	ref := reg.Host + "/multi/index:1"
	if _, err := c.PushIndex(ctx, idx, mustTag(t, ref)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		want  string
		entry string // the index entry chosen; empty: no match
	}{
		{"linux/amd64", "linux/amd64"},
		{"linux/arm64", "linux/arm64/v8"},
		{"linux/arm64/v8", "linux/arm64/v8"},
		{"linux/aarch64", "linux/arm64/v8"},
		{"linux/arm", "linux/arm/v7"},
		{"linux/arm/v7", "linux/arm/v7"},
		{"linux/arm/v6", "linux/arm/v6"},
		{"linux/arm/v5", ""},
		{"linux/s390x", ""},
	} {
		want, err := v1.ParsePlatform(tc.want)
		if err != nil {
			t.Fatal(err)
		}
		img, err := c.Pull(ctx, ref, *want)
		if tc.entry == "" {
			var perr *registry.PlatformError
			if !errors.As(err, &perr) || perr.Single || len(perr.Available) != 4 {
				t.Errorf("%s: got %v, want a PlatformError listing the 4 image platforms", tc.want, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.want, err)
			continue
		}
		if d, _ := img.Digest(); d != digests[tc.entry] {
			t.Errorf("%s: got %s, want the %s entry %s", tc.want, d, tc.entry, digests[tc.entry])
		}
	}

	// A single-platform image serves its own platform only.
	single := reg.Host + "/multi/single:1"
	if _, err := c.Push(ctx, platformImage(t, v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}), mustTag(t, single)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pull(ctx, single, v1.Platform{OS: "linux", Architecture: "arm64"}); err != nil {
		t.Errorf("linux/arm64 image as linux/arm64: %v", err)
	}
	_, err := c.Pull(ctx, single, v1.Platform{OS: "linux", Architecture: "amd64"})
	var perr *registry.PlatformError
	if !errors.As(err, &perr) || !perr.Single {
		t.Fatalf("linux/arm64 image as linux/amd64: got %v, want a single-platform PlatformError", err)
	}
	for _, s := range []string{single, "single-platform image for linux/arm64", "not linux/amd64", "--custom-platform linux/arm64"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	// A config that names no platform is taken as it is.
	bare := reg.Host + "/multi/bare:1"
	if _, err := c.Push(ctx, platformImage(t, v1.Platform{}), mustTag(t, bare)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Pull(ctx, bare, v1.Platform{OS: "linux", Architecture: "s390x"}); err != nil {
		t.Errorf("an image without a platform: %v", err)
	}
}

func TestMatchPlatform(t *testing.T) {
	for _, tc := range []struct {
		want, have string
		match      bool
	}{
		{"linux/arm64", "linux/arm64/v8", true},
		{"linux/arm64/v8", "linux/arm64", true},
		{"linux/arm", "linux/arm/v7", true},
		{"linux/arm/v7", "linux/arm", true},
		{"linux/arm/v7", "linux/arm/v6", false},
		{"linux/amd64", "linux/arm64", false},
		{"linux/amd64", "windows/amd64", false},
	} {
		w, _ := v1.ParsePlatform(tc.want)
		h, _ := v1.ParsePlatform(tc.have)
		if got := registry.MatchPlatform(*w, *h); got != tc.match {
			t.Errorf("MatchPlatform(%s, %s) = %v, want %v", tc.want, tc.have, got, tc.match)
		}
	}
}
