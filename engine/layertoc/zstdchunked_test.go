package layertoc

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/containerd/stargz-snapshotter/estargz/zstdchunked"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
)

type zstdChunked struct {
	*zstdchunked.Compressor
	*zstdchunked.Decompressor
}

// zstdChunkedOf converts a layer tar with stargz-snapshotter's
// zstdchunked and returns the blob, its annotations and its diff ID.
func zstdChunkedOf(t testing.TB, data []byte) ([]byte, map[string]string, v1.Hash) {
	t.Helper()
	annotations := map[string]string{}
	c := zstdChunked{&zstdchunked.Compressor{CompressionLevel: zstd.SpeedDefault, Metadata: annotations}, &zstdchunked.Decompressor{}}
	blob, _, diffID := eStargzOf(t, data, estargz.WithCompression(c))
	return blob, annotations, diffID
}

func unzstd(t *testing.T, blob []byte) []byte {
	t.Helper()
	zr, err := zstd.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The table read by range from a zstd:chunked blob is the one reading its
// whole tar records, but for offsets.
func TestFromZstdChunkedIsTheTableOfTheTar(t *testing.T) {
	blob, annotations, diffID := zstdChunkedOf(t, withGroup(t))
	position, checksum, _, ok := zstdChunkedPosition(annotations)
	if !ok {
		t.Fatalf("annotations %v name no zstd:chunked table", annotations)
	}
	reads := &countingReaderAt{r: bytes.NewReader(blob)}
	got, err := FromZstdChunked(reads, int64(len(blob)), position, digest.Digest(checksum), diffID)
	if err != nil {
		t.Fatal(err)
	}
	want := scan(t, unzstd(t, blob))
	sameEntries(t, got, want)
	// The table and the two inlined files' frames.
	if reads.n != 3 || reads.bytes >= int64(len(blob)) {
		t.Errorf("%d reads of %d bytes in all, of a %d-byte blob; want 3 small ones", reads.n, reads.bytes, len(blob))
	}

	for name, tc := range map[string]struct {
		blob               []byte
		position, checksum string
	}{
		"checksum mismatch":   {blob, position, digest.FromString("another table").String()},
		"position past end":   {blob[:len(blob)-100], position, checksum},
		"malformed position":  {blob, "12:34", checksum},
		"another table type":  {blob, position[:len(position)-1] + "2", checksum},
		"damaged table bytes": {flip(blob, len(blob)-60), position, checksum},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := FromZstdChunked(bytes.NewReader(tc.blob), int64(len(tc.blob)), tc.position, digest.Digest(tc.checksum), diffID)
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("error %v, want ErrDamaged", err)
			}
			t.Log(err)
		})
	}
}
