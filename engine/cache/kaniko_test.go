package cache

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// kanikoWarm writes img into dir as kaniko's warmer does (pkg/cache
// warmToFile): a docker-save tarball named by the digest, and the raw
// manifest beside it.
func kanikoWarm(t *testing.T, dir, ref string, img v1.Image, withManifest bool) v1.Hash {
	t.Helper()
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(ref)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, h.String())
	if err := tarball.WriteToFile(path, tag, img); err != nil {
		t.Fatal(err)
	}
	if withManifest {
		raw, err := img.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".json", raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

func TestKanikoSource(t *testing.T) {
	rnd, err := random.Image(512, 2)
	if err != nil {
		t.Fatal(err)
	}
	// An OCI image: the tarball rewrites its media types, the manifest
	// beside it keeps the original digest.
	oci := mutate.ConfigMediaType(mutate.MediaType(rnd, types.OCIManifestSchema1), types.OCIConfigJSON)
	ctx := context.Background()
	const ref = "127.0.0.1:5000/team/base:1"

	for _, tt := range []struct {
		name         string
		withManifest bool
	}{{"tarball and manifest", true}, {"tarball only", false}} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			want := kanikoWarm(t, dir, ref, oci, tt.withManifest)
			if !HasKanikoEntries(dir) {
				t.Fatal("HasKanikoEntries = false")
			}
			upstream := &countingPuller{img: oci}
			src := KanikoSource{Dir: dir, TTL: time.Hour, Upstream: upstream}

			// A digest reference is read without asking the registry.
			got, err := src.Pull(ctx, "127.0.0.1:5000/team/base@"+want.String(), v1.Platform{})
			if err != nil {
				t.Fatal(err)
			}
			if upstream.pulls != 0 {
				t.Errorf("a digest reference in the cache went upstream")
			}
			if got == oci {
				t.Fatal("got the upstream image, not the cached one")
			}
			if d, _ := got.Digest(); tt.withManifest && d != want {
				t.Errorf("cached digest = %s, want the original %s", d, want)
			}
			assertSameLayers(t, got, oci)

			// A tag is resolved upstream (manifest only), then read from
			// the cache.
			if got, err = src.Pull(ctx, ref, v1.Platform{}); err != nil {
				t.Fatal(err)
			}
			if upstream.pulls != 1 || got == oci {
				t.Errorf("pulls = %d, cached = %v; want one manifest lookup and the cached image", upstream.pulls, got != oci)
			}
			assertSameLayers(t, got, oci)

			// An entry older than the TTL is not used.
			stale := KanikoSource{Dir: dir, TTL: time.Minute, Upstream: upstream, now: func() time.Time { return time.Now().Add(time.Hour) }}
			if got, err = stale.Pull(ctx, ref, v1.Platform{}); err != nil {
				t.Fatal(err)
			}
			if got != oci {
				t.Errorf("a stale entry was used")
			}
		})
	}
}

func assertSameLayers(t *testing.T, got, want v1.Image) {
	t.Helper()
	gl, err := got.Layers()
	if err != nil {
		t.Fatal(err)
	}
	wl, _ := want.Layers()
	if len(gl) != len(wl) {
		t.Fatalf("%d layers, want %d", len(gl), len(wl))
	}
	for i := range gl {
		gd, err := gl[i].DiffID()
		if err != nil {
			t.Fatal(err)
		}
		wd, _ := wl[i].DiffID()
		if gd != wd {
			t.Errorf("layer %d: diff ID %s, want %s", i, gd, wd)
		}
		rc, err := gl[i].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		rc.Close()
	}
	gc, err := got.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(gc.RootFS.DiffIDs) != len(wl) {
		t.Errorf("config lists %d layers", len(gc.RootFS.DiffIDs))
	}
}
