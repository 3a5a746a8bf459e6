package layertoc

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"maps"
	"testing"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	digest "github.com/opencontainers/go-digest"
)

// eStargzOf converts a layer tar with the estargz package, in chunks
// small enough to split usr/big, and returns the blob, its TOC digest and
// the diff ID of what it decompresses to. opts may choose another
// compression (zstdchunked).
func eStargzOf(t testing.TB, data []byte, opts ...estargz.Option) ([]byte, digest.Digest, v1.Hash) {
	t.Helper()
	b, err := estargz.Build(io.NewSectionReader(bytes.NewReader(data), 0, int64(len(data))), append([]estargz.Option{estargz.WithChunkSize(1024)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	blob, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	diffID, err := v1.NewHash(b.DiffID().String())
	if err != nil {
		t.Fatal(err)
	}
	return blob, b.TOCDigest(), diffID
}

func gunzip(t *testing.T, blob []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// withGroup is layerTar with /etc/group added after its entries.
func withGroup(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tr := tar.NewReader(bytes.NewReader(layerTar(t)))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	group := "root:x:0:\napp:x:1000:\n"
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/group", Mode: 0o644, Size: int64(len(group)), ModTime: time.Unix(1700000000, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(tw, group); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The table read by range from an eStargz blob is the one reading its
// whole tar records, but for offsets, which it does not know.
func TestFromEStargzIsTheTableOfTheTar(t *testing.T) {
	blob, tocDigest, diffID := eStargzOf(t, withGroup(t))
	reads := &countingReaderAt{r: bytes.NewReader(blob)}
	got, err := FromEStargz(reads, int64(len(blob)), tocDigest, diffID)
	if err != nil {
		t.Fatal(err)
	}
	want := scan(t, gunzip(t, blob))
	sameEntries(t, got, want)
	// The footer, the table and the two inlined files' members.
	if reads.n != 4 || reads.bytes >= int64(len(blob)) {
		t.Errorf("%d reads of %d bytes in all, of a %d-byte blob; want 4 small ones", reads.n, reads.bytes, len(blob))
	}
}

// sameEntries compares a table read from a TOC the layer carries with the
// one reading its tar records: the same entries, but for offsets, which
// it does not know, with /etc/passwd and /etc/group inlined. It also
// survives the store's encoding.
func sameEntries(t *testing.T, got, want *TOC) {
	t.Helper()
	if len(got.Entries) != len(want.Entries) {
		t.Fatalf("%d entries, want %d:\n%+v\n%+v", len(got.Entries), len(want.Entries), got.Entries, want.Entries)
	}
	for i := range want.Entries {
		g, w := got.Entries[i], want.Entries[i]
		if g.Offset != UnknownOffset {
			t.Errorf("entry %q: offset %d, want UnknownOffset", g.Name, g.Offset)
		}
		if g.Name != w.Name || g.Typeflag != w.Typeflag || g.Linkname != w.Linkname || g.Size != w.Size ||
			g.Mode != w.Mode || g.Uid != w.Uid || g.Gid != w.Gid || !g.ModTime.Equal(w.ModTime) ||
			g.Devmajor != w.Devmajor || g.Devminor != w.Devminor || !maps.Equal(g.Xattrs, w.Xattrs) ||
			!bytes.Equal(g.Content, w.Content) {
			t.Errorf("entry %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	for _, name := range []string{"/etc/passwd", "/etc/group"} {
		if c, ok := got.Inline(name); !ok || len(c) == 0 {
			t.Errorf("%s is not inlined", name)
		}
	}
	packed, err := got.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Unmarshal(bytes.NewReader(packed), got.DiffID); err != nil {
		t.Errorf("the stored table does not read back: %v", err)
	}
}

func TestFromEStargzRefusesDamagedBlobs(t *testing.T) {
	blob, tocDigest, diffID := eStargzOf(t, withGroup(t))
	if _, err := FromEStargz(bytes.NewReader(blob), int64(len(blob)), tocDigest, diffID); err != nil {
		t.Fatal(err)
	}
	tocOffset, _, err := parseFooter(blob[len(blob)-estargz.FooterSize:])
	if err != nil {
		t.Fatal(err)
	}
	midTable := int(tocOffset) + (len(blob)-estargz.FooterSize-int(tocOffset))/2
	for name, tc := range map[string]struct {
		blob   []byte
		digest digest.Digest
	}{
		"digest mismatch":  {blob, digest.FromString("another table")},
		"truncated footer": {blob[:len(blob)-10], tocDigest},
		"no footer":        {gzipOf(t, withGroup(t)), tocDigest},
		"damaged table":    {flip(blob, midTable), tocDigest},
		"damaged passwd":   {damagePasswd(t, blob), tocDigest},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := FromEStargz(bytes.NewReader(tc.blob), int64(len(tc.blob)), tc.digest, diffID)
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("error %v, want ErrDamaged", err)
			}
			t.Log(err)
		})
	}
}

// damagePasswd rewrites /etc/passwd's gzip member with other content of
// the same size, leaving the table as it was.
func damagePasswd(t *testing.T, blob []byte) []byte {
	t.Helper()
	out := bytes.Clone(blob)
	// Members are gzip; find the one whose content starts with the file.
	for off := 0; off < len(out)-2; off++ {
		if out[off] != 0x1f || out[off+1] != 0x8b {
			continue
		}
		zr, err := gzip.NewReader(bytes.NewReader(out[off:]))
		if err != nil {
			continue
		}
		zr.Multistream(false)
		data, err := io.ReadAll(zr)
		if err != nil || !bytes.HasPrefix(data, []byte("root:x:0:0::/root")) {
			continue
		}
		member := gzipOf(t, bytes.Replace(data, []byte("root:x:0:0"), []byte("root:x:7:7"), 1))
		if len(member) > len(out)-off {
			t.Fatal("the damaged member does not fit")
		}
		// Pad a shorter member with what followed it, so that offsets
		// stay; the reader stops at the member's end.
		copy(out[off:], member)
		return out
	}
	t.Fatal("no gzip member holds /etc/passwd")
	return nil
}

func gzipOf(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func flip(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0xff
	return out
}

type countingReaderAt struct {
	r     io.ReaderAt
	n     int
	bytes int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.n++
	c.bytes += int64(len(p))
	return c.r.ReadAt(p, off)
}
