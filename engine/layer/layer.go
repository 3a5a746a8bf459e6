// Package layer writes OCI layers from a set of changed paths under a root
// directory.
//
// COPY knows the paths it wrote and a snapshot knows the paths a RUN changed,
// so neither needs a walk of the filesystem: both hand their changes here.
// The tar is compressed while it is written, into a temporary file, and the
// digest and diff ID are computed on the way, so a layer of any size costs
// one pass over its content and a bounded amount of memory.
package layer

import (
	"archive/tar"
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"

	"github.com/slipway-build/slipway/engine/extracted"
	"github.com/slipway-build/slipway/engine/layertoc"
	"github.com/slipway-build/slipway/engine/phase"
	"github.com/slipway-build/slipway/engine/rootfs"
)

// Kind says how a change is written into the layer.
type Kind int

const (
	// Add writes the path as it now is under the root.
	Add Kind = iota
	// Delete writes a whiteout for a path that no longer exists.
	Delete
	// Opaque marks a directory whose earlier contents are all gone; the
	// directory itself must also be an Add change.
	Opaque
)

// Change is one path that a step added, modified or removed.
type Change struct {
	// Path is absolute in the image and clean, e.g. "/etc/passwd".
	Path string
	Kind Kind
}

// Compression is a layer compression (--compression).
type Compression string

// The compressions; zstd layers are valid only in OCI manifests.
// Uncompressed is for layers that the build itself reads back and never
// pushes (a stage read only by COPY --from in in-place mode): it is not a
// --compression value.
const (
	Gzip         Compression = "gzip"
	Zstd         Compression = "zstd"
	Uncompressed Compression = "uncompressed"
)

// Options control how a layer is written.
type Options struct {
	// Compression is Gzip (the default) or Zstd.
	Compression Compression
	// Level is the compression level; zero means defaultLevel.
	Level int
	// Epoch, when set, clamps every modification time to it, as BuildKit
	// does with SOURCE_DATE_EPOCH, so that two builds give the same bytes.
	Epoch *time.Time
	// TempDir holds the compressed layer files; the default is os.TempDir.
	TempDir string
	// KeepUncompressed, when set, also keeps the uncompressed tar in this
	// directory of extracted layers (engine/extracted), which
	// rootfs.WithLayerCache reads, so that unpacking the layer later needs
	// neither a download nor a decompression.
	KeepUncompressed string
	// TOCs, when set, receives the layer's table of contents once it is
	// written (a *layertoc.Index), so that a later build reads that
	// instead of the layer.
	TOCs *layertoc.Index
	// Upload, when set, is handed the layer as soon as its compression
	// starts: a layer whose compressed bytes are read as they are written
	// and whose digests and size are stream.ErrNotComputed until Write
	// returns, so that its upload overlaps the compression. Write still
	// returns the complete layer.
	Upload func(v1.Layer)
}

// Write streams a tar of changes under root into a compressed temporary
// file and returns it as a layer. Entries are sorted, the parent directories
// of every change are included, and files sharing an inode are written as
// hardlinks to the first of them.
func Write(root string, changes []Change, opts Options) (v1.Layer, error) {
	defer phase.Start(phase.Compress)()
	f, err := os.CreateTemp(opts.TempDir, "slipway-layer-*")
	if err != nil {
		return nil, fmt.Errorf("creating layer file: %w", err)
	}
	var upload *growingLayer
	if opts.Upload != nil {
		upload = newGrowingLayer(f.Name())
	}
	l, err := write(f, root, changes, opts, upload)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		err = noSpace(err, filepath.Dir(f.Name()))
		if upload != nil {
			upload.finish(nil, err)
		}
		os.Remove(f.Name())
		return nil, err
	}
	if upload != nil {
		upload.finish(l, nil)
	}
	return l, nil
}

// noSpace names the real cause when the disk under dir filled up while a
// layer was written there: whichever file was being copied is not to blame.
func noSpace(err error, dir string) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("writing a layer in %s: no space left on the device (the build's --work-dir); free space there or point --work-dir at a larger disk: %w", dir, err)
	}
	return err
}

// write fills f; upload, when not nil, is told of every byte that reached
// f and is handed to opts.Upload once the compression is set up.
func write(f *os.File, root string, changes []Change, opts Options, upload *growingLayer) (*fileLayer, error) {
	digester := sha256.New()
	file := io.Writer(f)
	if upload != nil {
		file = growthWriter{w: f, g: upload}
	}
	counter := &countingWriter{w: io.MultiWriter(file, digester)}
	comp, mediaType, err := compressor(counter, opts)
	if err != nil {
		return nil, err
	}
	if upload != nil {
		upload.mediaType = mediaType
		opts.Upload(upload)
	}
	diffIDer := sha256.New()
	sinks := []io.Writer{comp, diffIDer}
	var kept *extracted.Writer
	keep := extracted.Dir(opts.KeepUncompressed)
	if keep != "" {
		if kept = keep.Create(); kept != nil {
			defer kept.Discard()
			sinks = append(sinks, kept)
		}
	}
	uncompressed := &countingWriter{w: io.MultiWriter(sinks...)}
	tw := tar.NewWriter(uncompressed)
	var toc *layertoc.Builder
	if opts.TOCs != nil {
		toc = layertoc.NewBuilder()
	}
	if err := writeEntries(tw, root, changes, opts.Epoch, toc, uncompressed); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("finishing layer tar: %w", err)
	}
	if err := comp.Close(); err != nil {
		return nil, fmt.Errorf("finishing layer compression: %w", err)
	}
	if kept != nil {
		// A failure to keep the copy costs only a later download.
		_ = keep.Keep(kept, hashOf(diffIDer))
	}
	if toc != nil {
		opts.TOCs.Record(toc.TOC(hashOf(diffIDer)))
	}
	return &fileLayer{
		path:      f.Name(),
		digest:    hashOf(digester),
		diffID:    hashOf(diffIDer),
		size:      counter.n,
		mediaType: mediaType,
		zstd:      mediaType == types.OCILayerZStd,
	}, nil
}

// gzipBlock is pgzip's unit of work. It is part of the format of the
// layers Slipway writes: changing it changes every layer digest.
const gzipBlock = 1 << 20

// zstdWindow is zstd's window, as the reference zstd's at its default
// level 3; the parallel jobs are four windows long. Like gzipBlock it is
// part of the format of zstd layers.
const zstdWindow = 2 << 20

// defaultLevel is the level of a layer written with none given, for gzip
// and zstd alike: 1, the fastest, kaniko's (go-containerregistry's). Level
// 6 would make a gzip layer about a tenth smaller for two and a half times
// the CPU, and the build waits for its last layer's compression.
const defaultLevel = 1

func compressor(w io.Writer, opts Options) (io.WriteCloser, types.MediaType, error) {
	level := cmp.Or(opts.Level, defaultLevel)
	switch opts.Compression {
	case "", Gzip:
		// pgzip compresses 1 MiB blocks on every core, each primed with
		// the tail of the one before. The output depends only on the
		// block size, never on how many cores did the work, so a
		// --reproducible layer has one digest on every machine.
		zw, err := pgzip.NewWriterLevel(w, level)
		if err != nil {
			return nil, "", fmt.Errorf("gzip level %d: %w", opts.Level, err)
		}
		if err := zw.SetConcurrency(gzipBlock, max(2, runtime.GOMAXPROCS(0))); err != nil {
			return nil, "", err
		}
		return zw, types.DockerLayer, nil
	case Uncompressed:
		return nopCloser{w}, types.DockerUncompressedLayer, nil
	case Zstd:
		// zstd compresses jobs of 4 windows (8 MiB) on every core, each
		// primed with the end of the one before, as pgzip's blocks. The
		// jobs, and so the output, depend only on the window, never on
		// how many cores did the work; with fewer than two encoders the
		// library would write a different, single-threaded stream.
		zopts := []zstd.EOption{
			zstd.WithEncoderConcurrency(max(2, runtime.GOMAXPROCS(0))),
			zstd.WithConcurrentBlocks(true),
			zstd.WithWindowSize(zstdWindow),
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
		}
		zw, err := zstd.NewWriter(w, zopts...)
		if err != nil {
			return nil, "", fmt.Errorf("zstd: %w", err)
		}
		return zw, types.OCILayerZStd, nil
	default:
		return nil, "", fmt.Errorf("unknown compression %q: use gzip or zstd", opts.Compression)
	}
}

// entry is one tar record to write, before sorting: its tar name (relative,
// no leading slash), how it is written, and its place among the changes,
// so that the last of two records with one name wins.
type entry struct {
	name string
	seq  int32
	kind uint8 // a Kind
}

// of is the path a whiteout or opaque marker is for.
func (e entry) of() string {
	if Kind(e.kind) == Opaque {
		return path.Dir(e.name)
	}
	return path.Join(path.Dir(e.name), strings.TrimPrefix(path.Base(e.name), whiteoutPrefix))
}

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
)

// writeEntries writes changes in tar-name order. A step that changed a
// whole tree hands in a change per file, so the records are a slice that
// shares the changes' strings; only the parent directories are kept in a
// set, and there are far fewer of them than files.
func writeEntries(tw *tar.Writer, root string, changes []Change, epoch *time.Time, toc *layertoc.Builder, written *countingWriter) error {
	entries := make([]entry, 0, len(changes))
	parents := map[string]bool{}
	for _, c := range changes {
		p := rootfs.Clean(c.Path) // no copy when the path is already clean
		if p == "/" {
			continue // the root itself is never a tar entry
		}
		rel := p[1:]
		switch c.Kind {
		case Add:
			entries = append(entries, entry{name: rel, kind: uint8(Add)})
		case Delete:
			entries = append(entries, entry{name: path.Join(path.Dir(rel), whiteoutPrefix+path.Base(rel)), kind: uint8(Delete)})
		case Opaque:
			entries = append(entries, entry{name: rel, kind: uint8(Add)}, entry{name: path.Join(rel, opaqueMarker), kind: uint8(Opaque)})
		}
		for dir := path.Dir(rel); dir != "." && dir != "/" && !parents[dir]; dir = path.Dir(dir) {
			parents[dir] = true
			entries = append(entries, entry{name: dir, kind: uint8(Add)})
		}
	}
	for i := range entries {
		entries[i].seq = int32(i)
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})

	w := entryWriter{tw: tw, root: root, epoch: epoch, links: map[inode]string{}, toc: toc, written: written}
	for i, e := range entries {
		if i+1 < len(entries) && entries[i+1].name == e.name {
			continue // a later record of the same name
		}
		var err error
		if Kind(e.kind) == Add {
			err = w.add(e.name)
		} else {
			err = w.marker(e.name, e.of())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

type inode struct{ dev, ino uint64 }

type entryWriter struct {
	tw    *tar.Writer
	root  string
	epoch *time.Time
	links map[inode]string
	// toc, when not nil, records the table of contents; written counts
	// the tar's bytes, so that it knows where content starts.
	toc     *layertoc.Builder
	written *countingWriter
}

// marker writes a whiteout or opaque marker, owned by root like BuildKit's.
func (w *entryWriter) marker(name, of string) error {
	parent, err := os.Lstat(filepath.Join(w.root, filepath.FromSlash(path.Dir(name))))
	mtime := time.Unix(0, 0)
	if err == nil {
		mtime = parent.ModTime()
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, ModTime: w.clamp(mtime), Format: tar.FormatPAX}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing whiteout for /%s: %w", of, err)
	}
	w.toc.Entry(hdr, w.written.n, nil)
	return nil
}

func (w *entryWriter) clamp(t time.Time) time.Time {
	if w.epoch != nil && t.After(*w.epoch) {
		return *w.epoch
	}
	return t.Truncate(time.Second)
}

func (w *entryWriter) add(rel string) error {
	full := filepath.Join(w.root, filepath.FromSlash(rel))
	fi, err := os.Lstat(full)
	if err != nil {
		return fmt.Errorf("adding /%s to layer: %w", rel, err)
	}
	link := ""
	if fi.Mode()&os.ModeSymlink != 0 {
		if link, err = os.Readlink(full); err != nil {
			return fmt.Errorf("adding /%s to layer: %w", rel, err)
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return fmt.Errorf("adding /%s to layer: %w", rel, err)
	}
	hdr.Name = rel
	if fi.IsDir() {
		hdr.Name += "/"
	}
	hdr.Uname, hdr.Gname = "", ""
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	hdr.ModTime = w.clamp(fi.ModTime())
	hdr.Format = tar.FormatPAX
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok {
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		if fi.Mode().IsRegular() && st.Nlink > 1 {
			key := inode{dev: uint64(st.Dev), ino: st.Ino}
			if first, seen := w.links[key]; seen {
				hdr.Typeflag = tar.TypeLink
				hdr.Linkname = first
				hdr.Size = 0
			} else {
				w.links[key] = rel
			}
		}
	}
	if err := xattrs(full, hdr); err != nil {
		return fmt.Errorf("reading xattrs of /%s: %w", rel, err)
	}
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("writing /%s to layer: %w", rel, err)
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
		w.toc.Entry(hdr, w.written.n, nil)
		return nil
	}
	f, err := os.Open(full)
	if err != nil {
		return fmt.Errorf("adding /%s to layer: %w", rel, err)
	}
	defer f.Close()
	if _, err := io.CopyN(w.tw, w.toc.Entry(hdr, w.written.n, f), hdr.Size); err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("copying /%s into layer: it shrank while being written: %w", rel, err)
		}
		return fmt.Errorf("copying /%s into layer: %w", rel, err)
	}
	return nil
}

// xattrs copies extended attributes into PAX records, the form docker and
// BuildKit read back; security.capability is how file capabilities travel.
func xattrs(full string, hdr *tar.Header) error {
	x, err := rootfs.ImageXattrs(full)
	if err != nil || len(x) == 0 {
		return err
	}
	if hdr.PAXRecords == nil {
		hdr.PAXRecords = map[string]string{}
	}
	for name, value := range x {
		hdr.PAXRecords["SCHILY.xattr."+name] = value
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func hashOf(h hash.Hash) v1.Hash {
	return v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%x", h.Sum(nil))}
}

// fileLayer is a compressed layer on disk whose digests are already known,
// so pushing it reads the file once and never recompresses it.
type fileLayer struct {
	path      string
	digest    v1.Hash
	diffID    v1.Hash
	size      int64
	mediaType types.MediaType
	zstd      bool
}

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return l.mediaType, nil }
func (l *fileLayer) Compressed() (io.ReadCloser, error)  { return os.Open(l.path) }

func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	if l.mediaType == types.DockerUncompressedLayer {
		return f, nil
	}
	if l.zstd {
		zr, err := zstd.NewReader(f, zstd.WithDecoderConcurrency(1))
		if err != nil {
			f.Close()
			return nil, err
		}
		return &closers{Reader: zr, close: func() error { zr.Close(); return f.Close() }}, nil
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &closers{Reader: zr, close: func() error { zr.Close(); return f.Close() }}, nil
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

type closers struct {
	io.Reader
	close func() error
}

func (c *closers) Close() error { return c.close() }
