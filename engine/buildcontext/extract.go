package buildcontext

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/slipway-build/slipway/engine/compressed"
)

// Extract unpacks a tar stream, plain or compressed with gzip, bzip2, xz
// or zstd (detected from its first bytes), into dest. It reads the stream once,
// as it arrives, and stops with ErrTooLarge as soon as more than maxSize
// bytes come out of the decompressor or are written to disk, so a
// decompression bomb costs at most maxSize of disk.
//
// Entries are confined to dest: a name that is absolute or climbs out with
// "..", an entry that would be written through a symlink, and a hard link to
// a path outside dest are refused with ErrUnsafePath. Symlinks themselves are
// kept as they are, whatever they point at, as docker keeps them in a
// context: they are data for COPY, and nothing is ever written through one.
// Ownership is not applied (COPY sets its own); modes and times are.
func Extract(ctx context.Context, r io.Reader, dest string, maxSize int64) error {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	stream, _, err := compressed.Reader(r)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotTarball, err)
	}
	defer stream.Close()
	x := &extractor{dest: dest, budget: &budget{max: maxSize}}
	counted := &countingReader{r: stream, b: x.budget}
	return x.run(ctx, tar.NewReader(counted), counted)
}

// budget is shared by the decompressed stream and the bytes written, so
// that neither a bomb nor a sparse file can outgrow the cap.
type budget struct {
	max, read, written int64
}

func (b *budget) errTooLarge() error {
	return fmt.Errorf("%w: the context expands past %d bytes (the limit); build from a smaller context or raise the limit", ErrTooLarge, b.max)
}

type countingReader struct {
	r io.Reader
	b *budget
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.b.read > c.b.max {
		return 0, c.b.errTooLarge()
	}
	n, err := c.r.Read(p)
	c.b.read += int64(n)
	if c.b.read > c.b.max {
		return n, c.b.errTooLarge()
	}
	return n, err
}

type extractor struct {
	dest   string
	budget *budget
	dirs   []*tar.Header
}

func (x *extractor) run(ctx context.Context, tr *tar.Reader, counted *countingReader) error {
	entries := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if entries == 0 && counted.b.read == 0 {
				return fmt.Errorf("%w: the data is empty", ErrNotTarball)
			}
			break
		}
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return err
			}
			if entries == 0 {
				return fmt.Errorf("%w (expected tar, tar.gz, tar.bz2, tar.xz or tar.zst): %v", ErrNotTarball, err)
			}
			return fmt.Errorf("reading the archive after %d entries: %w", entries, err)
		}
		entries++
		if err := x.entry(tr, hdr); err != nil {
			return err
		}
	}
	// Directory modes and times last: a read-only directory must still
	// take its entries, and creating them changed its times.
	for i := len(x.dirs) - 1; i >= 0; i-- {
		if err := x.finishDir(x.dirs[i]); err != nil {
			return err
		}
	}
	return nil
}

// finishDir sets a directory entry's mode and times. A later entry may
// have replaced the directory, or one of its parents, with a symlink
// (`d/`, then `d -> /etc`): the path is then opened without following any
// symlink, and what is no longer a directory of the context is left alone.
func (x *extractor) finishDir(hdr *tar.Header) error {
	fd, err := unix.Open(x.dest, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: x.dest, Err: err}
	}
	for _, part := range strings.Split(hdr.Name, "/") {
		next, err := unix.Openat(fd, part, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if err != nil {
			// Replaced by a symlink or a file, or removed.
			return nil
		}
		fd = next
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, uint32(hdr.Mode)&0o7777); err != nil {
		return fmt.Errorf("setting the mode of %s: %w", hdr.Name, err)
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime(hdr).UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
	_ = unix.UtimesNanoAt(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), ts, 0)
	return nil
}

// cleanName turns an archive name into a clean relative path, or refuses it.
func cleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: %q is an absolute path", ErrUnsafePath, name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", fmt.Errorf("%w: %q climbs out of the context with \"..\"", ErrUnsafePath, name)
		}
	}
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: %q contains a NUL byte", ErrUnsafePath, name)
	}
	return path.Clean(name), nil
}

func (x *extractor) entry(tr *tar.Reader, hdr *tar.Header) error {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "." {
		if hdr.Typeflag == tar.TypeDir {
			return os.Chmod(x.dest, os.FileMode(hdr.Mode)&os.ModePerm)
		}
		return nil
	}
	hdr.Name = name
	target := filepath.Join(x.dest, filepath.FromSlash(name))
	if err := x.mkParents(name); err != nil {
		return err
	}
	mode := fileMode(hdr)

	// Later entries replace earlier ones, as with tar(1). Removing first
	// also means a symlink left at target is replaced, never followed.
	if fi, err := os.Lstat(target); err == nil {
		if fi.IsDir() && hdr.Typeflag == tar.TypeDir {
			x.dirs = append(x.dirs, hdr)
			return nil
		}
		if err := os.RemoveAll(target); err != nil {
			return fmt.Errorf("replacing %s: %w", name, err)
		}
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(target, 0o700); err != nil {
			return fmt.Errorf("creating directory %s: %w", name, err)
		}
		x.dirs = append(x.dirs, hdr)
		return nil
	case tar.TypeReg, tar.TypeGNUSparse: // archive/tar reads the old TypeRegA as TypeReg
		f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY|unix.O_NOFOLLOW, 0o600)
		if err != nil {
			return fmt.Errorf("creating %s: %w", name, err)
		}
		_, err = io.Copy(&budgetWriter{w: f, b: x.budget}, tr)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			if errors.Is(err, ErrTooLarge) {
				return err
			}
			return fmt.Errorf("writing %s: %w", name, err)
		}
		if err := os.Chmod(target, mode); err != nil {
			return err
		}
		return os.Chtimes(target, atime(hdr), hdr.ModTime)
	case tar.TypeSymlink:
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return fmt.Errorf("creating symlink %s: %w", name, err)
		}
		ts := []unix.Timespec{unix.NsecToTimespec(atime(hdr).UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
		_ = unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW)
		return nil
	case tar.TypeLink:
		linkName, err := cleanName(hdr.Linkname)
		if err != nil || linkName == "." {
			return fmt.Errorf("%w: hard link %q points at %q, outside the context", ErrUnsafePath, name, hdr.Linkname)
		}
		if err := x.checkNoSymlinkParents(linkName); err != nil {
			return err
		}
		src := filepath.Join(x.dest, filepath.FromSlash(linkName))
		fi, err := os.Lstat(src)
		if err != nil {
			return fmt.Errorf("hard link %s: its target %s is not earlier in the archive", name, linkName)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%w: hard link %s points at %s, which is not a regular file", ErrUnsafePath, name, linkName)
		}
		if err := os.Link(src, target); err != nil {
			return fmt.Errorf("creating hard link %s: %w", name, err)
		}
		return nil
	case tar.TypeXGlobalHeader:
		return nil
	default:
		// Devices and FIFOs have no place in a build context and may not
		// be creatable in an unprivileged pod.
		return nil
	}
}

// mkParents creates the parent directories of name inside dest, refusing
// to pass through a symlink, which is the one way an entry could land
// outside dest after its name was checked.
func (x *extractor) mkParents(name string) error {
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	cur := x.dest
	for _, part := range strings.Split(dir, "/") {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return fmt.Errorf("creating directory for %s: %w", name, err)
			}
		case err != nil:
			return err
		case fi.Mode()&os.ModeSymlink != 0:
			return fmt.Errorf("%w: %q would be written through the symlink %s", ErrUnsafePath, name, strings.TrimPrefix(cur, x.dest+"/"))
		case !fi.IsDir():
			return fmt.Errorf("%w: %q needs %s to be a directory, but it is a file", ErrUnsafePath, name, strings.TrimPrefix(cur, x.dest+"/"))
		}
	}
	return nil
}

func (x *extractor) checkNoSymlinkParents(name string) error {
	cur := x.dest
	parts := strings.Split(name, "/")
	for _, part := range parts[:len(parts)-1] {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		if err != nil {
			return fmt.Errorf("hard link target %s: %w", name, err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("%w: hard link target %q passes through the symlink %s", ErrUnsafePath, name, strings.TrimPrefix(cur, x.dest+"/"))
		}
	}
	return nil
}

type budgetWriter struct {
	w io.Writer
	b *budget
}

func (w *budgetWriter) Write(p []byte) (int, error) {
	if w.b.written+int64(len(p)) > w.b.max {
		return 0, w.b.errTooLarge()
	}
	n, err := w.w.Write(p)
	w.b.written += int64(n)
	return n, err
}

func fileMode(hdr *tar.Header) os.FileMode {
	m := os.FileMode(hdr.Mode) & os.ModePerm
	if hdr.Mode&0o4000 != 0 {
		m |= os.ModeSetuid
	}
	if hdr.Mode&0o2000 != 0 {
		m |= os.ModeSetgid
	}
	if hdr.Mode&0o1000 != 0 {
		m |= os.ModeSticky
	}
	return m
}

func atime(hdr *tar.Header) time.Time {
	if hdr.AccessTime.IsZero() {
		return hdr.ModTime
	}
	return hdr.AccessTime
}
