package layertoc

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	digest "github.com/opencontainers/go-digest"

	"github.com/slipway-build/slipway/engine/registry"
)

// An eStargz layer is a gzip stream whose tar ends with its own table of
// contents (stargz.index.json) and a footer that says where that table
// starts, and whose manifest descriptor carries the table's digest
// (estargz.TOCJSONDigestAnnotation). Reading the footer and the table by
// range gives the layer's headers without its content; the few files a
// table carries (inlined) are read by range from their own gzip member,
// which the table locates.
//
// What such a table holds, and what it cannot:
//   - the headers as the eStargz table gives them: modification times to
//     the second (eStargz rounds them) and no access times. Layers written
//     with whole-second times and no access times, as Slipway's and
//     Docker's archive code write them, lose nothing; a layer with finer
//     times gives a sparse root parent directories whose times differ
//     from the unpacked root's by under a second.
//   - Offset is UnknownOffset: the eStargz table says where content lies
//     in the compressed blob, not in the uncompressed stream.
//   - the entry of stargz.index.json itself, taken from the tar header the
//     blob holds, since extraction writes that file too.
//
// The table is trusted as the digest in the manifest vouches for it; the
// inlined files are checked against the digests the table gives them.
// Nothing checks the table against the layer's diff ID, which only a read
// of the whole blob could: an image whose table lies about its tar gives
// steps on sparse roots the tree the table describes.

// CarriedTOCs makes an Index read the table an eStargz or zstd:chunked
// layer carries, by ranged requests on its blob through client, when the
// store has none, and record it in the store.
func CarriedTOCs(client *registry.Client) IndexOption {
	return func(x *Index) { x.blobs = client }
}

// readCarried returns the table layer carries, or nil and no error when it
// carries none that can be read by range: neither eStargz nor
// zstd:chunked, or not from a registry.
func readCarried(ctx context.Context, client *registry.Client, layer v1.Layer, diffID v1.Hash) (*TOC, error) {
	desc, err := partial.Descriptor(layer)
	if err != nil {
		return nil, nil
	}
	// A zstd:chunked layer may carry the eStargz annotation too, for
	// stargz-snapshotter; its table is where its own annotations say.
	position, checksum, checksumKey, zstdChunked := zstdChunkedPosition(desc.Annotations)
	want, eStargz := desc.Annotations[estargz.TOCJSONDigestAnnotation]
	if !zstdChunked && !eStargz {
		return nil, nil
	}
	blob, err := client.LayerBlob(ctx, layer)
	if err != nil || blob == nil {
		return nil, err
	}
	format, key := "eStargz", estargz.TOCJSONDigestAnnotation
	read := func(d digest.Digest) (*TOC, error) { return FromEStargz(blob, blob.Size(), d, diffID) }
	if zstdChunked {
		format, key, want = "zstd:chunked", checksumKey, checksum
		read = func(d digest.Digest) (*TOC, error) { return FromZstdChunked(blob, blob.Size(), position, d, diffID) }
	}
	d, err := digest.Parse(want)
	if err != nil {
		return nil, fmt.Errorf("%w: %s layer %s: annotation %s=%q: %w", ErrDamaged, format, blob, key, want, err)
	}
	t, err := read(d)
	if err != nil {
		return nil, fmt.Errorf("%s layer %s: %w", format, blob, err)
	}
	return t, nil
}

// FromEStargz reads the table of contents of the eStargz blob of size
// bytes, whose TOC JSON has the digest tocDigest, and returns it as the
// table of the layer with diffID, with the inlined files' content. It
// reads the footer, the table and each inlined file's gzip member, one
// ReadAt each. Errors wrap ErrDamaged where the blob is not what its
// annotation says.
func FromEStargz(blob io.ReaderAt, size int64, tocDigest digest.Digest, diffID v1.Hash) (*TOC, error) {
	// One read gets the eStargz footer, or the legacy one within it.
	footer := make([]byte, min(size, estargz.FooterSize))
	if _, err := blob.ReadAt(footer, size-int64(len(footer))); err != nil {
		return nil, fmt.Errorf("reading its footer: %w", err)
	}
	tocOffset, footerSize, err := parseFooter(footer)
	if err != nil {
		return nil, fmt.Errorf("%w: its footer: %w", ErrDamaged, err)
	}
	end := size - footerSize
	if tocOffset < 0 || tocOffset >= end || end-tocOffset > maxTable {
		return nil, fmt.Errorf("%w: its footer puts the table at %d in %d bytes", ErrDamaged, tocOffset, size)
	}
	packed := make([]byte, end-tocOffset)
	if _, err := blob.ReadAt(packed, tocOffset); err != nil {
		return nil, fmt.Errorf("reading its table: %w", err)
	}
	jtoc, hdr, err := parseEStargzTOC(packed, tocDigest)
	if err != nil {
		return nil, fmt.Errorf("%w: its table: %w", ErrDamaged, err)
	}
	return fromJTOC(blob, jtoc, hdr, tocOffset, gzipMember, diffID)
}

// fromJTOC is the table of the layer with diffID that jtoc describes, with
// trailer, the tar entry that holds the table itself (none for zstd:chunked,
// whose table lies outside the tar), last. The inlined files are read from
// blob, whose content ends at contentEnd, with decompress.
func fromJTOC(blob io.ReaderAt, jtoc *estargz.JTOC, trailer *tar.Header, contentEnd int64, decompress decompressor, diffID v1.Hash) (*TOC, error) {
	b := NewBuilder()
	var inline []int
	for i, e := range jtoc.Entries {
		if e.Type == "chunk" {
			continue
		}
		h, err := entryHeader(e)
		if err != nil {
			return nil, fmt.Errorf("%w: its table: %w", ErrDamaged, err)
		}
		b.Entry(h, UnknownOffset, nil)
		if h.Typeflag == tar.TypeReg && h.Size > 0 && h.Size <= maxInline && inlined[strings.TrimPrefix(path.Clean("/"+h.Name), "/")] {
			inline = append(inline, i)
		}
	}
	if trailer != nil {
		b.Entry(trailer, UnknownOffset, nil)
	}
	t := b.TOC(diffID)
	for _, i := range inline {
		content, err := readInline(blob, jtoc.Entries, i, contentEnd, decompress)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", jtoc.Entries[i].Name, err)
		}
		for j := range t.Entries {
			if e := &t.Entries[j]; e.Name == jtoc.Entries[i].Name && e.Typeflag == tar.TypeReg {
				e.Content = content
			}
		}
	}
	if err := t.check(diffID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return t, nil
}

// decompressor reads the first compressed member or frame of r.
type decompressor func(r io.Reader) (io.ReadCloser, error)

func gzipMember(r io.Reader) (io.ReadCloser, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, err
	}
	zr.Multistream(false)
	return zr, nil
}

// legacyFooterSize is the footer of stargz before eStargz: the same
// empty gzip member with the offset as its whole Extra field.
const legacyFooterSize = 47

// parseFooter returns the table's offset and the footer's size from the
// blob's last bytes: an empty gzip member whose Extra field is
// "SG", its length (22) and "%016xSTARGZ" (eStargz), or only the latter
// (legacy stargz). estargz's own parser indexes an Extra field it has not
// measured, so a damaged footer could panic it.
func parseFooter(footer []byte) (int64, int64, error) {
	if len(footer) == estargz.FooterSize {
		if extra, err := gzipExtra(footer); err == nil && len(extra) == 26 && string(extra[:4]) == "SG\x16\x00" {
			if off, ok := stargzOffset(extra[4:]); ok {
				return off, estargz.FooterSize, nil
			}
		}
	}
	if len(footer) >= legacyFooterSize {
		if extra, err := gzipExtra(footer[len(footer)-legacyFooterSize:]); err == nil {
			if off, ok := stargzOffset(extra); ok {
				return off, legacyFooterSize, nil
			}
		}
	}
	return 0, 0, errors.New("no eStargz footer at the blob's end")
}

func gzipExtra(member []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(member))
	if err != nil {
		return nil, err
	}
	zr.Multistream(false)
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return nil, err
	}
	return zr.Extra, nil
}

// stargzOffset parses "%016xSTARGZ".
func stargzOffset(field []byte) (int64, bool) {
	if len(field) != 22 || string(field[16:]) != "STARGZ" {
		return 0, false
	}
	off, err := strconv.ParseInt(string(field[:16]), 16, 64)
	return off, err == nil
}

// parseEStargzTOC decodes the table's gzip member: its tar header and the
// TOC JSON, whose digest must be want.
func parseEStargzTOC(packed []byte, want digest.Digest) (*estargz.JTOC, *tar.Header, error) {
	zr, err := gzip.NewReader(bytes.NewReader(packed))
	if err != nil {
		return nil, nil, err
	}
	zr.Multistream(false)
	tr := tar.NewReader(zr)
	hdr, err := tr.Next()
	if err != nil {
		return nil, nil, err
	}
	if hdr.Name != estargz.TOCTarName || hdr.Typeflag != tar.TypeReg || hdr.Size > maxTable {
		return nil, nil, fmt.Errorf("its first entry is %q, not %s", hdr.Name, estargz.TOCTarName)
	}
	raw, err := io.ReadAll(tr)
	if err != nil {
		return nil, nil, err
	}
	if got := digest.Canonical.FromBytes(raw); got != want {
		return nil, nil, fmt.Errorf("its digest is %s, but the manifest's annotation says %s", got, want)
	}
	var jtoc estargz.JTOC
	if err := json.Unmarshal(raw, &jtoc); err != nil {
		return nil, nil, err
	}
	if len(jtoc.Entries) == 0 {
		return nil, nil, errors.New("it has no entries")
	}
	return &jtoc, hdr, nil
}

// tarTypes are the tar types of the eStargz table's entry types, but for
// "chunk", the rest of a regular file.
var tarTypes = map[string]byte{
	"reg": tar.TypeReg, "dir": tar.TypeDir, "symlink": tar.TypeSymlink, "hardlink": tar.TypeLink,
	"char": tar.TypeChar, "block": tar.TypeBlock, "fifo": tar.TypeFifo,
}

// entryHeader is the tar header an eStargz table entry stands for, in the
// form a tar reader returns it.
func entryHeader(e *estargz.TOCEntry) (*tar.Header, error) {
	if e == nil || e.Name == "" {
		return nil, errors.New("an entry has no name")
	}
	h := &tar.Header{
		Name: e.Name, Linkname: e.LinkName, Mode: e.Mode, Uid: e.UID, Gid: e.GID,
		Devmajor: int64(e.DevMajor), Devminor: int64(e.DevMinor),
		// eStargz leaves out a time of zero or the epoch; a tar holds one.
		ModTime: time.Unix(0, 0),
	}
	if e.ModTime3339 != "" {
		t, err := time.Parse(time.RFC3339, e.ModTime3339)
		if err != nil {
			return nil, fmt.Errorf("entry %q: modification time %q: %w", e.Name, e.ModTime3339, err)
		}
		h.ModTime = t
	}
	typeflag, ok := tarTypes[e.Type]
	if !ok {
		return nil, fmt.Errorf("entry %q: unknown type %q", e.Name, e.Type)
	}
	h.Typeflag = typeflag
	if typeflag == tar.TypeReg {
		h.Size = e.Size
	}
	if len(e.Xattrs) > 0 {
		h.PAXRecords = make(map[string]string, len(e.Xattrs))
		for k, v := range e.Xattrs {
			h.PAXRecords[paxXattr+k] = string(v)
		}
	}
	return h, nil
}

// readInline reads the content of entries[i], a regular file stored in one
// chunk, from the compressed member the table locates, and checks its
// digest.
func readInline(blob io.ReaderAt, entries []*estargz.TOCEntry, i int, contentEnd int64, decompress decompressor) ([]byte, error) {
	e := entries[i]
	if i+1 < len(entries) && entries[i+1].Type == "chunk" {
		return nil, fmt.Errorf("%w: a user or group database in chunks", ErrDamaged)
	}
	want, err := digest.Parse(e.Digest)
	if err != nil {
		return nil, fmt.Errorf("%w: its digest %q: %w", ErrDamaged, e.Digest, err)
	}
	// The member ends where the next one starts: the next larger offset,
	// or the end of all content.
	next := contentEnd
	for _, o := range entries {
		if o.Offset > e.Offset && o.Offset < next {
			next = o.Offset
		}
	}
	if e.Offset <= 0 || e.Offset >= next || e.InnerOffset < 0 || next-e.Offset > maxTable {
		return nil, fmt.Errorf("%w: its content at %d in a member ending at %d", ErrDamaged, e.Offset, next)
	}
	member := make([]byte, next-e.Offset)
	if _, err := blob.ReadAt(member, e.Offset); err != nil {
		return nil, err
	}
	zr, err := decompress(bytes.NewReader(member))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	defer zr.Close()
	if _, err := io.CopyN(io.Discard, zr, e.InnerOffset); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	content := make([]byte, e.Size)
	if _, err := io.ReadFull(zr, content); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	if got := digest.Canonical.FromBytes(content); got != want {
		return nil, fmt.Errorf("%w: its content has digest %s, the table says %s", ErrDamaged, got, want)
	}
	return content, nil
}
