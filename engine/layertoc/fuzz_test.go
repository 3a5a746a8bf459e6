package layertoc

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
)

// FuzzUnmarshal feeds a table's JSON, gzipped as a blob, to Unmarshal. It
// refuses the blob as damaged or returns a table that passes its checks
// again once written back, and whose entries make tar headers.
func FuzzUnmarshal(f *testing.F) {
	diffID := v1.Hash{Algorithm: "sha256", Hex: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	good, err := json.Marshal(&TOC{Version: Version, DiffID: diffID, Entries: []Entry{
		{Name: "etc/", Typeflag: '5', Mode: 0o755},
		{Name: "etc/passwd", Typeflag: '0', Size: 5, Mode: 0o644, Offset: 1024, Content: []byte("root\n")},
		{Name: "bin/sh", Typeflag: '2', Linkname: "busybox", Offset: 1536, Xattrs: map[string]string{"user.a": "b"}},
	}})
	if err != nil {
		f.Fatal(err)
	}
	unnamed, err := json.Marshal(&TOC{Version: Version, DiffID: diffID, Entries: []Entry{{Typeflag: '0'}}})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][]byte{good, unnamed, []byte(`{}`), []byte(`{"version":1,"entries":[{"name":"a","size":-1}]}`), []byte(`null`)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, table []byte) {
		var blob bytes.Buffer
		zw := gzip.NewWriter(&blob)
		zw.Write(table)
		zw.Close()
		toc, err := Unmarshal(&blob, diffID)
		if err != nil {
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("an error that is not ErrDamaged: %v", err)
			}
			return
		}
		for i := range toc.Entries {
			if hdr := toc.Entries[i].Header(); hdr.Name == "" {
				t.Fatalf("entry %d makes a header without a name", i)
			}
		}
		toc.Inline("/etc/passwd")
		again, err := toc.Marshal()
		if err != nil {
			t.Fatalf("a table that was read cannot be written: %v", err)
		}
		if _, err := Unmarshal(bytes.NewReader(again), diffID); err != nil {
			t.Fatalf("a table that was read is refused once written back: %v", err)
		}
	})
}

// FuzzFromEStargz puts a fuzzed TOC JSON into a real eStargz blob, with a
// footer pointing at it and its digest as the annotation, so that every
// input passes the digest check and reaches the table's parsing and the
// reads it directs. FromEStargz refuses the blob as damaged or returns a
// table that the store can keep and read back.
func FuzzFromEStargz(f *testing.F) {
	blob, _, diffID := eStargzOf(f, withGroup(f))
	tocOffset, _, err := parseFooter(blob[len(blob)-estargz.FooterSize:])
	if err != nil {
		f.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob[tocOffset:]))
	if err != nil {
		f.Fatal(err)
	}
	zr.Multistream(false)
	tr := tar.NewReader(zr)
	if _, err := tr.Next(); err != nil {
		f.Fatal(err)
	}
	real, err := io.ReadAll(tr)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Add([]byte(`{"version":1,"entries":[{"name":"etc/passwd","type":"reg","size":5,"offset":1,"digest":"sha256:00"}]}`))
	f.Add([]byte(`{"version":1,"entries":[{"name":"a","type":"chunk"},{"name":"b","type":"weird"}]}`))
	f.Fuzz(func(t *testing.T, table []byte) {
		var b bytes.Buffer
		b.Write(blob[:tocOffset])
		zw := gzip.NewWriter(&b)
		tw := tar.NewWriter(zw)
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: estargz.TOCTarName, Size: int64(len(table))}); err != nil {
			t.Fatal(err)
		}
		tw.Write(table)
		tw.Close()
		zw.Close()
		footer := gzip.NewWriter(&b)
		footer.Extra = append([]byte{'S', 'G', 22, 0}, fmt.Sprintf("%016xSTARGZ", tocOffset)...)
		footer.Close()
		toc, err := FromEStargz(bytes.NewReader(b.Bytes()), int64(b.Len()), digest.FromBytes(table), diffID)
		if err != nil {
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("an error that is not ErrDamaged: %v", err)
			}
			return
		}
		packed, err := toc.Marshal()
		if err != nil {
			t.Fatalf("a table that was read cannot be written: %v", err)
		}
		if _, err := Unmarshal(bytes.NewReader(packed), diffID); err != nil {
			t.Fatalf("a table that was read is refused once stored: %v", err)
		}
	})
}

// FuzzFromZstdChunked puts a fuzzed table, zstd-compressed in a skippable
// frame, after the file frames of a real zstd:chunked blob, with the
// position and checksum its annotations would give, so that every input
// reaches the table's parsing and the reads it directs.
func FuzzFromZstdChunked(f *testing.F) {
	blob, annotations, diffID := zstdChunkedOf(f, withGroup(f))
	position, _, _, ok := zstdChunkedPosition(annotations)
	if !ok {
		f.Fatal("no zstd:chunked annotations")
	}
	tocOffset, length, err := parsePosition(position, int64(len(blob)))
	if err != nil {
		f.Fatal(err)
	}
	zr, err := zstdFrames(bytes.NewReader(blob[tocOffset : tocOffset+length]))
	if err != nil {
		f.Fatal(err)
	}
	real, err := io.ReadAll(zr)
	zr.Close()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(real)
	f.Add([]byte(`{"version":1,"entries":[{"name":"etc/group","type":"reg","size":3,"offset":4,"innerOffset":-1}]}`))
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, table []byte) {
		packed := enc.EncodeAll(table, nil)
		b := append(bytes.Clone(blob[:tocOffset-8]), 0x50, 0x2a, 0x4d, 0x18)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(packed)))
		b = append(b, packed...)
		pos := fmt.Sprintf("%d:%d:%d:1", tocOffset, len(packed), len(table))
		toc, err := FromZstdChunked(bytes.NewReader(b), int64(len(b)), pos, digest.FromBytes(packed), diffID)
		if err != nil {
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("an error that is not ErrDamaged: %v", err)
			}
			return
		}
		stored, err := toc.Marshal()
		if err != nil {
			t.Fatalf("a table that was read cannot be written: %v", err)
		}
		if _, err := Unmarshal(bytes.NewReader(stored), diffID); err != nil {
			t.Fatalf("a table that was read is refused once stored: %v", err)
		}
	})
}
