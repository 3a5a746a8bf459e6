// Package layertoc keeps a table of contents for each image layer: its tar
// headers, where each entry's content starts in the uncompressed stream,
// and the content of the few small files a build reads without unpacking
// (the user and group databases). A step that only writes files needs no
// more of the image below it than that (rootfs.Lower), so a build that
// finds the tables of its base layers in the cache repository never
// downloads those layers.
//
// Tables are recorded as a layer is first read or written (Builder), kept
// in the cache repository beside the step cache (RegistryStore), and read
// back and remembered for one build by an Index. An eStargz or
// zstd:chunked layer carries its own table, which the Index reads by range
// from the layer's registry where the store has none (FromEStargz,
// FromZstdChunked).
package layertoc

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Version is the format of the tables this package writes; a table of any
// other version is not read.
const Version = 1

// MediaType is the media type of a table's blob: its JSON, gzipped.
const MediaType = "application/vnd.slipway.layer.toc.v1+json+gzip"

const (
	// maxInline bounds the content a table carries for one file.
	maxInline = 1 << 20
	// maxTable bounds a table's JSON, so a damaged blob cannot exhaust
	// memory: a Debian base layer's is about 3 MB.
	maxTable = 256 << 20
)

// inlined are the files whose content a table carries, for steps that
// resolve user and group names (COPY --chown) against the image.
var inlined = map[string]bool{"etc/passwd": true, "etc/group": true}

// TOC is the table of contents of one layer.
type TOC struct {
	Version int `json:"version"`
	// DiffID is the digest of the uncompressed layer the table describes.
	DiffID  v1.Hash `json:"diffID"`
	Entries []Entry `json:"entries"`
}

// Entry is one tar header, with what extraction reads of it.
type Entry struct {
	Name       string            `json:"name"`
	Typeflag   byte              `json:"type"`
	Linkname   string            `json:"link,omitempty"`
	Size       int64             `json:"size,omitempty"`
	Mode       int64             `json:"mode"`
	Uid        int               `json:"uid,omitempty"` // tar.Header's spelling
	Gid        int               `json:"gid,omitempty"` // tar.Header's spelling
	ModTime    time.Time         `json:"mtime"`
	AccessTime time.Time         `json:"atime,omitzero"`
	Devmajor   int64             `json:"devmajor,omitempty"`
	Devminor   int64             `json:"devminor,omitempty"`
	Xattrs     map[string]string `json:"xattrs,omitempty"` // PAX records SCHILY.xattr.*
	// Offset is where the entry's content starts in the uncompressed
	// layer, or UnknownOffset in a table made from the one an eStargz or
	// zstd:chunked layer carries, which locates content in the compressed
	// blob only.
	Offset int64 `json:"offset"`
	// Content is the file's content, for the few files a table carries.
	Content []byte `json:"content,omitempty"`
}

const paxXattr = "SCHILY.xattr."

// UnknownOffset is the Offset of entries whose place in the uncompressed
// layer is not known.
const UnknownOffset = -1

// Header is the entry as a tar header, in the form a tar reader returns
// once extraction has dropped what it does not apply (user and group
// names, PAX records other than extended attributes).
func (e *Entry) Header() *tar.Header {
	hdr := &tar.Header{
		Typeflag: e.Typeflag, Name: e.Name, Linkname: e.Linkname, Size: e.Size, Mode: e.Mode,
		Uid: e.Uid, Gid: e.Gid, ModTime: e.ModTime, AccessTime: e.AccessTime,
		Devmajor: e.Devmajor, Devminor: e.Devminor, Format: tar.FormatPAX,
	}
	if len(e.Xattrs) > 0 {
		hdr.PAXRecords = make(map[string]string, len(e.Xattrs))
		for k, v := range e.Xattrs {
			hdr.PAXRecords[paxXattr+k] = v
		}
	}
	return hdr
}

// Inline returns the content the table carries for the regular file
// named name in the layer (as classified: clean, absolute), and whether it
// carries it. A name written twice in one layer ends as its last entry.
func (t *TOC) Inline(name string) ([]byte, bool) {
	for i := len(t.Entries) - 1; i >= 0; i-- {
		e := &t.Entries[i]
		if e.Typeflag != tar.TypeReg || path.Clean("/"+e.Name) != name {
			continue
		}
		if e.Content == nil && e.Size > 0 {
			return nil, false
		}
		return e.Content, true
	}
	return nil, false
}

// Builder records a table while a layer's tar is read or written.
// A nil *Builder records nothing.
type Builder struct {
	entries []Entry
	// capturing is the entry whose content is being kept, or -1.
	capturing int
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder { return &Builder{capturing: -1} }

// Entry records hdr, whose content starts at offset in the uncompressed
// stream, and returns content to be read in its place: for the files a
// table carries, reading it also keeps what it reads.
func (b *Builder) Entry(hdr *tar.Header, offset int64, content io.Reader) io.Reader {
	if b == nil {
		return content
	}
	b.finishCapture()
	e := Entry{
		Name: hdr.Name, Typeflag: hdr.Typeflag, Linkname: hdr.Linkname, Size: hdr.Size, Mode: hdr.Mode,
		Uid: hdr.Uid, Gid: hdr.Gid, ModTime: hdr.ModTime, AccessTime: hdr.AccessTime,
		Devmajor: hdr.Devmajor, Devminor: hdr.Devminor, Offset: offset,
	}
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, paxXattr); ok {
			if e.Xattrs == nil {
				e.Xattrs = map[string]string{}
			}
			e.Xattrs[name] = v
		}
	}
	if hdr.Typeflag != tar.TypeReg {
		// Only regular files have content; the others' Size means nothing.
		e.Size = 0
	}
	b.entries = append(b.entries, e)
	if content == nil || hdr.Typeflag != tar.TypeReg || hdr.Size == 0 || hdr.Size > maxInline ||
		!inlined[strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")] {
		return content
	}
	b.capturing = len(b.entries) - 1
	b.entries[b.capturing].Content = make([]byte, 0, hdr.Size)
	return io.TeeReader(content, b)
}

// Write keeps content of the entry being captured.
func (b *Builder) Write(p []byte) (int, error) {
	if b.capturing >= 0 {
		e := &b.entries[b.capturing]
		e.Content = append(e.Content, p...)
	}
	return len(p), nil
}

// finishCapture drops the content of an entry that was not read whole.
func (b *Builder) finishCapture() {
	if b.capturing < 0 {
		return
	}
	if e := &b.entries[b.capturing]; int64(len(e.Content)) != e.Size {
		e.Content = nil
	}
	b.capturing = -1
}

// TOC returns the table of the layer with diffID, once its whole tar was
// read or written.
func (b *Builder) TOC(diffID v1.Hash) *TOC {
	if b == nil {
		return nil
	}
	b.finishCapture()
	return &TOC{Version: Version, DiffID: diffID, Entries: b.entries}
}

// Marshal encodes the table as its blob: gzipped JSON.
func (t *TOC) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if err := json.NewEncoder(zw).Encode(t); err != nil {
		return nil, fmt.Errorf("encoding the table of contents of %s: %w", t.DiffID, err)
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ErrDamaged is wrapped by Unmarshal's errors: the blob is not a table
// this package can use for the layer asked for.
var ErrDamaged = errors.New("damaged table of contents")

// Unmarshal decodes a table's blob and checks that it describes the layer
// with diffID and that its entries are well formed.
func Unmarshal(blob io.Reader, diffID v1.Hash) (*TOC, error) {
	zr, err := gzip.NewReader(blob)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	defer zr.Close()
	var t TOC
	dec := json.NewDecoder(io.LimitReader(zr, maxTable))
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	if err := t.check(diffID); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return &t, nil
}

func (t *TOC) check(diffID v1.Hash) error {
	if t.Version != Version {
		return fmt.Errorf("version %d, want %d", t.Version, Version)
	}
	if t.DiffID != diffID {
		return fmt.Errorf("it describes layer %s, not %s", t.DiffID, diffID)
	}
	var last int64
	for i := range t.Entries {
		e := &t.Entries[i]
		switch {
		case e.Name == "":
			return fmt.Errorf("entry %d has no name", i)
		case e.Size < 0 || e.Offset != UnknownOffset && e.Offset < last:
			return fmt.Errorf("entry %q: size %d at offset %d after %d", e.Name, e.Size, e.Offset, last)
		case e.Content != nil && int64(len(e.Content)) != e.Size:
			return fmt.Errorf("entry %q: %d bytes of content for size %d", e.Name, len(e.Content), e.Size)
		}
		switch e.Typeflag {
		case tar.TypeReg, tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo,
			tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNUSparse, tar.TypeCont:
		default:
			return fmt.Errorf("entry %q: unknown type %q", e.Name, e.Typeflag)
		}
		if e.Offset != UnknownOffset {
			last = e.Offset + e.Size
		}
	}
	return nil
}
