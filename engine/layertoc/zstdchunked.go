package layertoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
)

// A zstd:chunked layer (containers/storage, and stargz-snapshotter's
// zstdchunked) compresses each file's content in frames of its own and
// keeps a table in the eStargz form (its "manifest") in a skippable frame
// near the blob's end, outside the tar. Its descriptor says where
// (manifest-position: offset:length:uncompressed length:type) and gives the
// compressed table's digest (manifest-checksum). What such a table holds is
// as for eStargz, but that it has no entry for itself, and times to the
// nanosecond where containers/storage wrote them.

// The annotations of a zstd:chunked layer, as containers/storage names them
// and as stargz-snapshotter's zstdchunked still does.
var zstdChunkedAnnotations = []struct{ position, checksum string }{
	{"io.github.containers.zstd-chunked.manifest-position", "io.github.containers.zstd-chunked.manifest-checksum"},
	{"io.containers.zstd-chunked.manifest-position", "io.containers.zstd-chunked.manifest-checksum"},
}

// zstdChunkedManifest is the table's type in manifest-position: the eStargz
// form ("CRFS").
const zstdChunkedManifest = 1

// zstdChunkedPosition returns the table's position, its checksum and the
// checksum's annotation from a layer's annotations, and whether it is
// zstd:chunked.
func zstdChunkedPosition(annotations map[string]string) (position, checksum, checksumKey string, ok bool) {
	for _, a := range zstdChunkedAnnotations {
		if p, found := annotations[a.position]; found {
			return p, annotations[a.checksum], a.checksum, true
		}
	}
	return "", "", "", false
}

// FromZstdChunked reads the table of contents of the zstd:chunked blob of
// size bytes from where position (the manifest-position annotation) puts
// it, checks it against checksum (manifest-checksum), and returns it as the
// table of the layer with diffID, with the inlined files' content: one
// ReadAt for the table, one for each inlined file. Errors wrap ErrDamaged
// where the blob is not what its annotations say.
func FromZstdChunked(blob io.ReaderAt, size int64, position string, checksum digest.Digest, diffID v1.Hash) (*TOC, error) {
	offset, length, err := parsePosition(position, size)
	if err != nil {
		return nil, fmt.Errorf("%w: its manifest position %q: %w", ErrDamaged, position, err)
	}
	packed := make([]byte, length)
	if _, err := blob.ReadAt(packed, offset); err != nil {
		return nil, fmt.Errorf("reading its table: %w", err)
	}
	if got := digest.Canonical.FromBytes(packed); got != checksum {
		return nil, fmt.Errorf("%w: its table's digest is %s, but the manifest's annotation says %s", ErrDamaged, got, checksum)
	}
	jtoc, err := parseZstdTOC(packed)
	if err != nil {
		return nil, fmt.Errorf("%w: its table: %w", ErrDamaged, err)
	}
	return fromJTOC(blob, jtoc, nil, offset, zstdFrames, diffID)
}

// parsePosition checks "offset:length:uncompressed length:type" against
// the blob's size and the tables this package reads.
func parsePosition(position string, size int64) (offset, length int64, err error) {
	parts := strings.Split(position, ":")
	if len(parts) != 4 {
		return 0, 0, errors.New("want offset:length:uncompressed length:type")
	}
	var n [4]int64
	for i, p := range parts {
		if n[i], err = strconv.ParseInt(p, 10, 64); err != nil || n[i] < 0 {
			return 0, 0, fmt.Errorf("field %d is not a size", i+1)
		}
	}
	if n[3] != zstdChunkedManifest {
		return 0, 0, fmt.Errorf("table type %d, want %d (the eStargz form)", n[3], zstdChunkedManifest)
	}
	if n[1] == 0 || n[1] > maxTable || n[2] > maxTable || n[0] > size-n[1] {
		return 0, 0, fmt.Errorf("%d bytes at %d do not fit a table in a %d-byte blob", n[1], n[0], size)
	}
	return n[0], n[1], nil
}

func parseZstdTOC(packed []byte) (*estargz.JTOC, error) {
	zr, err := zstdFrames(bytes.NewReader(packed))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	raw, err := io.ReadAll(io.LimitReader(zr, maxTable+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxTable {
		return nil, fmt.Errorf("more than %d bytes", maxTable)
	}
	var jtoc estargz.JTOC
	if err := json.Unmarshal(raw, &jtoc); err != nil {
		return nil, err
	}
	if len(jtoc.Entries) == 0 {
		return nil, errors.New("it has no entries")
	}
	return &jtoc, nil
}

// zstdFrames decompresses r, one goroutine, bounded in memory.
func zstdFrames(r io.Reader) (io.ReadCloser, error) {
	d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxTable))
	if err != nil {
		return nil, err
	}
	return d.IOReadCloser(), nil
}
