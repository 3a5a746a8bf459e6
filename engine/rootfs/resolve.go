package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// maxSymlinks bounds symlink resolution like the kernel's own limit, so a
// loop in a layer ends in ELOOP instead of spinning.
const maxSymlinks = 40

// openat2Unavailable is set once the kernel or a seccomp profile refused
// openat2, so later lookups go straight to the walk.
var openat2Unavailable atomic.Bool

// errSymlinkParent is returned by strict lookups that met a symlink.
var errSymlinkParent = errors.New("a parent is a symlink")

// errIgnoredPath is returned by lookups that would have made a directory
// at a path their skip function names.
var errIgnoredPath = errors.New("the path is ignored")

// Root is a directory that lookups are confined to. Paths given to its
// methods are image paths ("/etc/passwd"), relative to the root.
type Root struct {
	path string
	fd   int
}

// OpenRoot opens dir as a confinement root.
func OpenRoot(dir string) (*Root, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	fd, err := unix.Open(abs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open root", Path: abs, Err: err}
	}
	return &Root{path: abs, fd: fd}, nil
}

// Close releases the root's descriptor.
func (r *Root) Close() error { return unix.Close(r.fd) }

// Path returns the host path of the root.
func (r *Root) Path() string { return r.path }

// HostPath returns where image path p lies on the host, without resolving
// symlinks: only meaningful when p's parents are real directories.
func (r *Root) HostPath(p string) string {
	p = Clean(p)
	if p == "/" {
		return r.path
	}
	if r.path == "/" {
		return p
	}
	return r.path + p
}

type lookup struct {
	// follow resolves symlinks met on the way, against the root. Without
	// it a symlink among the parents fails with errSymlinkParent.
	follow bool
	// create makes missing directories (mode 0755, root-owned) and reports
	// each through onCreate.
	create   bool
	onCreate func(real string)
	// skip names paths where create must not make a directory: in
	// in-place mode, the pod's mounts. A symlink may lead a lookup into
	// one, and a directory made there lands in the mounted volume.
	skip func(real string) bool
}

// openDir opens the directory at image path dir as an O_PATH descriptor,
// confined to the root, and returns the path it really resolved to (which
// differs from dir when a symlink was followed).
func (r *Root) openDir(dir string, lk lookup) (int, string, error) {
	dir = Clean(dir)
	if dir == "/" {
		fd, err := unix.Dup(r.fd)
		return fd, "/", err
	}
	if !openat2Unavailable.Load() {
		// The fast path: with no symlink on the way the resolved path is
		// the literal one. RESOLVE_IN_ROOT keeps even a kernel bug in our
		// cleaning from leaving the root.
		fd, err := unix.Openat2(r.fd, dir[1:], &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		switch {
		case err == nil:
			return fd, dir, nil
		case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM), errors.Is(err, unix.EINVAL):
			openat2Unavailable.Store(true)
		}
	}
	return r.walkDir(dir, lk)
}

// walkDir resolves dir one component at a time with openat(O_NOFOLLOW),
// reading symlinks itself and restarting absolute ones at the root, so that
// nothing outside the root is ever opened.
func (r *Root) walkDir(dir string, lk lookup) (int, string, error) {
	fds := []int{}
	var names []string
	cur := func() int {
		if len(fds) == 0 {
			return r.fd
		}
		return fds[len(fds)-1]
	}
	closeAll := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	parts := strings.Split(strings.TrimPrefix(dir, "/"), "/")
	links := 0
	for len(parts) > 0 {
		name := parts[0]
		parts = parts[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(fds) > 0 {
				unix.Close(fds[len(fds)-1])
				fds = fds[:len(fds)-1]
				names = names[:len(names)-1]
			}
			continue
		}
		var st unix.Stat_t
		err := unix.Fstatat(cur(), name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) && lk.create {
			made := "/" + path.Join(append(append([]string{}, names...), name)...)
			if lk.skip != nil && lk.skip(made) {
				closeAll()
				return -1, "", fmt.Errorf("resolving %s in %s: %s: %w", dir, r.path, made, errIgnoredPath)
			}
			if err = unix.Mkdirat(cur(), name, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				if err == nil && lk.onCreate != nil {
					lk.onCreate(made)
				}
				err = unix.Fstatat(cur(), name, &st, unix.AT_SYMLINK_NOFOLLOW)
			}
		}
		if err != nil {
			closeAll()
			return -1, "", fmt.Errorf("resolving %s in %s: %w", dir, r.path, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			if !lk.follow {
				closeAll()
				return -1, "", fmt.Errorf("resolving %s in %s: %w", dir, r.path, errSymlinkParent)
			}
			links++
			if links > maxSymlinks {
				closeAll()
				return -1, "", fmt.Errorf("resolving %s in %s: %w", dir, r.path, unix.ELOOP)
			}
			target, err := readlinkat(cur(), name)
			if err != nil {
				closeAll()
				return -1, "", fmt.Errorf("resolving %s in %s: %w", dir, r.path, err)
			}
			if strings.HasPrefix(target, "/") {
				closeAll()
				fds, names = nil, nil
			}
			parts = append(strings.Split(target, "/"), parts...)
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			closeAll()
			return -1, "", fmt.Errorf("resolving %s in %s: %s is not a directory: %w", dir, r.path, "/"+path.Join(append(names, name)...), unix.ENOTDIR)
		}
		fd, err := unix.Openat(cur(), name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			closeAll()
			return -1, "", fmt.Errorf("resolving %s in %s: %w", dir, r.path, err)
		}
		fds = append(fds, fd)
		names = append(names, name)
	}
	if len(fds) == 0 {
		fd, err := unix.Dup(r.fd)
		return fd, "/", err
	}
	for _, fd := range fds[:len(fds)-1] {
		unix.Close(fd)
	}
	return fds[len(fds)-1], "/" + path.Join(names...), nil
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// Stat returns the Entry of image path p without following any symlink:
// neither among its parents (which fails) nor at its end.
func (r *Root) Stat(p string) (Entry, error) {
	p = Clean(p)
	if p == "/" {
		var st unix.Stat_t
		if err := unix.Fstat(r.fd, &st); err != nil {
			return Entry{}, &os.PathError{Op: "stat", Path: r.path, Err: err}
		}
		e := EntryFromStat(&st)
		x, err := Xattrs(r.path)
		e.Xattrs = x
		return e, err
	}
	dir, name := path.Split(p)
	dfd, _, err := r.openDir(dir, lookup{})
	if err != nil {
		return Entry{}, err
	}
	defer unix.Close(dfd)
	return statAt(dfd, name, r.HostPath(p))
}

// statAt reads the Entry of name in dfd; hostPath must name the same file
// and is used only for xattrs, which have no *at call on older kernels.
func statAt(dfd int, name, hostPath string) (Entry, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return Entry{}, &os.PathError{Op: "lstat", Path: hostPath, Err: err}
	}
	e := EntryFromStat(&st)
	if e.Mode.Type() == os.ModeSymlink {
		t, err := readlinkat(dfd, name)
		if err != nil {
			return Entry{}, &os.PathError{Op: "readlink", Path: hostPath, Err: err}
		}
		e.Linkname = t
	}
	xattrPath := hostPath
	if len(hostPath) >= unix.PathMax {
		// A layer may nest deeper than the host can name in one path;
		// the descriptor's /proc entry reaches it all the same.
		xattrPath = "/proc/self/fd/" + strconv.Itoa(dfd) + "/" + name
	}
	x, err := Xattrs(xattrPath)
	if err != nil {
		return Entry{}, err
	}
	e.Xattrs = x
	return e, nil
}

// removeAllAt removes name in dirfd and everything beneath it without
// following symlinks. keep is asked for every path (image path, p) first;
// kept paths and their parents stay.
func removeAllAt(dirfd int, name, p string, keep func(string) bool) error {
	_, err := removeAllKeeping(dirfd, name, p, keep)
	return err
}

// removeAllKeeping is removeAllAt reporting whether something under p was
// kept, so that the directories above a kept path (/builds above a mount
// at /builds/group/project) stay too.
func removeAllKeeping(dirfd int, name, p string, keep func(string) bool) (bool, error) {
	if keep != nil && keep(p) {
		return true, nil
	}
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EPERM) {
		return false, &os.PathError{Op: "remove", Path: p, Err: err}
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, &os.PathError{Op: "remove", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	names, err := f.Readdirnames(-1)
	if err != nil {
		f.Close()
		return false, &os.PathError{Op: "remove", Path: p, Err: err}
	}
	kept := false
	for _, n := range names {
		child := path.Join(p, n)
		childKept, err := removeAllKeeping(fd, n, child, keep)
		if err != nil {
			f.Close()
			return false, err
		}
		kept = kept || childKept
	}
	f.Close()
	if kept {
		return true, nil
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return false, &os.PathError{Op: "remove", Path: p, Err: err}
	}
	return false, nil
}
