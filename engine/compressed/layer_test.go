package compressed

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway-build/slipway/e2e/harness"
)

// pushedLayer pushes a random gzip layer to a real registry and returns it
// as a build reads it, with the path of its blob in the registry's storage.
func pushedLayer(t *testing.T) (v1.Layer, string) {
	t.Helper()
	harness.SkipIfShort(t, "the distribution registry")
	reg := harness.StartRegistry(t)
	img, err := random.Image(3<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(reg.Host + "/team/layer:1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Client().Push(context.Background(), img, ref); err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	digest, _ := layers[0].Digest()
	l, err := remote.Layer(ref.Context().Digest(digest.String()), reg.Client().RemoteOptions(ref, false)...)
	if err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(reg.Dir, "storage/docker/registry/v2/blobs/sha256", digest.Hex[:2], digest.Hex, "data")
	if _, err := os.Stat(blob); err != nil {
		t.Fatal(err)
	}
	return l, blob
}

func TestLayerIsTheUncompressedTar(t *testing.T) {
	l, _ := pushedLayer(t)
	want := readAll(t, l.Uncompressed)
	got := readAll(t, func() (io.ReadCloser, error) { return Layer(l) })
	if !bytes.Equal(got, want) {
		t.Errorf("Layer gave %d bytes, Uncompressed %d, and they differ", len(got), len(want))
	}
}

// A blob whose bytes are not its digest's fails at its end, as
// go-containerregistry's own Uncompressed does, even where the gzip
// stream itself is whole.
func TestLayerChecksTheBlobDigest(t *testing.T) {
	l, blob := pushedLayer(t)
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	// A byte appended after the gzip stream: decompression never sees it.
	if err := os.WriteFile(blob, append(data, 0), 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := Layer(l)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.Copy(io.Discard, rc); err == nil {
		t.Error("a blob that does not match its digest was read without an error")
	}
}

// A plain tar served under a gzip media type is read as it is, as
// go-containerregistry does.
func TestLayerTakesAPlainTarUnderAGzipType(t *testing.T) {
	data := make([]byte, 4096)
	for i := range data {
		data[i] = byte(rand.IntN(256))
	}
	data[0] = 'x'
	l := static.NewLayer(data, types.DockerLayer)
	got := readAll(t, func() (io.ReadCloser, error) { return Layer(l) })
	if !bytes.Equal(got, data) {
		t.Error("a plain blob was changed")
	}
}

func readAll(t *testing.T, open func() (io.ReadCloser, error)) []byte {
	t.Helper()
	rc, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sizedLayer is a layer that only knows its compressed size, or fails to.
type sizedLayer struct {
	v1.Layer
	size int64
	err  error
}

func (l sizedLayer) Size() (int64, error) { return l.size, l.err }

// The read-ahead grows with the layer, up to 16 blocks; a layer of
// unknown size gets the least.
func TestReadAheadBlocks(t *testing.T) {
	tests := []struct {
		name string
		l    v1.Layer
		want int
	}{
		{"empty", sizedLayer{}, 2},
		{"half a block", sizedLayer{size: readAheadBlock / 2}, 2},
		{"three blocks", sizedLayer{size: 3 * readAheadBlock}, 4},
		{"Debian's 60 MB", sizedLayer{size: 60 << 20}, maxReadAheadBlocks},
		{"unknown size", sizedLayer{err: io.ErrUnexpectedEOF}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := readAheadBlocks(tc.l); got != tc.want {
				t.Errorf("readAheadBlocks = %d, want %d", got, tc.want)
			}
		})
	}
}
