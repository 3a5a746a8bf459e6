package rootfs

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Entry is what the Index knows about one path: the metadata lstat reported
// right after Slipway wrote it.
type Entry struct {
	// Mode holds the type bits, the permission bits and setuid, setgid
	// and sticky, as in io/fs.
	Mode     fs.FileMode
	UID, GID uint32
	Size     int64
	// Mtime and Ctime are nanoseconds since the Unix epoch.
	Mtime, Ctime int64
	Dev, Ino     uint64
	Nlink        uint64
	Rdev         uint64
	// Linkname is the target of a symlink.
	Linkname string
	// Xattrs is nil when the path has none.
	Xattrs map[string]string
	// Hash is the sha256 of a regular file's content, nil when it was not
	// computed (files that RUN or COPY wrote are never read just to hash
	// them).
	Hash []byte
	// Racy is set when the ctime was so close to the moment it was read
	// that a later write could leave the same ctime on a file system with
	// coarse timestamps (git's "racily clean" problem); snapshots then
	// decide by content, not by metadata.
	Racy bool
}

// MarkRacy sets Racy from since, the SettledBefore of the entry's root
// taken before the entry was read: a ctime from since on may be shared by
// a later change.
func (e *Entry) MarkRacy(since time.Time) {
	e.Racy = e.Ctime >= since.UnixNano()
}

// IsDir reports whether the entry is a directory.
func (e Entry) IsDir() bool { return e.Mode.IsDir() }

// SameXattrs reports whether two entries carry the same extended attributes.
func (e Entry) SameXattrs(o Entry) bool {
	return maps.Equal(e.Xattrs, o.Xattrs)
}

// Index maps clean absolute image paths ("/etc/passwd") to Entries. It is
// safe for concurrent use.
//
// It holds an entry for every path of the root, so its size per path is
// most of a build's memory on a tree of many small files: entries are kept
// as records, half an Entry's size, with the fields most paths leave empty
// behind one pointer.
type Index struct {
	mu      sync.RWMutex
	entries map[string]record
}

// record is how the Index keeps an Entry: 72 bytes where an Entry takes
// 136. Racy is the top bit of nlink.
type record struct {
	size, mtime, ctime int64
	dev, ino           uint64
	mode               fs.FileMode
	uid, gid           uint32
	nlink              uint32
	// hash is a sha256, the only hash the Index is given in practice.
	hash *[sha256.Size]byte
	rare *rareFields
}

// rareFields are the parts of an Entry that most paths leave empty.
type rareFields struct {
	nlink    uint64 // when it does not fit record.nlink
	rdev     uint64
	linkname string
	xattrs   map[string]string
	hash     []byte // a hash of another length
}

const (
	racyBit   = 1 << 31
	nlinkMask = racyBit - 1
)

func pack(e Entry) record {
	r := record{size: e.Size, mtime: e.Mtime, ctime: e.Ctime, dev: e.Dev, ino: e.Ino, mode: e.Mode, uid: e.UID, gid: e.GID}
	var rare rareFields
	if e.Nlink <= nlinkMask {
		r.nlink = uint32(e.Nlink)
	} else {
		r.nlink = nlinkMask
		rare.nlink = e.Nlink
	}
	if e.Racy {
		r.nlink |= racyBit
	}
	if len(e.Hash) == sha256.Size {
		r.hash = (*[sha256.Size]byte)(e.Hash)
	} else if e.Hash != nil {
		rare.hash = e.Hash
	}
	rare.rdev, rare.linkname, rare.xattrs = e.Rdev, e.Linkname, e.Xattrs
	if rare.nlink != 0 || rare.rdev != 0 || rare.linkname != "" || rare.xattrs != nil || rare.hash != nil {
		r.rare = &rare
	}
	return r
}

func (r record) entry() Entry {
	e := Entry{Mode: r.mode, UID: r.uid, GID: r.gid, Size: r.size, Mtime: r.mtime, Ctime: r.ctime,
		Dev: r.dev, Ino: r.ino, Nlink: uint64(r.nlink & nlinkMask), Racy: r.nlink&racyBit != 0}
	if r.hash != nil {
		e.Hash = r.hash[:]
	}
	if x := r.rare; x != nil {
		if x.nlink != 0 {
			e.Nlink = x.nlink
		}
		e.Rdev, e.Linkname, e.Xattrs = x.rdev, x.linkname, x.xattrs
		if x.hash != nil {
			e.Hash = x.hash
		}
	}
	return e
}

func (r record) isDir() bool { return r.mode.IsDir() }

// NewIndex returns an empty Index.
func NewIndex() *Index {
	return &Index{entries: make(map[string]record)}
}

// Get returns the entry for path.
func (idx *Index) Get(p string) (Entry, bool) {
	idx.mu.RLock()
	r, ok := idx.entries[p]
	idx.mu.RUnlock()
	if !ok {
		return Entry{}, false
	}
	return r.entry(), true
}

// Set stores e for path.
func (idx *Index) Set(p string, e Entry) {
	r := pack(e)
	idx.mu.Lock()
	idx.entries[p] = r
	idx.mu.Unlock()
}

// Remove forgets path and, when it was a directory, everything beneath it.
func (idx *Index) Remove(p string) {
	idx.mu.Lock()
	defer idx.mu.Unlock()
	idx.removeLocked(p)
}

func (idx *Index) removeLocked(p string) {
	r, ok := idx.entries[p]
	delete(idx.entries, p)
	if ok && !r.isDir() {
		return
	}
	// A directory's descendants are found by prefix; directory removals are
	// rare enough (whiteouts, replaced trees) that a scan beats keeping a
	// second, per-directory map for every path.
	prefix := p + "/"
	if p == "/" {
		prefix = "/"
	}
	for k := range idx.entries {
		if strings.HasPrefix(k, prefix) {
			delete(idx.entries, k)
		}
	}
}

// replaceWith stores e for p, forgetting what was beneath p unless both
// the old and the new entry are directories.
func (idx *Index) replaceWith(p string, e Entry) {
	r := pack(e)
	idx.mu.Lock()
	if old, ok := idx.entries[p]; ok && !(old.isDir() && e.IsDir()) {
		idx.removeLocked(p)
	}
	idx.entries[p] = r
	idx.mu.Unlock()
}

// Len returns the number of paths recorded.
func (idx *Index) Len() int {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	return len(idx.entries)
}

// Range calls fn for every path until fn returns false. fn must not modify
// the Index.
func (idx *Index) Range(fn func(path string, e Entry) bool) {
	idx.mu.RLock()
	defer idx.mu.RUnlock()
	for k, r := range idx.entries {
		if !fn(k, r.entry()) {
			return
		}
	}
}

// Record reads the current metadata of path under root and stores it. When
// path is a directory, everything beneath it is recorded too (symlinks are
// recorded, never followed). The builder calls it for the files it wrote
// itself, e.g. for COPY. Content hashes are not computed.
func (idx *Index) Record(root, p string) error {
	p = Clean(p)
	r, err := OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	since := SettledBefore(root)
	e, err := r.Stat(p)
	if err != nil {
		return err
	}
	e.MarkRacy(since)
	idx.replaceWith(p, e)
	racy := []string{p}
	if e.IsDir() {
		if err := idx.recordTree(r, p, since, &racy); err != nil {
			return err
		}
	}
	return idx.Settle(root, racy)
}

// RecordPaths records exactly the given paths (directories without their
// contents), waiting out the racy window once for all of them: the builder
// calls it with every path a COPY wrote.
func (idx *Index) RecordPaths(root string, paths []string) error {
	r, err := OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	since := SettledBefore(root)
	var racy []string
	for _, p := range paths {
		p = Clean(p)
		e, err := r.Stat(p)
		if err != nil {
			return fmt.Errorf("recording %s: %w", p, err)
		}
		e.MarkRacy(since)
		idx.replaceWith(p, e)
		if e.Racy {
			racy = append(racy, p)
		}
	}
	return idx.Settle(root, racy)
}

func (idx *Index) recordTree(r *Root, dir string, since time.Time, racy *[]string) error {
	host := r.HostPath(dir)
	return filepath.WalkDir(host, func(hp string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("recording %s: %w", hp, err)
		}
		if hp == host {
			return nil
		}
		rel, err := filepath.Rel(r.path, hp)
		if err != nil {
			return err
		}
		p := "/" + filepath.ToSlash(rel)
		e, err := lstatEntry(hp)
		if err != nil {
			return fmt.Errorf("recording %s: %w", p, err)
		}
		e.MarkRacy(since)
		idx.Set(p, e)
		if e.Racy {
			*racy = append(*racy, p)
		}
		return nil
	})
}

// Clean turns a name from a layer or a Dockerfile into the index's form:
// absolute, slash-separated, without "." or ".." elements. Because the
// result is rooted, ".." can never climb above "/"; callers that must refuse
// such names check with Escapes first.
func Clean(p string) string {
	if strings.HasPrefix(p, "/") {
		// No copy of a path that is already clean: the index keeps a
		// path per file, and so do the lists of changes it comes from.
		return path.Clean(p)
	}
	return path.Clean("/" + p)
}

// Escapes reports whether a relative name climbs above its starting
// directory with "..", as "../../etc/x" or "a/../../b" do.
func Escapes(name string) bool {
	depth := 0
	for _, el := range strings.Split(name, "/") {
		switch el {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

// lstatEntry reads an Entry for a host path whose parents are known to be
// real directories.
func lstatEntry(hostPath string) (Entry, error) {
	var st unix.Stat_t
	if err := unix.Lstat(hostPath, &st); err != nil {
		return Entry{}, &os.PathError{Op: "lstat", Path: hostPath, Err: err}
	}
	e := EntryFromStat(&st)
	if e.Mode&fs.ModeSymlink != 0 {
		target, err := os.Readlink(hostPath)
		if err != nil {
			return Entry{}, err
		}
		e.Linkname = target
	}
	x, err := Xattrs(hostPath)
	if err != nil {
		return Entry{}, err
	}
	e.Xattrs = x
	return e, nil
}

// EntryFromStat converts what lstat returned. Linkname, Xattrs and Hash are
// left for the caller.
func EntryFromStat(st *unix.Stat_t) Entry {
	return Entry{
		Mode:  FileMode(st.Mode),
		UID:   st.Uid,
		GID:   st.Gid,
		Size:  st.Size,
		Mtime: st.Mtim.Nano(),
		Ctime: st.Ctim.Nano(),
		Dev:   st.Dev,
		Ino:   st.Ino,
		Nlink: uint64(st.Nlink),
		Rdev:  st.Rdev,
	}
}

// FileMode converts a raw st_mode to an io/fs FileMode.
func FileMode(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// UnixMode converts Go's mode bits, whose setuid, setgid and sticky bits are
// not the kernel's, into a mode for chmod and mknod. A plain number such as
// 0o1777 is taken as the kernel's bits.
func UnixMode(m fs.FileMode) uint32 {
	mode := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= unix.S_ISUID
	}
	if m&fs.ModeSetgid != 0 {
		mode |= unix.S_ISGID
	}
	if m&fs.ModeSticky != 0 {
		mode |= unix.S_ISVTX
	}
	return mode | uint32(m)&0o7000
}

// ImageXattrs returns the extended attributes that belong in an image:
// all but trusted.* (overlayfs' own, and root-only) and security.selinux
// (the host's labels).
func ImageXattrs(hostPath string) (map[string]string, error) {
	x, err := Xattrs(hostPath)
	for name := range x {
		if strings.HasPrefix(name, "trusted.") || name == "security.selinux" {
			delete(x, name)
		}
	}
	return x, err
}

// Xattrs returns the extended attributes of a path without following a
// final symlink, or nil when it has none. File systems without xattr support
// report none.
func Xattrs(hostPath string) (map[string]string, error) {
	buf := make([]byte, 256)
	var n int
	for {
		var err error
		n, err = unix.Llistxattr(hostPath, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := unix.Llistxattr(hostPath, nil)
			if err != nil {
				return nil, &os.PathError{Op: "llistxattr", Path: hostPath, Err: err}
			}
			buf = make([]byte, sz+64)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, &os.PathError{Op: "llistxattr", Path: hostPath, Err: err}
		}
		break
	}
	if n == 0 {
		return nil, nil
	}
	out := make(map[string]string)
	for _, name := range bytes.Split(buf[:n], []byte{0}) {
		if len(name) == 0 {
			continue
		}
		v, err := getXattr(hostPath, string(name))
		if err != nil {
			return nil, err
		}
		out[string(name)] = v
	}
	return out, nil
}

func getXattr(hostPath, name string) (string, error) {
	buf := make([]byte, 128)
	for {
		n, err := unix.Lgetxattr(hostPath, name, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := unix.Lgetxattr(hostPath, name, nil)
			if err != nil {
				return "", &os.PathError{Op: "lgetxattr " + name, Path: hostPath, Err: err}
			}
			buf = make([]byte, sz+64)
			continue
		}
		if errors.Is(err, unix.ENODATA) {
			// Removed between list and get.
			return "", nil
		}
		if err != nil {
			return "", &os.PathError{Op: "lgetxattr " + name, Path: hostPath, Err: err}
		}
		return string(buf[:n]), nil
	}
}

// Settle re-reads the racy entries among paths once their ctimes have
// settled (SettledBefore has passed the newest of them: a clock tick on a
// local file system), so that later snapshots can trust their metadata
// again. A hash is kept only when the re-read shows the same inode, size,
// mtime and ctime. Paths that are gone are forgotten.
func (idx *Index) Settle(root string, paths []string) error {
	var racy []string
	var newest int64
	for _, p := range paths {
		if e, ok := idx.Get(p); ok && e.Racy {
			racy = append(racy, p)
			newest = max(newest, e.Ctime)
		}
	}
	if len(racy) == 0 {
		return nil
	}
	since, settled := waitSettled(root, newest)
	if !settled {
		// A ctime far ahead of the clock (the clock was set back, or a
		// file system keeps time of its own): the entries stay racy, and
		// their content decides.
		return nil
	}
	r, err := OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	for _, p := range racy {
		old, _ := idx.Get(p)
		e, err := r.Stat(p)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, errSymlinkParent) || errors.Is(err, unix.ENOTDIR) {
			idx.Remove(p)
			continue
		}
		if err != nil {
			return fmt.Errorf("recording %s: %w", p, err)
		}
		if e.Ino == old.Ino && e.Size == old.Size && e.Mtime == old.Mtime && e.Ctime == old.Ctime {
			e.Hash = old.Hash
		}
		e.MarkRacy(since)
		idx.Set(p, e)
	}
	return nil
}
