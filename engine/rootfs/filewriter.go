package rootfs

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Writing a regular file's content, hashing it and applying its owner,
// mode, xattrs and times take as long as creating it, and none of it
// changes the tree's names: the extraction loop creates each file (so
// that later entries, hardlinks and whiteouts see it at once) and hands
// the open descriptor and the content to a contentWriter, which does the
// rest on a goroutine of its own while the loop reads and creates the
// next entries. Only descriptors cross over: nothing is resolved by name
// on the writer's side, so confinement stays the loop's alone, and a path
// that a later entry replaces while its old file is being written leaves
// the writer with an unlinked inode, as a sequential extraction would
// have left nothing of it.

const (
	// chunkSize and maxChunks bound the content in flight to 4 MiB: a
	// file is passed on in chunks, and the loop waits for a free one.
	chunkSize = 64 << 10
	maxChunks = 64
)

// contentHash is where the writer leaves a file's sha256 once its content
// was written; a hardlink shares its target's.
type contentHash struct{ sum []byte }

// pendingFile is a regular file the loop created and the writer fills.
type pendingFile struct {
	fd int
	// name is the layer entry's, for errors; real the file's image path.
	name, real   string
	uid, gid     int
	perm         uint32
	xattrs       map[string]string
	atime, mtime time.Time
	// hash and sum are nil when the content is not hashed.
	hash hash.Hash
	sum  *contentHash
}

type chunk struct {
	f   *pendingFile
	buf *[]byte // nil for a chunk that only ends the file
	n   int
	// last closes the file once the chunk is written; abort closes it
	// without its metadata (the layer failed).
	last, abort bool
}

type contentWriter struct {
	chunks chan chunk
	free   chan *[]byte
	// made counts the buffers allocated, by the loop only.
	made   int
	done   chan struct{}
	failed atomic.Bool
	// err is the first error, the writer's own until done is closed.
	err error
}

func newContentWriter() *contentWriter {
	w := &contentWriter{
		// Chunks without a buffer (empty files) are not bounded by free,
		// so the queue is: the loop waits for the writer to catch up.
		chunks: make(chan chunk, maxChunks),
		free:   make(chan *[]byte, maxChunks),
		done:   make(chan struct{}),
	}
	go w.run()
	return w
}

func (w *contentWriter) run() {
	defer close(w.done)
	for c := range w.chunks {
		if c.buf != nil {
			if w.err == nil {
				if err := c.f.write((*c.buf)[:c.n]); err != nil {
					w.fail(c.f, err)
				}
			}
			w.free <- c.buf
		}
		if c.last {
			if w.err == nil && !c.abort {
				if err := c.f.finish(); err != nil {
					w.fail(c.f, err)
				}
			}
			unix.Close(c.f.fd)
		}
	}
}

func (w *contentWriter) fail(f *pendingFile, err error) {
	w.err = fmt.Errorf("layer entry %q: %w", f.name, err)
	w.failed.Store(true)
}

// buffer returns a free chunk buffer, waiting for the writer to release
// one when all are in flight.
func (w *contentWriter) buffer() *[]byte {
	select {
	case b := <-w.free:
		return b
	default:
	}
	if w.made < maxChunks {
		w.made++
		b := make([]byte, chunkSize)
		return &b
	}
	return <-w.free
}

// stream reads size bytes of content from r and queues them for f, then
// f's metadata. f is the writer's from then on, even when reading fails.
func (w *contentWriter) stream(f *pendingFile, r io.Reader, size int64) error {
	if size == 0 {
		w.chunks <- chunk{f: f, last: true}
		return nil
	}
	for size > 0 {
		b := w.buffer()
		n := int(min(int64(len(*b)), size))
		if _, err := io.ReadFull(r, (*b)[:n]); err != nil {
			w.free <- b
			w.chunks <- chunk{f: f, last: true, abort: true}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("writing %s: %w", f.real, err)
		}
		size -= int64(n)
		w.chunks <- chunk{f: f, buf: b, n: n, last: size == 0}
	}
	return nil
}

// close waits for every queued file and returns the first error, which
// names its layer entry.
func (w *contentWriter) close() error {
	close(w.chunks)
	<-w.done
	return w.err
}

func (f *pendingFile) write(p []byte) error {
	if f.hash != nil {
		f.hash.Write(p)
	}
	for len(p) > 0 {
		n, err := unix.Write(f.fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", f.real, err)
		}
		p = p[n:]
	}
	return nil
}

// finish applies owner, mode, xattrs (fdMetadata's order) and times.
// A file created with its mode and already owned as asked (most are:
// root's, made by root) needs no chown or chmod, which cost more than the
// stat that tells.
func (f *pendingFile) finish() error {
	var st unix.Stat_t
	if unix.Fstat(f.fd, &st) != nil || !hasMetadata(&st, f.uid, f.gid, f.perm) {
		if err := fdMetadata(f.fd, f.real, f.uid, f.gid, f.perm, f.xattrs); err != nil {
			return err
		}
	} else if err := setXattrs(f.fd, f.real, f.xattrs); err != nil {
		return err
	}
	if f.sum != nil {
		f.sum.sum = f.hash.Sum(nil)
	}
	ts := [2]unix.Timespec{unix.NsecToTimespec(f.atime.UnixNano()), unix.NsecToTimespec(f.mtime.UnixNano())}
	// futimens: utimensat with no path sets the descriptor's own file,
	// whatever its name has become since.
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(f.fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return &os.PathError{Op: "utimes", Path: f.real, Err: e}
	}
	return nil
}

func newContentHash() (hash.Hash, *contentHash) { return sha256.New(), &contentHash{} }
