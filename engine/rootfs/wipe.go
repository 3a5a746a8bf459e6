package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"sync"

	"golang.org/x/sys/unix"
)

// alwaysKept are the kernel's trees that a wipe of / never enters,
// whatever the ignore list says.
var alwaysKept = map[string]bool{"/proc": true, "/sys": true, "/dev": true}

// Wipe empties root before the next stage's base image is extracted in
// in-place mode, so that extraction never meets what the previous stage
// left (kaniko's "mkdir /lib64: file exists"). idx, when not nil, is
// emptied.
//
// Whatever the ignore list holds, Wipe never removes:
//   - anything on another mount than root's: a mount point, and the
//     directories leading to it, are kept, told by mount ID and device, so a
//     mount that the list missed (made after it was read) is kept too;
//   - what a symlink points to: a symlink is removed itself, never followed;
//   - /proc, /sys and /dev;
//   - the running executable (by device and inode, under any name), with
//     the directories leading to it;
//   - an ignored path, with the directories leading to it.
func Wipe(root string, ignore *IgnoreList, idx *Index) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "wipe", Path: root, Err: err}
	}
	f := os.NewFile(uintptr(fd), root)
	defer f.Close()
	w := &wiper{ignore: ignore}
	if w.root, err = identityAt(fd, "", unix.AT_EMPTY_PATH); err != nil {
		return &os.PathError{Op: "wipe", Path: root, Err: err}
	}
	var exe unix.Stat_t
	if unix.Stat("/proc/self/exe", &exe) == nil {
		w.exe = &identity{dev: exe.Dev, ino: exe.Ino}
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return &os.PathError{Op: "wipe", Path: root, Err: err}
	}
	w.sem = make(chan struct{}, wipeWorkers)
	if _, err := w.removeAll(fd, "/", names); err != nil {
		return fmt.Errorf("wiping %s for the next stage: %w", root, err)
	}
	if idx != nil {
		idx.Reset()
	}
	return nil
}

// identity is what a wipe compares: where a file lives and which it is.
type identity struct {
	mntID    uint64 // 0 when the kernel does not report it
	dev, ino uint64
	mode     uint16
}

func identityAt(dirfd int, name string, flags int) (identity, error) {
	var stx unix.Statx_t
	err := unix.Statx(dirfd, name, flags|unix.AT_SYMLINK_NOFOLLOW|unix.AT_NO_AUTOMOUNT,
		unix.STATX_TYPE|unix.STATX_INO|unix.STATX_MNT_ID, &stx)
	if err != nil {
		return identity{}, err
	}
	id := identity{dev: unix.Mkdev(stx.Dev_major, stx.Dev_minor), ino: stx.Ino, mode: stx.Mode}
	if stx.Mask&unix.STATX_MNT_ID != 0 {
		id.mntID = stx.Mnt_id
	}
	return id, nil
}

type wiper struct {
	ignore *IgnoreList
	root   identity
	exe    *identity
	// sem bounds the directories emptied at once beyond the caller's.
	sem chan struct{}
}

// wipeWorkers bounds the directories a wipe empties at once. Unlinking
// waits on the filesystem's journal (and an overlay's upper directory)
// more than on a core, so it exceeds the cores: a root of tens of
// thousands of files goes several times faster than one at a time.
const wipeWorkers = 8

// removeAll removes names in dirfd, the directory at image path dir,
// subdirectories on other goroutines while workers are free; kept reports
// that something was kept. Every goroutine is done when it returns.
func (w *wiper) removeAll(dirfd int, dir string, names []string) (kept bool, err error) {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		keptAny bool
		first   error
	)
	note := func(k bool, err error) {
		mu.Lock()
		keptAny = keptAny || k
		if first == nil {
			first = err
		}
		mu.Unlock()
	}
	for _, n := range names {
		p := path.Join(dir, n)
		select {
		case w.sem <- struct{}{}:
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-w.sem }()
				note(w.remove(dirfd, n, p))
			}()
		default:
			note(w.remove(dirfd, n, p))
		}
		mu.Lock()
		failed := first != nil
		mu.Unlock()
		if failed {
			break
		}
	}
	wg.Wait()
	return keptAny, first
}

// foreign reports whether id lives on another mount than the root.
func (w *wiper) foreign(id identity) bool {
	return id.dev != w.root.dev || (id.mntID != 0 && w.root.mntID != 0 && id.mntID != w.root.mntID)
}

// remove removes name in dirfd, image path p, and what lies beneath it,
// except what Wipe keeps; kept reports that something was.
func (w *wiper) remove(dirfd int, name, p string) (kept bool, err error) {
	if alwaysKept[p] || w.ignore.Ignored(p) {
		return true, nil
	}
	id, err := identityAt(dirfd, name, 0)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, &os.PathError{Op: "wipe", Path: p, Err: err}
	}
	if w.foreign(id) {
		return true, nil
	}
	if w.exe != nil && id.dev == w.exe.dev && id.ino == w.exe.ino {
		return true, nil
	}
	if id.mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(dirfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return false, &os.PathError{Op: "remove", Path: p, Err: err}
		}
		return false, nil
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, &os.PathError{Op: "remove", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	// The name may have been replaced, by a mount among others, between
	// the stat and the open: what was opened is what counts.
	if opened, err := identityAt(fd, "", unix.AT_EMPTY_PATH); err != nil || opened.dev != id.dev || opened.ino != id.ino || w.foreign(opened) {
		return true, nil
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return false, &os.PathError{Op: "remove", Path: p, Err: err}
	}
	if kept, err = w.removeAll(fd, p, names); err != nil {
		return false, err
	}
	if kept {
		return true, nil
	}
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return false, &os.PathError{Op: "remove", Path: p, Err: err}
	}
	return false, nil
}

// Reset forgets every path.
func (idx *Index) Reset() {
	idx.mu.Lock()
	idx.entries = make(map[string]record)
	idx.mu.Unlock()
}
