package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/slipway-build/slipway/engine/layer"
	"github.com/slipway-build/slipway/engine/phase"
	"github.com/slipway-build/slipway/engine/rootfs"
	"golang.org/x/sys/unix"
)

const opaqueXattr = "trusted.overlay.opaque"

// Overlay is the Snapshotter for roots that overlayfs can be mounted over
// (chroot mode, as root). Use it as:
//
//	merged, _ := o.Prepare()        // run the step with merged as its root
//	changes, _ := o.Snapshot(ctx)   // what the step changed
//	layer.Write(o.Root(), changes, opts)
//	o.Commit()                      // make the changes part of the root
//
// or Discard instead of Commit to drop them.
type Overlay struct {
	lower   string
	upper   string
	work    string
	merged  string
	idx     *rootfs.Index
	ignore  *rootfs.IgnoreList
	mounted bool
}

// NewOverlay prepares an overlay over lower (the extracted root) with its
// upper, work and merged directories in workDir, which must be on the same
// file system as lower: Commit moves files rather than copying them. idx,
// when not nil, is kept in step with lower by Commit.
func NewOverlay(lower, workDir string, idx *rootfs.Index, ignore *rootfs.IgnoreList) (*Overlay, error) {
	o := &Overlay{
		lower:  lower,
		upper:  filepath.Join(workDir, "upper"),
		work:   filepath.Join(workDir, "work"),
		merged: filepath.Join(workDir, "merged"),
		idx:    idx,
		ignore: ignore,
	}
	for _, p := range []string{lower, o.upper, o.work, o.merged} {
		if strings.ContainsAny(p, ",:") {
			return nil, fmt.Errorf("overlay snapshots: path %s contains ',' or ':', which overlayfs options cannot carry; choose another work directory", p)
		}
	}
	for _, d := range []string{o.upper, o.work, o.merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("overlay snapshots: %w", err)
		}
	}
	var ls, us unix.Stat_t
	if err := unix.Stat(lower, &ls); err != nil {
		return nil, fmt.Errorf("overlay snapshots: root %s: %w", lower, err)
	}
	if err := unix.Stat(o.upper, &us); err != nil {
		return nil, fmt.Errorf("overlay snapshots: %w", err)
	}
	if ls.Dev != us.Dev {
		return nil, fmt.Errorf("overlay snapshots: work directory %s is not on the same file system as the root %s; put both under one --work-dir", workDir, lower)
	}
	return o, nil
}

// OverlaySupported reports whether overlayfs can be mounted with its
// directories in workDir, by mounting a scratch overlay there.
func OverlaySupported(workDir string) bool {
	dir, err := os.MkdirTemp(workDir, "overlay-probe-")
	if err != nil {
		return false
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return false
		}
	}
	if strings.ContainsAny(dir, ",:") {
		return false
	}
	if err := mountOverlay(filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")); err != nil {
		return false
	}
	return unix.Unmount(filepath.Join(dir, "merged"), 0) == nil
}

func mountOverlay(lower, upper, work, merged string) error {
	data := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	// Without redirects, metacopy and the inode index the upper directory
	// holds whole files and plain whiteouts only, which is what Snapshot
	// and Commit read. Kernels without these options get the defaults,
	// which are the same unless the distribution changed them.
	err := unix.Mount("overlay", merged, "overlay", 0, data+",redirect_dir=off,metacopy=off,index=off")
	if errors.Is(err, unix.EINVAL) {
		err = unix.Mount("overlay", merged, "overlay", 0, data)
	}
	if err != nil {
		return fmt.Errorf("mounting overlayfs on %s: %w", merged, err)
	}
	return nil
}

// Prepare mounts the overlay and returns the merged directory, the root
// the step must run in.
func (o *Overlay) Prepare() (string, error) {
	if o.mounted {
		return o.merged, nil
	}
	if err := mountOverlay(o.lower, o.upper, o.work, o.merged); err != nil {
		return "", err
	}
	o.mounted = true
	return o.merged, nil
}

// Root is where the changed files are read from when writing the layer:
// the merged directory, while mounted.
func (o *Overlay) Root() string { return o.merged }

// Snapshot reads the changes from the upper directory. The overlay stays
// mounted so the layer can be written from Root.
func (o *Overlay) Snapshot(ctx context.Context) ([]layer.Change, error) {
	defer phase.Start(phase.Snapshot)()
	if !o.mounted {
		return nil, errors.New("overlay snapshot: not prepared; call Prepare before the step runs")
	}
	lowerRoot, err := rootfs.OpenRoot(o.lower)
	if err != nil {
		return nil, fmt.Errorf("overlay snapshot: %w", err)
	}
	defer lowerRoot.Close()
	var changes []layer.Change
	// fresh are upper directories that are new or replace what the lower
	// layer had: everything beneath them is added, never compared with a
	// lower path that may now lead somewhere else.
	fresh := map[string]bool{}
	added := map[string]bool{}
	links := map[devIno][]string{}
	linkAdded := map[devIno]bool{}
	err = filepath.WalkDir(o.upper, func(hp string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("overlay snapshot: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if hp == o.upper {
			return nil
		}
		p := "/" + filepath.ToSlash(strings.TrimPrefix(hp, o.upper+"/"))
		if o.ignore.Ignored(p) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(hp, &st); err != nil {
			return fmt.Errorf("overlay snapshot: %w", err)
		}
		if isWhiteout(&st) {
			changes = append(changes, layer.Change{Path: p, Kind: layer.Delete})
			return nil
		}
		cur, err := o.entryIn(o.merged, p)
		if err != nil {
			return err
		}
		underFresh := fresh[filepath.Dir(p)]
		var lowerEntry rootfs.Entry
		inLower := false
		if !underFresh {
			// Strict lookup: a symlink among the lower parents means the
			// lower entry is not what the merged view shows here.
			lowerEntry, err = lowerRoot.Stat(p)
			inLower = err == nil
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			opaque, err := isOpaque(hp)
			if err != nil {
				return err
			}
			switch {
			case underFresh || !inLower || !lowerEntry.IsDir():
				fresh[p] = true
				changes = append(changes, layer.Change{Path: p, Kind: layer.Add})
			case opaque:
				fresh[p] = true
				changes = append(changes, layer.Change{Path: p, Kind: layer.Opaque}, layer.Change{Path: p, Kind: layer.Add})
			case dirDiffers(lowerEntry, cur):
				changes = append(changes, layer.Change{Path: p, Kind: layer.Add})
			}
			// Otherwise the directory was only copied up to hold a child.
			return nil
		}
		k := devIno{uint64(st.Dev), st.Ino}
		if st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink > 1 {
			links[k] = append(links[k], p)
		}
		if inLower && lowerEntry.Mode.Type() == cur.Mode.Type() && !metadataDiffers(lowerEntry, cur) && lowerEntry.SameXattrs(cur) {
			// Copied up without a change that shows (opened for writing,
			// chmod to the same mode): the walker sees nothing either.
			same := true
			if cur.Mode.IsRegular() {
				if same, err = sameContent(o.lower+p, hp); err != nil {
					return fmt.Errorf("overlay snapshot: comparing %s: %w", p, err)
				}
			}
			if same {
				return nil
			}
		}
		changes = append(changes, layer.Change{Path: p, Kind: layer.Add})
		added[p] = true
		if st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink > 1 {
			linkAdded[k] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for k := range linkAdded {
		for _, p := range links[k] {
			if !added[p] {
				added[p] = true
				changes = append(changes, layer.Change{Path: p, Kind: layer.Add})
			}
		}
	}
	sort.Slice(changes, func(i, j int) bool {
		if changes[i].Path != changes[j].Path {
			return changes[i].Path < changes[j].Path
		}
		return changes[i].Kind < changes[j].Kind
	})
	return changes, nil
}

// entryIn reads p under dir, with xattrs but without overlayfs's own.
func (o *Overlay) entryIn(dir, p string) (rootfs.Entry, error) {
	hp := dir + p
	var st unix.Stat_t
	if err := unix.Lstat(hp, &st); err != nil {
		return rootfs.Entry{}, err
	}
	e := rootfs.EntryFromStat(&st)
	if e.Mode&fs.ModeSymlink != 0 {
		l, err := os.Readlink(hp)
		if err != nil {
			return rootfs.Entry{}, err
		}
		e.Linkname = l
	}
	x, err := rootfs.Xattrs(hp)
	if err != nil {
		return rootfs.Entry{}, err
	}
	for k := range x {
		if strings.HasPrefix(k, "trusted.overlay.") {
			delete(x, k)
		}
	}
	if len(x) == 0 {
		x = nil
	}
	e.Xattrs = x
	return e, nil
}

func dirDiffers(lower, cur rootfs.Entry) bool {
	return metadataDiffers(lower, cur) || !lower.SameXattrs(cur)
}

func isWhiteout(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0
}

func isOpaque(hp string) (bool, error) {
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(hp, opaqueXattr, buf)
	if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("overlay snapshot: reading %s of %s: %w", opaqueXattr, hp, err)
	}
	return string(buf[:n]) == "y", nil
}

func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := make([]byte, 64*1024), make([]byte, 64*1024)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea == io.EOF || ea == io.ErrUnexpectedEOF {
			return eb == ea, nil
		}
		if ea != nil {
			return false, ea
		}
		if eb != nil {
			return false, eb
		}
	}
}

// unmount detaches the merged directory if it is mounted.
func (o *Overlay) unmount() error {
	if !o.mounted {
		return nil
	}
	if err := unix.Unmount(o.merged, 0); err != nil {
		return fmt.Errorf("unmounting overlay %s (is a process still using it?): %w", o.merged, err)
	}
	o.mounted = false
	return nil
}

// Discard unmounts the overlay and throws the step's changes away.
func (o *Overlay) Discard() error {
	if err := o.unmount(); err != nil {
		return err
	}
	return o.resetUpper()
}

func (o *Overlay) resetUpper() error {
	for _, d := range []string{o.upper, o.work} {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("clearing overlay directory: %w", err)
		}
		if err := os.Mkdir(d, 0o755); err != nil {
			return fmt.Errorf("clearing overlay directory: %w", err)
		}
	}
	return nil
}

// Commit unmounts the overlay and moves the upper directory into the root,
// applying whiteouts and opaque directories, then records every path it
// touched in the index. Prepare mounts a fresh overlay for the next step.
func (o *Overlay) Commit() error {
	defer phase.Start(phase.Snapshot)()
	if err := o.unmount(); err != nil {
		return err
	}
	root, err := rootfs.OpenRoot(o.lower)
	if err != nil {
		return err
	}
	defer root.Close()
	type dirMeta struct {
		p            string
		atime, mtime unix.Timespec
	}
	var dirs []dirMeta
	var touched []string
	// unlinked are inodes that lost a name in the root, so their other
	// names have a new ctime to record.
	unlinked := map[devIno]bool{}
	err = filepath.WalkDir(o.upper, func(hp string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("overlay commit: %w", err)
		}
		if hp == o.upper {
			return nil
		}
		p := "/" + filepath.ToSlash(strings.TrimPrefix(hp, o.upper+"/"))
		if o.ignore.Ignored(p) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		lp := o.lower + p
		var st unix.Stat_t
		if err := unix.Lstat(hp, &st); err != nil {
			return fmt.Errorf("overlay commit: %w", err)
		}
		var lst unix.Stat_t
		lerr := unix.Lstat(lp, &lst)
		lowerIsDir := lerr == nil && lst.Mode&unix.S_IFMT == unix.S_IFDIR
		forget := func() {
			if o.idx != nil {
				o.idx.Remove(p)
			}
			if lerr == nil && lst.Mode&unix.S_IFMT == unix.S_IFREG && lst.Nlink > 1 {
				unlinked[devIno{uint64(lst.Dev), lst.Ino}] = true
			}
		}
		if isWhiteout(&st) {
			forget()
			return removeAll(lp)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if lerr == nil {
				if err := removeAll(lp); err != nil {
					return err
				}
				forget()
			}
			if err := os.Rename(hp, lp); err != nil {
				return fmt.Errorf("overlay commit: %w", err)
			}
			touched = append(touched, p)
			return nil
		}
		opaque, err := isOpaque(hp)
		if err != nil {
			return err
		}
		if lerr == nil && (!lowerIsDir || opaque) {
			if err := removeAll(lp); err != nil {
				return err
			}
			forget()
			lowerIsDir = false
		}
		if !lowerIsDir {
			if err := unix.Mkdir(lp, 0o700); err != nil {
				return fmt.Errorf("overlay commit: mkdir %s: %w", lp, err)
			}
		}
		if err := copyDirMeta(hp, lp, &st); err != nil {
			return err
		}
		dirs = append(dirs, dirMeta{p: p, atime: st.Atim, mtime: st.Mtim})
		touched = append(touched, p)
		return nil
	})
	if err != nil {
		return err
	}
	// Children moved in changed the directories' times; put them back.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if err := unix.UtimesNano(o.lower+d.p, []unix.Timespec{d.atime, d.mtime}); err != nil {
			return fmt.Errorf("overlay commit: times of %s: %w", d.p, err)
		}
	}
	since := rootfs.SettledBefore(o.lower)
	var relinked []string
	if o.idx != nil && len(unlinked) > 0 {
		var others []string
		o.idx.Range(func(p string, e rootfs.Entry) bool {
			if unlinked[devIno{e.Dev, e.Ino}] {
				others = append(others, p)
			}
			return true
		})
		for _, p := range others {
			old, _ := o.idx.Get(p)
			e, err := root.Stat(p)
			if err != nil {
				continue // a name removed too
			}
			if e.Ino == old.Ino && e.Size == old.Size && e.Mtime == old.Mtime {
				e.Hash = old.Hash
			}
			e.MarkRacy(since)
			o.idx.Set(p, e)
			relinked = append(relinked, p)
		}
	}
	if o.idx != nil {
		for _, p := range touched {
			e, err := root.Stat(p)
			if err != nil {
				return fmt.Errorf("overlay commit: recording %s: %w", p, err)
			}
			if old, ok := o.idx.Get(p); ok && old.IsDir() != e.IsDir() {
				o.idx.Remove(p)
			}
			e.MarkRacy(since)
			o.idx.Set(p, e)
		}
		if err := o.idx.Settle(o.lower, append(touched, relinked...)); err != nil {
			return fmt.Errorf("overlay commit: %w", err)
		}
	}
	return o.resetUpper()
}

func removeAll(p string) error {
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("overlay commit: %w", err)
	}
	return nil
}

// copyDirMeta gives the lower directory the upper one's owner, mode and
// xattrs (overlayfs's own excepted).
func copyDirMeta(hp, lp string, st *unix.Stat_t) error {
	if err := unix.Lchown(lp, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("overlay commit: chown %s: %w", lp, err)
	}
	if err := unix.Chmod(lp, st.Mode&0o7777); err != nil {
		return fmt.Errorf("overlay commit: chmod %s: %w", lp, err)
	}
	x, err := rootfs.Xattrs(hp)
	if err != nil {
		return fmt.Errorf("overlay commit: %w", err)
	}
	old, err := rootfs.Xattrs(lp)
	if err != nil {
		return fmt.Errorf("overlay commit: %w", err)
	}
	for k := range old {
		if _, ok := x[k]; !ok {
			if err := unix.Lremovexattr(lp, k); err != nil && !errors.Is(err, unix.ENODATA) {
				return fmt.Errorf("overlay commit: removing xattr %s of %s: %w", k, lp, err)
			}
		}
	}
	for k, v := range x {
		if strings.HasPrefix(k, "trusted.overlay.") {
			continue
		}
		if err := unix.Lsetxattr(lp, k, []byte(v), 0); err != nil {
			return fmt.Errorf("overlay commit: setting xattr %s of %s: %w", k, lp, err)
		}
	}
	return nil
}
