package rootfs

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/slipway-build/slipway/engine/compressed"
	"github.com/slipway-build/slipway/engine/extracted"
	"github.com/slipway-build/slipway/engine/layertoc"
	"github.com/slipway-build/slipway/engine/phase"
)

const (
	whiteoutPrefix = ".wh."
	// whiteoutMeta prefixes aufs bookkeeping names, which carry no file.
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
	paxXattr       = "SCHILY.xattr."
)

// ErrUnsafePath is wrapped by the errors for layer entries whose names or
// hardlink targets climb out of the root.
var ErrUnsafePath = errors.New("path climbs out of the root")

// Option configures Extract and ExtractImage.
type Option func(*options)

type options struct {
	ignore     *IgnoreList
	noHash     bool
	layerCache string
	// archive, owner and noDevices are for a plain archive (ADD), not a
	// layer.
	archive   bool
	owner     *[2]int
	noDevices bool
	tocs      TOCIndex
}

// AsArchive applies the tar as a plain archive, as ADD unpacks one
// (Docker's Untar): whiteout names are ordinary files, not removals.
func AsArchive() Option {
	return func(o *options) { o.archive = true }
}

// WithOwner gives every entry uid and gid instead of the owners in the tar
// (ADD --chown).
func WithOwner(uid, gid int) Option {
	return func(o *options) { o.owner = &[2]int{uid, gid} }
}

// WithoutDevices skips device and fifo entries, as an unprivileged Docker
// build unpacks an ADDed archive.
func WithoutDevices() Option {
	return func(o *options) { o.noDevices = true }
}

// TOCIndex is where the tables of contents of layers are found and kept
// (a *layertoc.Index).
type TOCIndex interface {
	// Lookup returns the table of layer, or nil.
	Lookup(ctx context.Context, layer v1.Layer) *layertoc.TOC
	// Record keeps the table of a layer that was read whole.
	Record(t *layertoc.TOC)
	// Reject reports a table from Lookup that does not fit its layer.
	Reject(diffID v1.Hash, err error)
}

// WithTOCs makes Lower read a layer's table of contents from idx instead
// of the layer, where idx has one, and makes ExtractImage and Lower record
// the table of each layer they read whole.
func WithTOCs(idx TOCIndex) Option {
	return func(o *options) { o.tocs = idx }
}

// WithLayerCache keeps every layer ExtractImage applies, uncompressed and
// named by its diff ID, in dir, and reads a layer from there when it is
// already kept: a build on the same node skips both the download and the
// decompression. Files appear by rename once their digest was checked, so
// builds sharing dir never read half a layer.
func WithLayerCache(dir string) Option {
	return func(o *options) { o.layerCache = dir }
}

// WithIgnoreList makes extraction skip every listed path: entries there are
// not written, and whiteouts and opaque directories do not remove them.
func WithIgnoreList(l *IgnoreList) Option {
	return func(o *options) { o.ignore = l }
}

// WithoutContentHash skips hashing regular files as they are written. The
// snapshot then treats a file whose ctime changed but whose size and mtime
// did not as changed, instead of comparing content.
func WithoutContentHash() Option {
	return func(o *options) { o.noHash = true }
}

// ExtractImage applies every layer of img onto root, oldest first. Each
// layer is streamed from its blob; none is held in memory.
func ExtractImage(ctx context.Context, root string, img v1.Image, idx *Index, opts ...Option) error {
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("listing image layers: %w", err)
	}
	tocs := optionsOf(opts).tocs
	for i, l := range layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		desc := strconv.Itoa(i + 1)
		if d, err := l.Digest(); err == nil {
			desc += " (" + d.String() + ")"
		}
		rc, err := openLayer(l, opts)
		if err != nil {
			return fmt.Errorf("reading layer %s: %w", desc, err)
		}
		toc, diffID := tocBuilder(l, tocs)
		err = extract(ctx, root, rc, idx, opts, toc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("extracting layer %s: %w", desc, err)
		}
		if toc != nil {
			tocs.Record(toc.TOC(diffID))
		}
	}
	return nil
}

func optionsOf(opts []Option) options {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// tocBuilder returns a Builder for the table of contents of l, when
// tables are kept (tocs is not nil) and l's diff ID is known, and the diff
// ID.
func tocBuilder(l v1.Layer, tocs TOCIndex) (*layertoc.Builder, v1.Hash) {
	if tocs == nil {
		return nil, v1.Hash{}
	}
	diffID, err := l.DiffID()
	if err != nil {
		return nil, v1.Hash{}
	}
	return layertoc.NewBuilder(), diffID
}

// openLayer returns a layer's uncompressed stream: from the layer cache
// when it holds the layer, else from the layer itself, kept in the cache
// as it is read.
func openLayer(l v1.Layer, opts []Option) (io.ReadCloser, error) {
	o := optionsOf(opts)
	if o.layerCache == "" {
		return compressed.Layer(l)
	}
	diffID, err := l.DiffID()
	if err != nil {
		return compressed.Layer(l)
	}
	dir := extracted.Dir(o.layerCache)
	if f, err := dir.Open(diffID); err == nil {
		return f, nil
	}
	rc, err := compressed.Layer(l)
	if err != nil {
		return nil, err
	}
	tmp := dir.Create()
	if tmp == nil {
		return rc, nil
	}
	h := sha256.New()
	return &keepingReader{Reader: io.TeeReader(rc, io.MultiWriter(tmp, h)), src: rc, tmp: tmp, hash: h, dir: dir, diffID: diffID}, nil
}

// keepingReader copies a layer into the layer cache while it is extracted,
// and keeps the copy only when the whole layer was read and its digest is
// the diff ID.
type keepingReader struct {
	io.Reader
	src    io.ReadCloser
	tmp    *extracted.Writer
	hash   hash.Hash
	dir    extracted.Dir
	diffID v1.Hash
}

func (k *keepingReader) Close() error {
	// Whatever extraction left unread (tar padding) belongs to the digest.
	_, drainErr := io.Copy(io.Discard, k.Reader)
	err := k.src.Close()
	if drainErr == nil && err == nil && hex.EncodeToString(k.hash.Sum(nil)) == k.diffID.Hex {
		// A copy that cannot be kept costs only a later download.
		_ = k.dir.Keep(k.tmp, k.diffID)
		return nil
	}
	k.tmp.Discard()
	return err
}

// Extract applies one uncompressed layer tar onto root and records every
// path it wrote or removed in idx. With a nil idx nothing is recorded and
// no file's content is hashed.
func Extract(root string, r io.Reader, idx *Index, opts ...Option) error {
	return extract(context.Background(), root, r, idx, opts, nil)
}

type dirTime struct {
	p            string
	atime, mtime time.Time
}

type extractor struct {
	r   *Root
	o   options
	idx *Index
	// written holds the paths this layer wrote, so an opaque marker clears
	// only what earlier layers left.
	written  map[string]bool
	order    []string
	hashes   map[string]*contentHash
	dirTimes []dirTime
	w        *contentWriter
	// parent is the directory of the last entry, open: a layer lists a
	// directory's entries together. Any removal drops it, so a name that
	// now resolves elsewhere is looked up again.
	parent parentDir
}

type parentDir struct {
	fd        int
	dir, real string
}

// errWriterFailed stops the loop once the content writer failed; the
// writer's own error, which names its entry, is the one returned.
var errWriterFailed = errors.New("writing a file failed")

func extract(ctx context.Context, root string, r io.Reader, idx *Index, opts []Option, toc *layertoc.Builder) error {
	defer phase.Start(phase.Unpack)()
	r = phase.Reader(r, phase.Pull, phase.Unpack)
	o := optionsOf(opts)
	rt, err := OpenRoot(root)
	if err != nil {
		return err
	}
	defer rt.Close()
	x := &extractor{r: rt, o: o, idx: idx, written: map[string]bool{}, hashes: map[string]*contentHash{}, w: newContentWriter(), parent: parentDir{fd: -1}}
	err = scanEntries(ctx, r, toc, x.entry)
	x.dropParent()
	werr := x.w.close()
	if werr != nil {
		// It came first: the loop stopped at a later entry because of it.
		return werr
	}
	if err != nil {
		return err
	}
	x.finishDirTimes()
	return x.record()
}

// eachEntry calls fn with every entry of a layer tar and its content, in
// order, until an error or the end of ctx.
func eachEntry(ctx context.Context, r io.Reader, fn func(*tar.Header, io.Reader) error) error {
	return scanEntries(ctx, r, nil, fn)
}

// scanEntries is eachEntry, also recording the layer's table of contents
// in toc when it is not nil. The table is only good once the whole stream
// was read: then its digest was checked.
func scanEntries(ctx context.Context, r io.Reader, toc *layertoc.Builder, fn func(*tar.Header, io.Reader) error) error {
	var offset func() int64
	if toc != nil {
		offset, r = counting(r)
	}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading layer tar: %w", err)
		}
		var content io.Reader = tr
		if toc != nil {
			content = toc.Entry(hdr, offset(), tr)
		}
		if err := fn(hdr, content); err != nil {
			return fmt.Errorf("layer entry %q: %w", hdr.Name, err)
		}
		if content != io.Reader(tr) {
			// The table keeps this file's content: read what fn left.
			if _, err := io.Copy(io.Discard, content); err != nil {
				return fmt.Errorf("reading layer tar: %w", err)
			}
		}
	}
	if toc != nil {
		// The tar's end may come before the stream's, where its digest is
		// checked.
		if _, err := io.Copy(io.Discard, r); err != nil {
			return fmt.Errorf("reading layer tar: %w", err)
		}
	}
	return nil
}

// counting returns r, counting what is read of it, and the count. A
// stream that can seek still can, so that a tar reader seeks past content
// it skips.
func counting(r io.Reader) (func() int64, io.Reader) {
	if s, ok := r.(io.ReadSeeker); ok {
		if _, err := s.Seek(0, io.SeekCurrent); err == nil {
			return func() int64 {
				n, _ := s.Seek(0, io.SeekCurrent)
				return n
			}, s
		}
	}
	c := &countingReader{r: r}
	return func() int64 { return c.n }, c
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (x *extractor) ignored(p string) bool { return x.o.ignore.Ignored(p) }

func (x *extractor) markWritten(p string) {
	if !x.written[p] {
		x.written[p] = true
		x.order = append(x.order, p)
	}
}

func (x *extractor) forget(p string) {
	if x.idx != nil {
		x.idx.Remove(p)
	}
}

// entryKind is what a layer entry asks of the tree it is applied to.
type entryKind int

const (
	skipEntry     entryKind = iota
	writeEntry              // create or replace the path
	whiteoutEntry           // remove the path
	opaqueEntry             // clear what earlier layers left in the directory
)

// classify reads what a layer entry asks, and of which clean, absolute
// path. Extraction and Lower apply entries by it. In a plain archive (ADD)
// whiteout names are files like any other.
func classify(hdr *tar.Header, archive bool) (entryKind, string, error) {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, tar.TypeXHeader:
		return skipEntry, "", nil
	}
	if Escapes(strings.TrimLeft(hdr.Name, "/")) {
		return skipEntry, "", fmt.Errorf("%w: refusing an unsafe layer", ErrUnsafePath)
	}
	p := Clean(hdr.Name)
	if p == "/" {
		// The root's own metadata belongs to whoever made the directory
		// (the work dir, or the container's /), not to the image.
		return skipEntry, "", nil
	}
	dir, base := path.Split(p)
	switch {
	case archive:
	case base == whiteoutOpaque:
		return opaqueEntry, path.Clean(dir), nil
	case strings.HasPrefix(base, whiteoutMeta):
		return skipEntry, "", nil
	case strings.HasPrefix(base, whiteoutPrefix):
		return whiteoutEntry, path.Join(dir, base[len(whiteoutPrefix):]), nil
	}
	return writeEntry, p, nil
}

func (x *extractor) entry(hdr *tar.Header, tr io.Reader) error {
	if x.w.failed.Load() {
		return errWriterFailed
	}
	kind, p, err := classify(hdr, x.o.archive)
	switch hdr.Typeflag {
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if x.o.noDevices {
			return nil
		}
	}
	if x.o.owner != nil {
		hdr.Uid, hdr.Gid = x.o.owner[0], x.o.owner[1]
	}
	switch {
	case err != nil || kind == skipEntry:
		return err
	case kind == opaqueEntry:
		return x.opaque(p)
	case kind == whiteoutEntry:
		return x.whiteout(p)
	}
	if x.ignored(p) {
		return nil
	}
	dir, base := path.Split(p)
	dfd, realDir, err := x.parentOf(dir)
	if errors.Is(err, errIgnoredPath) {
		return nil
	}
	if err != nil {
		return err
	}
	real := path.Join(realDir, base)
	if x.ignored(real) {
		return nil
	}

	// Most names are new: create first, and only when something is
	// already there look at it, keep it (a directory over a directory) or
	// remove it and create again.
	err = x.create(dfd, base, real, hdr, tr)
	if errors.Is(err, unix.EEXIST) {
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "lstat", Path: real, Err: err}
		}
		if hdr.Typeflag == tar.TypeDir && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = x.dirMetadata(dfd, base, real, hdr)
		} else {
			// After the removal a name may lead elsewhere: the cache lets
			// the parent go, this entry keeps it.
			x.parent = parentDir{fd: -1}
			defer unix.Close(dfd)
			if err := removeAllAt(dfd, base, real, x.ignored); err != nil {
				return err
			}
			x.forget(real)
			err = x.create(dfd, base, real, hdr, tr)
		}
	}
	if err != nil {
		return err
	}
	x.markWritten(real)
	return nil
}

// parentOf returns the directory dir of an entry to be written, opened
// (and made where missing) confined to the root, and where it really is.
// The descriptor is the extractor's.
func (x *extractor) parentOf(dir string) (int, string, error) {
	if x.parent.fd >= 0 && x.parent.dir == dir {
		return x.parent.fd, x.parent.real, nil
	}
	fd, real, err := x.r.openDir(dir, lookup{follow: true, create: true, onCreate: x.markWritten, skip: x.ignored})
	if err != nil {
		return -1, "", err
	}
	x.dropParent()
	x.parent = parentDir{fd: fd, dir: dir, real: real}
	return fd, real, nil
}

// dropParent forgets the open parent directory: called before anything
// is removed, after which its name may lead elsewhere.
func (x *extractor) dropParent() {
	if x.parent.fd >= 0 {
		unix.Close(x.parent.fd)
	}
	x.parent = parentDir{fd: -1}
}

// create makes the entry base in dfd, failing with EEXIST when the name
// is taken.
func (x *extractor) create(dfd int, base, real string, hdr *tar.Header, tr io.Reader) error {
	perm := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeReg: // the reader already turned TypeRegA into TypeReg
		return x.writeFile(dfd, base, real, hdr, tr, perm)
	case tar.TypeDir:
		if err := unix.Mkdirat(dfd, base, createMode(perm, 0o700)); err != nil {
			return &os.PathError{Op: "mkdir", Path: real, Err: err}
		}
		if len(xattrsOf(hdr)) == 0 {
			// The directory may have come out as the entry asks already:
			// then a stat spares opening it, chown and chmod.
			var st unix.Stat_t
			if unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil &&
				st.Mode&unix.S_IFMT == unix.S_IFDIR && hasMetadata(&st, hdr.Uid, hdr.Gid, perm) {
				x.dirTimes = append(x.dirTimes, dirTime{p: real, atime: atime(hdr), mtime: hdr.ModTime})
				return nil
			}
		}
		return x.dirMetadata(dfd, base, real, hdr)
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, dfd, base); err != nil {
			return &os.PathError{Op: "symlink", Path: real, Err: err}
		}
		return x.atMetadata(dfd, base, real, hdr, perm, false)
	case tar.TypeLink:
		return x.link(dfd, base, real, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		mode := perm
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		default:
			mode |= unix.S_IFIFO
		}
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		if err := unix.Mknodat(dfd, base, mode, dev); err != nil {
			return &os.PathError{Op: "mknod", Path: real, Err: err}
		}
		return x.atMetadata(dfd, base, real, hdr, perm, true)
	}
	return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
}

// dirMetadata applies a directory entry's owner, mode and xattrs; its
// times wait for finishDirTimes.
func (x *extractor) dirMetadata(dfd int, base, real string, hdr *tar.Header) error {
	fd, err := unix.Openat(dfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: real, Err: err}
	}
	err = fdMetadata(fd, real, hdr.Uid, hdr.Gid, uint32(hdr.Mode)&0o7777, xattrsOf(hdr))
	unix.Close(fd)
	if err != nil {
		return err
	}
	x.dirTimes = append(x.dirTimes, dirTime{p: real, atime: atime(hdr), mtime: hdr.ModTime})
	return nil
}

func atime(hdr *tar.Header) time.Time {
	if hdr.AccessTime.IsZero() {
		return hdr.ModTime
	}
	return hdr.AccessTime
}

// writeFile creates the file and leaves its content and metadata to the
// content writer.
func (x *extractor) writeFile(dfd int, base, real string, hdr *tar.Header, tr io.Reader, perm uint32) error {
	fd, err := unix.Openat(dfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, createMode(perm, 0o600))
	if err != nil {
		return &os.PathError{Op: "create", Path: real, Err: err}
	}
	f := &pendingFile{fd: fd, name: hdr.Name, real: real, uid: hdr.Uid, gid: hdr.Gid, perm: perm,
		xattrs: xattrsOf(hdr), atime: atime(hdr), mtime: hdr.ModTime}
	if x.o.noHash || x.idx == nil {
		// The hashes are the index's: with none, nothing reads them.
		delete(x.hashes, real)
	} else {
		f.hash, f.sum = newContentHash()
		x.hashes[real] = f.sum
	}
	return x.w.stream(f, tr, hdr.Size)
}

// createMode is the mode to create an entry with: its own where that has
// no setuid, setgid or sticky bit, which chown and writes would clear and
// so come last, else fallback; a later stat tells whether the umask left
// the mode as asked.
func createMode(perm, fallback uint32) uint32 {
	if perm&^0o777 != 0 {
		return fallback
	}
	return perm
}

// hasMetadata says whether st already has the owner and mode asked, so
// that chown and chmod can be left out: only for modes without setuid,
// setgid or sticky bits (createMode's), as chown would clear them.
func hasMetadata(st *unix.Stat_t, uid, gid int, perm uint32) bool {
	return perm&^0o777 == 0 && int64(st.Uid) == int64(uid) && int64(st.Gid) == int64(gid) && st.Mode&0o7777 == perm
}

// fdMetadata applies owner, mode and xattrs through an open descriptor, in
// that order: chown clears setuid bits and security.capability.
func fdMetadata(fd int, real string, uid, gid int, perm uint32, xattrs map[string]string) error {
	if err := unix.Fchown(fd, uid, gid); err != nil {
		return &os.PathError{Op: "chown", Path: real, Err: err}
	}
	if err := unix.Fchmod(fd, perm); err != nil {
		return &os.PathError{Op: "chmod", Path: real, Err: err}
	}
	return setXattrs(fd, real, xattrs)
}

func setXattrs(fd int, real string, xattrs map[string]string) error {
	for k, v := range xattrs {
		if err := unix.Fsetxattr(fd, k, []byte(v), 0); err != nil && !ignorableXattrErr(err) {
			return &os.PathError{Op: "setxattr " + k, Path: real, Err: err}
		}
	}
	return nil
}

// atMetadata applies owner, mode (unless the entry is a symlink), xattrs
// and times to name in dfd without following it.
func (x *extractor) atMetadata(dfd int, name, real string, hdr *tar.Header, perm uint32, chmod bool) error {
	if err := unix.Fchownat(dfd, name, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "chown", Path: real, Err: err}
	}
	if chmod {
		err := unix.Fchmodat(dfd, name, perm, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) {
			// No fchmodat2: plain fchmodat follows symlinks, but name is
			// the device or fifo just made by mknodat, never a symlink.
			err = unix.Fchmodat(dfd, name, perm, 0)
		}
		if err != nil {
			return &os.PathError{Op: "chmod", Path: real, Err: err}
		}
	}
	if xs := xattrsOf(hdr); len(xs) > 0 {
		// Reached through the directory descriptor so a symlink among the
		// parents cannot redirect it; lsetxattr leaves the last one alone.
		proc := "/proc/self/fd/" + strconv.Itoa(dfd) + "/" + name
		for k, v := range xs {
			if err := unix.Lsetxattr(proc, k, []byte(v), 0); err != nil && !ignorableXattrErr(err) {
				return &os.PathError{Op: "setxattr " + k, Path: real, Err: err}
			}
		}
	}
	return setTimes(dfd, name, real, atime(hdr), hdr.ModTime)
}

// ignorableXattrErr matches Docker: file systems without xattrs, and
// user.* attributes on symlinks and devices, which Linux refuses.
func ignorableXattrErr(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM)
}

func xattrsOf(hdr *tar.Header) map[string]string {
	var out map[string]string
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattr)
		if !ok || strings.HasPrefix(name, "trusted.overlay.") {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = v
	}
	return out
}

func setTimes(dfd int, name, real string, atime, mtime time.Time) error {
	ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
	if err := unix.UtimesNanoAt(dfd, name, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimes", Path: real, Err: err}
	}
	return nil
}

// linkTarget cleans a hardlink's target, refusing one that climbs out of
// the root or names the root itself.
func linkTarget(linkname string) (string, error) {
	if Escapes(strings.TrimLeft(linkname, "/")) {
		return "", fmt.Errorf("hardlink target %q: %w: refusing an unsafe layer", linkname, ErrUnsafePath)
	}
	target := Clean(linkname)
	if target == "/" {
		return "", fmt.Errorf("hardlink to the root directory: refusing an unsafe layer")
	}
	return target, nil
}

func (x *extractor) link(dfd int, base, real string, hdr *tar.Header) error {
	target, err := linkTarget(hdr.Linkname)
	if err != nil {
		return err
	}
	tdir, tbase := path.Split(target)
	tfd, trealDir, err := x.r.openDir(tdir, lookup{follow: true})
	if err != nil {
		return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
	}
	defer unix.Close(tfd)
	// Flags 0: link the target entry itself, never what a symlink there
	// points to.
	if err := unix.Linkat(tfd, tbase, dfd, base, 0); err != nil {
		return fmt.Errorf("hardlink %s to %s: %w", real, target, err)
	}
	treal := path.Join(trealDir, tbase)
	delete(x.hashes, real)
	if h, ok := x.hashes[treal]; ok {
		// Shared, so that it is the target's once the writer is done.
		x.hashes[real] = h
	} else if x.idx != nil {
		if e, ok := x.idx.Get(treal); ok && e.Hash != nil {
			x.hashes[real] = &contentHash{sum: e.Hash}
		}
	}
	return nil
}

func (x *extractor) whiteout(p string) error {
	if p == "/" || x.ignored(p) {
		return nil
	}
	dir, base := path.Split(p)
	dfd, realDir, err := x.r.openDir(dir, lookup{follow: true})
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	real := path.Join(realDir, base)
	if x.ignored(real) {
		return nil
	}
	x.dropParent()
	if err := removeAllAt(dfd, base, real, x.ignored); err != nil {
		return err
	}
	x.forget(real)
	return nil
}

// opaque removes what earlier layers left in dir, keeping what this layer
// already wrote there (tar order does not promise the marker comes first).
func (x *extractor) opaque(dir string) error {
	if x.ignored(dir) {
		return nil
	}
	dfd, realDir, err := x.r.openDir(dir, lookup{follow: true, create: true, onCreate: x.markWritten, skip: x.ignored})
	if errors.Is(err, errIgnoredPath) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	return x.clearOlder(dfd, realDir)
}

func (x *extractor) clearOlder(dfd int, dir string) error {
	fd, err := unix.Openat(dfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return &os.PathError{Op: "readdir", Path: dir, Err: err}
	}
	for _, n := range names {
		child := path.Join(dir, n)
		if x.ignored(child) {
			continue
		}
		if !x.written[child] {
			x.dropParent()
			if err := removeAllAt(fd, n, child, x.ignored); err != nil {
				return err
			}
			x.forget(child)
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "lstat", Path: child, Err: err}
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			cfd, err := unix.Openat(fd, n, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				return &os.PathError{Op: "open", Path: child, Err: err}
			}
			err = x.clearOlder(cfd, child)
			unix.Close(cfd)
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// finishDirTimes sets directory times last: creating children moved them.
func (x *extractor) finishDirTimes() {
	for i := len(x.dirTimes) - 1; i >= 0; i-- {
		d := x.dirTimes[i]
		dir, base := path.Split(d.p)
		dfd, _, err := x.r.openDir(dir, lookup{})
		if err != nil {
			// Removed or replaced later in the same layer.
			continue
		}
		_ = setTimes(dfd, base, d.p, d.atime, d.mtime)
		unix.Close(dfd)
	}
}

// record reads back every written path once the layer is complete, so the
// index holds final ctimes (links and chmods bump them) and directory
// mtimes.
func (x *extractor) record() error {
	if x.idx == nil {
		return nil
	}
	since := SettledBefore(x.r.path)
	var racy []string
	dirs := map[string]int{}
	defer func() {
		for _, fd := range dirs {
			unix.Close(fd)
		}
	}()
	for _, p := range x.order {
		dir, base := path.Split(p)
		dfd, ok := dirs[dir]
		if !ok {
			var err error
			dfd, _, err = x.r.openDir(dir, lookup{})
			if err != nil {
				dfd = -1
			}
			dirs[dir] = dfd
		}
		if dfd < 0 {
			x.idx.Remove(p)
			continue
		}
		e, err := statAt(dfd, base, x.r.HostPath(p))
		if errors.Is(err, unix.ENOENT) {
			x.idx.Remove(p)
			continue
		}
		if err != nil {
			return fmt.Errorf("recording %s: %w", p, err)
		}
		if h := x.hashes[p]; h != nil && e.Mode.IsRegular() {
			e.Hash = h.sum
		}
		e.MarkRacy(since)
		x.idx.Set(p, e)
		if e.Racy {
			racy = append(racy, p)
		}
	}
	return x.idx.Settle(x.r.path, racy)
}
