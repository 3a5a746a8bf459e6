package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/slipway-build/slipway/engine/layertoc"
)

// A step that only writes files (COPY, ADD, WORKDIR) needs little of the
// image below it: whether its destination's parents exist and what they
// are, the symlinks on the way, and /etc/passwd for --chown. Unpacking the
// whole image for that costs seconds; Lower and Sparse avoid it.
//
// Lower is an image's file tree read from its layers' tar headers, with
// whiteouts and opaque directories applied as extraction applies them.
// Reading it is one pass over the headers, which seeks past the content of
// layers kept uncompressed in the layer cache. With WithTOCs, the headers
// come from each layer's table of contents instead where one is kept (or,
// for eStargz, carried in the blob and read by range), and the layer is not
// read whole at all.
//
// Sparse is an empty directory standing for that image. Reveal writes into
// it the entries that resolving a path passes through, exactly as
// extraction would have written them, except that regular files are empty
// (a step that writes files only asks whether they exist). Code written
// against an unpacked root then finds the same directories, symlinks and
// files wherever it looks, and a layer written from the sparse root has the
// same parent entries as one written from the unpacked root.

// maxContent bounds the files RevealFile fills in: user and group
// databases, never file payloads.
const maxContent = 16 << 20

// Lower is the file tree of an image, from its layers' headers.
type Lower struct {
	layers []v1.Layer
	// tocs holds each layer's table of contents, when the options keep
	// them: the one looked up, or the one recorded as the layer was read.
	tocs   []*layertoc.TOC
	opts   []Option
	ignore *IgnoreList
	tocIdx TOCIndex
	root   *lowerNode
}

type lowerNode struct {
	// hdr is nil for a directory that only entries below it imply.
	hdr *tar.Header
	// layer is the layer that last wrote the entry, as extraction's
	// opaque markers need to know.
	layer int
	// src is where a regular file's content is: its layer and its
	// entry's name there (a hardlink's is its target's).
	src contentRef
	// changed is the last layer that added or removed an entry in this
	// directory. Extraction sets a directory's times from its entry at the
	// end of the layer that has it; a later layer that changes the
	// directory without an entry for it leaves the time of that change.
	changed  int
	children map[string]*lowerNode
}

func newDir(hdr *tar.Header, li int) *lowerNode {
	return &lowerNode{hdr: hdr, layer: li, changed: -1, children: map[string]*lowerNode{}}
}

// stale reports a directory whose times extraction left at the moment a
// later layer changed it.
func (n *lowerNode) stale() bool { return n.hdr != nil && n.changed > n.layer }

type contentRef struct {
	layer int
	name  string
}

func (n *lowerNode) isDir() bool { return n.hdr == nil || n.hdr.Typeflag == tar.TypeDir }

func (n *lowerNode) isSymlink() bool { return n.hdr != nil && n.hdr.Typeflag == tar.TypeSymlink }

// ScanImage reads the file tree of img's layers. opts are ExtractImage's:
// the ignore list hides the same paths, and the layer cache is read first
// and filled as layers are read.
func ScanImage(ctx context.Context, img v1.Image, opts ...Option) (*Lower, error) {
	l := NewLower(opts...)
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing image layers: %w", err)
	}
	PrefetchTOCs(ctx, layers, opts...)
	for _, layer := range layers {
		if err := l.Add(ctx, layer); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// NewLower returns the empty tree of an image with no layers (scratch).
func NewLower(opts ...Option) *Lower {
	o := optionsOf(opts)
	return &Lower{opts: opts, ignore: o.ignore, tocIdx: o.tocs, root: newDir(nil, -1)}
}

// PrefetchTOCs starts looking up the tables of contents of layers, when
// the options keep tables, so that a Lower adding them one by one finds
// them looked up or on the way.
func PrefetchTOCs(ctx context.Context, layers []v1.Layer, opts ...Option) {
	idx := optionsOf(opts).tocs
	if idx == nil {
		return
	}
	for _, layer := range layers {
		go idx.Lookup(ctx, layer)
	}
}

// Add applies one more layer on top of the tree.
func (l *Lower) Add(ctx context.Context, layer v1.Layer) error {
	li := len(l.layers)
	l.layers = append(l.layers, layer)
	l.tocs = append(l.tocs, nil)
	if l.tocIdx == nil {
		return l.read(ctx, li, nil, v1.Hash{})
	}
	diffID, err := layer.DiffID()
	if err != nil {
		return l.read(ctx, li, nil, v1.Hash{})
	}
	if toc := l.tocIdx.Lookup(ctx, layer); toc != nil {
		err := l.apply(ctx, li, toc)
		if err == nil {
			l.tocs[li] = toc
			return nil
		}
		// The table went part of the way: start the tree again from the
		// layers below, whose tables are known to fit.
		l.tocIdx.Reject(diffID, err)
		l.root = newDir(nil, -1)
		for below := range li {
			if err := l.apply(ctx, below, l.tocs[below]); err != nil {
				return err
			}
		}
	}
	return l.read(ctx, li, layertoc.NewBuilder(), diffID)
}

// apply applies a layer's table of contents to the tree.
func (l *Lower) apply(ctx context.Context, li int, toc *layertoc.TOC) error {
	if toc == nil {
		return l.read(ctx, li, nil, v1.Hash{})
	}
	for i := range toc.Entries {
		hdr := toc.Entries[i].Header()
		if err := l.entry(li, hdr); err != nil {
			return fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
	return nil
}

// read applies layer li from its blob, recording its table of contents in
// toc when it is not nil.
func (l *Lower) read(ctx context.Context, li int, toc *layertoc.Builder, diffID v1.Hash) error {
	layer := l.layers[li]
	desc := fmt.Sprint(li + 1)
	if d, err := layer.Digest(); err == nil {
		desc += " (" + d.String() + ")"
	}
	rc, err := openLayer(layer, l.opts)
	if err != nil {
		return fmt.Errorf("reading layer %s: %w", desc, err)
	}
	err = scanEntries(ctx, rc, toc, func(hdr *tar.Header, _ io.Reader) error { return l.entry(li, hdr) })
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("reading the headers of layer %s: %w", desc, err)
	}
	if toc != nil {
		l.tocs[li] = toc.TOC(diffID)
		l.tocIdx.Record(l.tocs[li])
	}
	return nil
}

// entry mirrors extractor.entry on the tree.
func (l *Lower) entry(li int, hdr *tar.Header) error {
	kind, p, err := classify(hdr, false)
	if err != nil || kind == skipEntry {
		return err
	}
	if l.ignore.Ignored(p) {
		return nil
	}
	switch kind {
	case opaqueEntry:
		parent, _, err := l.walkDir(p, li, true)
		if err != nil {
			return err
		}
		clearOlder(parent, li)
		return nil
	case whiteoutEntry:
		dir, name := path.Split(p)
		if parent, _, err := l.walkDir(dir, li, false); err == nil && parent.children[name] != nil {
			delete(parent.children, name)
			parent.changed = li
		}
		return nil
	}
	dir, base := path.Split(p)
	parent, realDir, err := l.walkDir(dir, li, true)
	if err != nil {
		return err
	}
	if l.ignore.Ignored(path.Join(realDir, base)) {
		return nil
	}
	keepXattrsOnly(hdr)
	existing := parent.children[base]
	switch hdr.Typeflag {
	case tar.TypeDir:
		if existing != nil && existing.isDir() {
			existing.hdr, existing.layer = hdr, li
			return nil
		}
		parent.children[base] = newDir(hdr, li)
	case tar.TypeLink:
		target, err := l.linkedNode(hdr.Linkname)
		if err != nil {
			return err
		}
		// A hardlink is its target's inode: same metadata, same content.
		parent.children[base] = &lowerNode{hdr: target.hdr, layer: li, src: target.src}
	default:
		parent.children[base] = &lowerNode{hdr: hdr, layer: li, src: contentRef{layer: li, name: p}}
	}
	parent.changed = li
	return nil
}

// keepXattrsOnly drops the PAX records a tar reader already turned into
// header fields; the extended attributes are the ones extraction applies.
func keepXattrsOnly(hdr *tar.Header) {
	for k := range hdr.PAXRecords {
		if !strings.HasPrefix(k, paxXattr) {
			delete(hdr.PAXRecords, k)
		}
	}
	hdr.Uname, hdr.Gname = "", ""
}

// linkedNode is the entry a hardlink names.
func (l *Lower) linkedNode(linkname string) (*lowerNode, error) {
	target, err := linkTarget(linkname)
	if err != nil {
		return nil, err
	}
	tdir, tbase := path.Split(target)
	parent, _, err := l.walkDir(tdir, -1, false)
	if err != nil {
		return nil, fmt.Errorf("hardlink target %q: %w", linkname, err)
	}
	n := parent.children[tbase]
	if n == nil || n.hdr == nil || n.isDir() {
		return nil, fmt.Errorf("hardlink target %q: %w", linkname, os.ErrNotExist)
	}
	return n, nil
}

// clearOlder removes what layers before li left in dir, as an opaque
// marker does, keeping what layer li wrote there.
func clearOlder(dir *lowerNode, li int) {
	for name, child := range dir.children {
		switch {
		case child.layer != li:
			delete(dir.children, name)
			dir.changed = li
		case child.isDir():
			clearOlder(child, li)
		}
	}
}

// walkDir resolves dir as Root.walkDir does, following the tree's symlinks
// against its root; with create it adds the missing directories, as
// extraction creates them, in layer li.
func (l *Lower) walkDir(dir string, li int, create bool) (*lowerNode, string, error) {
	stack := []*lowerNode{l.root}
	var names []string
	parts := strings.Split(strings.TrimPrefix(Clean(dir), "/"), "/")
	links := 0
	for len(parts) > 0 {
		name := parts[0]
		parts = parts[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(names) > 0 {
				stack, names = stack[:len(stack)-1], names[:len(names)-1]
			}
			continue
		}
		cur := stack[len(stack)-1]
		n := cur.children[name]
		if n == nil {
			if !create {
				return nil, "", fmt.Errorf("resolving %s: %w", dir, os.ErrNotExist)
			}
			n = newDir(nil, li)
			cur.children[name] = n
			cur.changed = li
		}
		if n.isSymlink() {
			links++
			if links > maxSymlinks {
				return nil, "", fmt.Errorf("resolving %s: %w", dir, unix.ELOOP)
			}
			if strings.HasPrefix(n.hdr.Linkname, "/") {
				stack, names = stack[:1], nil
			}
			parts = append(strings.Split(n.hdr.Linkname, "/"), parts...)
			continue
		}
		if !n.isDir() {
			return nil, "", fmt.Errorf("resolving %s: %s is not a directory: %w", dir, "/"+path.Join(append(names, name)...), unix.ENOTDIR)
		}
		stack, names = append(stack, n), append(names, name)
	}
	return stack[len(stack)-1], "/" + path.Join(names...), nil
}

// node returns the entry at p, a path whose parents are directories (no
// symlink is followed), or nil.
func (l *Lower) node(p string) *lowerNode {
	n := l.root
	for _, name := range strings.Split(strings.TrimPrefix(Clean(p), "/"), "/") {
		if name == "" {
			continue
		}
		if n.children == nil {
			return nil
		}
		if n = n.children[name]; n == nil {
			return nil
		}
	}
	return n
}

// content reads a regular file's content from its layer.
func (l *Lower) content(n *lowerNode) ([]byte, error) {
	if toc := l.tocs[n.src.layer]; toc != nil {
		if content, ok := toc.Inline(n.src.name); ok {
			return content, nil
		}
	}
	rc, err := openLayer(l.layers[n.src.layer], l.opts)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var found []byte
	err = eachEntry(context.Background(), rc, func(hdr *tar.Header, r io.Reader) error {
		if Clean(hdr.Name) != n.src.name || hdr.Typeflag != tar.TypeReg {
			return nil
		}
		if hdr.Size > maxContent {
			return fmt.Errorf("%d bytes is more than a user database holds", hdr.Size)
		}
		// A name written twice in one layer ends as its last entry.
		var err error
		found, err = io.ReadAll(r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reading %s from its layer: %w", n.src.name, err)
	}
	if found == nil {
		return nil, fmt.Errorf("reading %s from its layer: %w", n.src.name, os.ErrNotExist)
	}
	return found, nil
}

// Sparse is a directory that stands for a Lower's image, holding only the
// entries revealed so far and whatever its user wrote into it.
type Sparse struct {
	lower    *Lower
	dir      string
	revealed map[string]bool
	filled   map[string]bool
}

// Sparse returns dir, an empty directory, as a sparse root of the tree.
func (l *Lower) Sparse(dir string) *Sparse {
	return &Sparse{lower: l, dir: dir, revealed: map[string]bool{}, filled: map[string]bool{}}
}

// Dir returns the sparse root's directory.
func (s *Sparse) Dir() string { return s.dir }

// Reveal writes into the sparse root each entry of the image that resolving
// the image path p passes through (symlinks followed, the last one too,
// against the root), unless the root already has something there. Call it
// before looking at or writing p.
func (s *Sparse) Reveal(p string) error {
	_, err := s.walk(p)
	return err
}

// RevealFile is Reveal, and the file p resolves to also gets its content:
// for the few files a step reads, such as /etc/passwd.
func (s *Sparse) RevealFile(p string) error {
	real, err := s.walk(p)
	if err != nil || s.filled[real] {
		return err
	}
	s.filled[real] = true
	n := s.lower.node(real)
	if n == nil || n.hdr == nil || n.hdr.Typeflag != tar.TypeReg {
		return nil
	}
	content, err := s.lower.content(n)
	if err != nil {
		return err
	}
	return s.place(real, n, content)
}

// walk resolves p component by component as securejoin does, revealing
// each one before looking at it, and returns the path it resolved to.
func (s *Sparse) walk(p string) (string, error) {
	cur := "/"
	remaining := p
	links := 0
	for remaining != "" {
		var part string
		part, remaining, _ = strings.Cut(remaining, "/")
		switch part {
		case "", ".":
			continue
		case "..":
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, part)
		if err := s.ensure(cur, next); err != nil {
			return "", err
		}
		host := s.host(next)
		fi, err := os.Lstat(host)
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > maxSymlinks {
			// The caller's own resolution reports the loop.
			return next, nil
		}
		target, err := os.Readlink(host)
		if err != nil {
			return "", err
		}
		if path.IsAbs(target) {
			cur = "/"
		}
		remaining = target + "/" + remaining
	}
	return cur, nil
}

// ensure reveals next, a child of the resolved directory cur, once.
func (s *Sparse) ensure(cur, next string) error {
	if s.revealed[next] {
		return nil
	}
	s.revealed[next] = true
	n := s.lower.node(next)
	if n == nil {
		return nil
	}
	if fi, err := os.Lstat(s.host(cur)); err != nil || !fi.IsDir() {
		// The step replaced or removed the directory: what the image had
		// below it is gone.
		return nil
	}
	if _, err := os.Lstat(s.host(next)); err == nil {
		return nil
	}
	return s.place(next, n, nil)
}

// place writes one entry through extraction, so that it gets exactly the
// metadata an unpacked root would give it, and leaves the times of the
// directory it goes into as they were.
func (s *Sparse) place(p string, n *lowerNode, content []byte) error {
	var hdr tar.Header
	if n.hdr == nil {
		hdr = tar.Header{Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Now()}
	} else {
		hdr = *n.hdr
		if n.stale() {
			hdr.ModTime = time.Now()
		}
	}
	hdr.Name = strings.TrimPrefix(p, "/")
	hdr.Format = tar.FormatPAX
	switch hdr.Typeflag {
	case tar.TypeDir:
		hdr.Name += "/"
	case tar.TypeReg:
		hdr.Size = int64(len(content))
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&hdr); err != nil {
		return fmt.Errorf("revealing %s: %w", p, err)
	}
	if _, err := tw.Write(content); err != nil {
		return fmt.Errorf("revealing %s: %w", p, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("revealing %s: %w", p, err)
	}
	parent := s.host(path.Dir(p))
	var st unix.Stat_t
	if err := unix.Lstat(parent, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: parent, Err: err}
	}
	if err := extract(context.Background(), s.dir, &buf, nil, s.lower.opts, nil); err != nil {
		return fmt.Errorf("revealing %s: %w", p, err)
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, parent, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "utimes", Path: parent, Err: err}
	}
	return nil
}

// host is where a resolved image path lies in the sparse root.
func (s *Sparse) host(p string) string {
	return filepath.Join(s.dir, filepath.FromSlash(p))
}
