package rootfs

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// countingLayer counts how often a layer's content is read.
type countingLayer struct {
	v1.Layer
	reads int
}

func (c *countingLayer) Uncompressed() (io.ReadCloser, error) {
	c.reads++
	return c.Layer.Uncompressed()
}

func (c *countingLayer) Compressed() (io.ReadCloser, error) {
	c.reads++
	return c.Layer.Compressed()
}

func TestLayerCacheSkipsTheDownload(t *testing.T) {
	needRoot(t)
	data, err := io.ReadAll(mktar(t, dir("app/"), file("app/a.txt", "kept")))
	if err != nil {
		t.Fatal(err)
	}
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	counted := &countingLayer{Layer: l}
	img, err := mutate.AppendLayers(empty.Image, counted)
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	for i := 0; i < 2; i++ {
		root := t.TempDir()
		if err := ExtractImage(context.Background(), root, img, NewIndex(), WithLayerCache(cache)); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(filepath.Join(root, "app/a.txt")); err != nil || string(b) != "kept" {
			t.Fatalf("extraction %d: %q %v", i, b, err)
		}
	}
	if counted.reads != 1 {
		t.Errorf("the layer was read %d times; the second build should have used the layer cache", counted.reads)
	}
	diffID, _ := l.DiffID()
	if _, err := os.Stat(filepath.Join(cache, "sha256", diffID.Hex+".tar")); err != nil {
		t.Errorf("the layer is not kept under its diff ID: %v", err)
	}
}
