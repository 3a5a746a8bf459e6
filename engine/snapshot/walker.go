package snapshot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/slipway-build/slipway/engine/layer"
	"github.com/slipway-build/slipway/engine/phase"
	"github.com/slipway-build/slipway/engine/rootfs"
	"golang.org/x/sys/unix"
)

// Snapshotter is how a build finds what a step changed: a factory of one
// Session per step. Walk and OverlayFS are the two.
type Snapshotter interface {
	// Start begins a step over root, whose state idx records; scratch is a
	// directory of the snapshotter's own on root's file system, and ignore
	// lists what no snapshot reports.
	Start(root, scratch string, idx *rootfs.Index, ignore *rootfs.IgnoreList) (Session, error)
}

// Session is one step's life over a root: Prepare gives the directory the
// step runs in; Snapshot returns what it changed, read from Root; Commit
// makes the changes part of the root and the index, or Discard drops what
// can be dropped. Discard after Commit does nothing more.
type Session interface {
	Prepare() (string, error)
	Snapshot(ctx context.Context) ([]layer.Change, error)
	Root() string
	Commit() error
	Discard() error
}

var (
	_ Session = (*Walker)(nil)
	_ Session = (*Overlay)(nil)
)

// Walk is the Snapshotter whose sessions run in the root itself and walk it
// (Walker).
type Walk struct{}

// Start returns a Walker over root that settles the index in Commit or
// Discard (settleOnCommit).
func (Walk) Start(root, _ string, idx *rootfs.Index, ignore *rootfs.IgnoreList) (Session, error) {
	return NewWalker(root, idx, ignore, settleOnCommit()), nil
}

// OverlayFS is the Snapshotter whose sessions run on an overlay of the root
// and read its upper directory (Overlay).
type OverlayFS struct{}

// Start returns an Overlay over root, its directories in scratch.
func (OverlayFS) Start(root, scratch string, idx *rootfs.Index, ignore *rootfs.IgnoreList) (Session, error) {
	return NewOverlay(root, scratch, idx, ignore)
}

// WalkerOption configures NewWalker.
type WalkerOption func(*Walker)

// WithWorkers bounds the goroutines that walk directories; the default is
// four per CPU, since the walk waits on stat far more than it computes.
func WithWorkers(n int) WalkerOption {
	return func(w *Walker) {
		if n > 0 {
			w.workers = n
		}
	}
}

// settleOnCommit leaves the entries a snapshot found racy to Commit or
// Discard, which a Session's user calls before the root changes again, so
// that the wait for their ctimes to settle (rootfs.Index.Settle) overlaps
// with the writing of the step's layer, which only reads the root. Until
// then the index holds them as racy: a snapshot would judge them by
// content, never miss a change.
func settleOnCommit() WalkerOption {
	return func(w *Walker) { w.settleOnCommit = true }
}

// Walker is the Snapshotter that compares a root with its rootfs.Index.
type Walker struct {
	root    string
	idx     *rootfs.Index
	ignore  *rootfs.IgnoreList
	workers int

	settleOnCommit bool
	// unsettled are the racy paths of the last snapshot, with
	// settleOnCommit.
	unsettled []string
}

// NewWalker returns a Walker that walks root and compares it with idx,
// leaving out ignored paths.
func NewWalker(root string, idx *rootfs.Index, ignore *rootfs.IgnoreList, opts ...WalkerOption) *Walker {
	w := &Walker{root: root, idx: idx, ignore: ignore, workers: 4 * runtime.GOMAXPROCS(0)}
	for _, o := range opts {
		o(w)
	}
	return w
}

// Prepare returns the root: a walked step runs in it.
func (w *Walker) Prepare() (string, error) { return w.root, nil }

// Root is the root, where the changed files are read from.
func (w *Walker) Root() string { return w.root }

// Commit settles the index (settleOnCommit): the step wrote the root
// itself, and Snapshot has brought the index up to date.
func (w *Walker) Commit() error { return w.settle() }

// Discard settles the index too (settleOnCommit): what a step wrote into
// the root stays, and so does what Snapshot recorded of it; a builder that
// must drop it unpacks the root again.
func (w *Walker) Discard() error { return w.settle() }

func (w *Walker) settle() error {
	racy := w.unsettled
	w.unsettled = nil
	return w.idx.Settle(w.root, racy)
}

type devIno struct{ dev, ino uint64 }

// walk is the state of one Snapshot call.
type walk struct {
	w    *Walker
	ctx  context.Context
	sem  chan struct{}
	wg   sync.WaitGroup
	host string
	// start is the root's SettledBefore, taken before any stat, for
	// MarkRacy.
	start time.Time

	mu      sync.Mutex
	err     error
	changes []layer.Change
	// racy are the paths written to the index as racy, for Settle.
	racy []string
	// checked are directories whose children may have been removed; seen
	// their children present now.
	checked map[string]bool
	seen    map[string]bool
	// links maps multiply-linked regular files to their paths, and
	// linkAdded marks those of them that changed.
	links     map[devIno][]string
	linkAdded map[devIno]bool
}

// Snapshot walks the root, returns the changes since the index was last
// updated, and updates the index.
func (w *Walker) Snapshot(ctx context.Context) ([]layer.Change, error) {
	defer phase.Start(phase.Snapshot)()
	host, err := realDir(w.root)
	if err != nil {
		return nil, err
	}
	s := &walk{
		w: w, ctx: ctx, host: host, start: rootfs.SettledBefore(w.root),
		sem:       make(chan struct{}, w.workers),
		checked:   map[string]bool{"/": true},
		seen:      map[string]bool{},
		links:     map[devIno][]string{},
		linkAdded: map[devIno]bool{},
	}
	// The root's own metadata never goes into a layer, and its children are
	// always checked for deletion: it is one directory.
	s.dir("/", false, true)
	s.wg.Wait()
	if s.err != nil {
		return nil, s.err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := s.finish(); err != nil {
		return nil, err
	}
	sort.Slice(s.changes, func(i, j int) bool {
		a, b := s.changes[i], s.changes[j]
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		return a.Kind < b.Kind
	})
	return s.changes, nil
}

func realDir(root string) (string, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return "", fmt.Errorf("snapshot root: %w", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("snapshot root %s is not a directory", root)
	}
	// In-place mode snapshots "/": children are joined as host+"/etc".
	return strings.TrimSuffix(filepath.Clean(root), "/"), nil
}

func (s *walk) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

func (s *walk) failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err != nil || s.ctx.Err() != nil
}

func (s *walk) hostPath(p string) string {
	if p == "/" && s.host == "" {
		return "/"
	}
	if p == "/" {
		return s.host
	}
	return s.host + p
}

// dir visits the entries of directory p. fresh means p is new or replaced,
// so everything beneath is added without consulting the index; check means
// p's children are recorded so deletions can be found.
func (s *walk) dir(p string, fresh, check bool) {
	if s.failed() {
		return
	}
	fd, err := unix.Open(s.hostPath(p), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return // removed while walking; the deletion pass reports it
	}
	if err != nil {
		s.fail(fmt.Errorf("snapshot: opening %s: %w", p, err))
		return
	}
	f := os.NewFile(uintptr(fd), s.hostPath(p))
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		s.fail(fmt.Errorf("snapshot: reading directory %s: %w", p, err))
		return
	}
	if check {
		s.mu.Lock()
		s.checked[p] = true
		for _, n := range names {
			s.seen[path.Join(p, n)] = true
		}
		s.mu.Unlock()
	}
	for _, n := range names {
		child := path.Join(p, n)
		if s.w.ignore.Ignored(child) {
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			s.fail(fmt.Errorf("snapshot: lstat %s: %w", child, err))
			return
		}
		cur := rootfs.EntryFromStat(&st)
		if cur.Mode&fs.ModeSymlink != 0 {
			if cur.Linkname, err = readlinkat(fd, n); err != nil {
				s.fail(fmt.Errorf("snapshot: readlink %s: %w", child, err))
				return
			}
		}
		descend, childFresh, childCheck, err := s.entry(child, cur, fresh)
		if err != nil {
			s.fail(err)
			return
		}
		if !descend {
			continue
		}
		select {
		case s.sem <- struct{}{}:
			s.wg.Add(1)
			go func() {
				defer func() { <-s.sem; s.wg.Done() }()
				s.dir(child, childFresh, childCheck)
			}()
		default:
			s.dir(child, childFresh, childCheck)
		}
	}
}

func readlinkat(fd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// entry decides about one path, as the package documentation describes,
// and reports how to walk it if it is a directory.
func (s *walk) entry(p string, cur rootfs.Entry, fresh bool) (descend, childFresh, childCheck bool, err error) {
	isDir := cur.IsDir()
	if cur.Mode.IsRegular() && cur.Nlink > 1 {
		s.mu.Lock()
		k := devIno{cur.Dev, cur.Ino}
		s.links[k] = append(s.links[k], p)
		s.mu.Unlock()
	}
	if fresh {
		return isDir, true, false, s.add(p, cur, layer.Add)
	}
	old, ok := s.w.idx.Get(p)
	switch {
	case !ok:
		return isDir, true, false, s.add(p, cur, layer.Add)
	case old.Mode.Type() != cur.Mode.Type():
		s.w.idx.Remove(p)
		return isDir, true, false, s.add(p, cur, layer.Add)
	case isDir && (old.Ino != cur.Ino || old.Dev != cur.Dev):
		s.w.idx.Remove(p)
		if err := s.add(p, cur, layer.Opaque); err != nil {
			return false, false, false, err
		}
		return true, true, false, nil
	case metadataDiffers(old, cur):
		return isDir, false, true, s.add(p, cur, layer.Add)
	case old.Ctime == cur.Ctime && old.Ino == cur.Ino && !old.Racy:
		return isDir, false, false, nil
	}
	// Metadata cannot decide: something touched the inode, or replaced it
	// with one that looks the same.
	host := s.hostPath(p)
	x, err := rootfs.Xattrs(host)
	if err != nil {
		return false, false, false, fmt.Errorf("snapshot: %w", err)
	}
	cur.Xattrs = x
	if !cur.SameXattrs(old) {
		return isDir, false, true, s.set(p, cur, layer.Add)
	}
	if cur.Mode.IsRegular() {
		if old.Hash == nil {
			return false, false, false, s.set(p, cur, layer.Add)
		}
		h, err := hashFile(host)
		if err != nil {
			return false, false, false, fmt.Errorf("snapshot: hashing %s: %w", p, err)
		}
		cur.Hash = h
		if !bytes.Equal(h, old.Hash) {
			return false, false, false, s.set(p, cur, layer.Add)
		}
	}
	s.update(p, cur)
	return isDir, false, true, nil
}

// update brings the index's entry for p up to date during the walk: every
// path it reaches is visited once, and paths the walk has yet to reach
// are read from the index only by their own visit. A copy of every
// changed entry held until the walk ends would double the index's memory
// when a step touches the whole tree.
func (s *walk) update(p string, cur rootfs.Entry) {
	cur.MarkRacy(s.start)
	s.w.idx.Set(p, cur)
	if cur.Racy {
		s.mu.Lock()
		s.racy = append(s.racy, p)
		s.mu.Unlock()
	}
}

func metadataDiffers(old, cur rootfs.Entry) bool {
	if old.Mode != cur.Mode || old.UID != cur.UID || old.GID != cur.GID ||
		old.Mtime != cur.Mtime || old.Linkname != cur.Linkname || old.Rdev != cur.Rdev {
		return true
	}
	// A directory's size is its on-disk listing, not content.
	return !cur.IsDir() && old.Size != cur.Size
}

// add reads the xattrs the index needs and records a change.
func (s *walk) add(p string, cur rootfs.Entry, kind layer.Kind) error {
	x, err := rootfs.Xattrs(s.hostPath(p))
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	cur.Xattrs = x
	return s.set(p, cur, kind)
}

func (s *walk) set(p string, cur rootfs.Entry, kind layer.Kind) error {
	if cur.Mode.IsRegular() && cur.Nlink > 1 && cur.Hash == nil {
		// Linking or unlinking another name bumps this inode's ctime
		// later; a hash lets that snapshot see the content is the same.
		// Only changed, multiply-linked files pay for it.
		h, err := hashFile(s.hostPath(p))
		if err != nil {
			return fmt.Errorf("snapshot: hashing %s: %w", p, err)
		}
		cur.Hash = h
	}
	s.update(p, cur)
	s.mu.Lock()
	defer s.mu.Unlock()
	if kind == layer.Opaque {
		s.changes = append(s.changes, layer.Change{Path: p, Kind: layer.Opaque})
	}
	s.changes = append(s.changes, layer.Change{Path: p, Kind: layer.Add})
	if cur.Mode.IsRegular() && cur.Nlink > 1 {
		s.linkAdded[devIno{cur.Dev, cur.Ino}] = true
	}
	return nil
}

func hashFile(p string) ([]byte, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// finish finds deletions, completes hardlink sets and settles the racy
// entries of the index, or leaves them to Commit (settleOnCommit).
func (s *walk) finish() error {
	// Other names of a changed inode join the layer so it keeps them as
	// hardlinks of one another.
	var added map[string]bool
	if len(s.linkAdded) > 0 {
		added = map[string]bool{}
		for _, c := range s.changes {
			if c.Kind == layer.Add {
				added[c.Path] = true
			}
		}
	}
	for k := range s.linkAdded {
		for _, p := range s.links[k] {
			if added[p] {
				continue
			}
			// Every name shares the inode's bumped ctime, so entry has
			// already updated its index entry.
			added[p] = true
			s.changes = append(s.changes, layer.Change{Path: p, Kind: layer.Add})
		}
	}
	var deleted []string
	s.w.idx.Range(func(p string, _ rootfs.Entry) bool {
		if p == "/" {
			return true
		}
		if s.checked[path.Dir(p)] && !s.seen[p] && !s.w.ignore.Ignored(p) {
			deleted = append(deleted, p)
		}
		return true
	})
	for _, p := range deleted {
		s.changes = append(s.changes, layer.Change{Path: p, Kind: layer.Delete})
		s.w.idx.Remove(p)
	}
	if s.w.settleOnCommit {
		s.w.unsettled = append(s.w.unsettled, s.racy...)
		return nil
	}
	return s.w.idx.Settle(s.w.root, s.racy)
}
