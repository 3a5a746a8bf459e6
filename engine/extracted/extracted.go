// Package extracted keeps layers uncompressed on the node, as
// <dir>/<algorithm>/<hex>.tar by diff ID, so that a later build neither
// downloads nor decompresses them again. It is one of four things Slipway
// keeps between steps or builds, and the only one for extracted layers:
//
//   - the registry layer cache (engine/cache Store, --cache-repo): step
//     layers by cache key, in a registry;
//   - the base-image layout (engine/cache LayoutCache, --cache-dir): base
//     images a warmer stored;
//   - extracted layers (this package, --cache-dir/layers);
//   - RUN cache mounts (RUN --mount=type=cache, --cache-dir/mounts).
//
// rootfs keeps the layers it extracts here and layer keeps the layers it
// writes, both through Dir, which owns the file names.
package extracted

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"

	"github.com/slipway-build/slipway/engine/atomicfile"
)

// Dir is a directory of extracted layers; the empty Dir keeps nothing.
type Dir string

// Path is where the layer with diffID is kept.
func (d Dir) Path(diffID v1.Hash) string {
	return filepath.Join(string(d), diffID.Algorithm, diffID.Hex+".tar")
}

// Open opens the kept layer with diffID once its whole content matched
// diffID: a layer damaged on disk is removed, told once, and reported as
// missing, so that the caller reads the layer from its image instead.
func (d Dir) Open(diffID v1.Hash) (*os.File, error) {
	f, err := os.Open(d.Path(diffID))
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	if _, err = io.Copy(h, f); err == nil && hex.EncodeToString(h.Sum(nil)) != diffID.Hex {
		err = fmt.Errorf("kept layer %s is damaged: its content does not match its diff ID", diffID)
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		_ = os.Remove(d.Path(diffID))
		d.warn("A kept layer in --cache-dir is damaged; it was removed and the layer is read from its image", err)
		return nil, err
	}
	// Its mtime is when it was last used.
	now := time.Now()
	_ = os.Chtimes(d.Path(diffID), now, now)
	return f, nil
}

// Writer is a layer on its way into the directory. Writing to it never
// fails: the first error (a full, read-only or vanished --cache-dir)
// makes it drop the rest, and Keep then keeps nothing and warns, once per
// directory. A cache helps a build or steps aside; it never fails one.
type Writer struct {
	f   *atomicfile.File
	err error
}

// Write writes p, or nothing once a write failed; it always reports
// success.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err == nil {
		_, w.err = w.f.Write(p)
	}
	return len(p), nil
}

// Discard drops the layer unless it was kept; it may be deferred.
func (w *Writer) Discard() { w.f.Discard() }

// Create starts a layer whose diff ID is known only once it is written;
// Keep it when it is, or Discard it. It returns nil, having warned, where
// the directory cannot be written.
func (d Dir) Create() *Writer {
	f, err := atomicfile.Create(filepath.Join(string(d), "sha256"), ".layer-*")
	if err != nil {
		d.warn(unusableWarning, err)
		return nil
	}
	return &Writer{f: f}
}

const unusableWarning = "The layer cache in --cache-dir cannot be written; the build goes on without keeping layers"

// Keep places w, made by Create and whose content hashes to diffID, as that
// layer. The caller checks the hash: a wrong one would poison later builds.
// A layer that could not be written whole is dropped, with the warning.
func (d Dir) Keep(w *Writer, diffID v1.Hash) error {
	if w.err != nil {
		w.Discard()
		d.warn(unusableWarning, w.err)
		return w.err
	}
	path := d.Path(diffID)
	err := os.MkdirAll(filepath.Dir(path), 0o755)
	if err != nil {
		w.Discard()
	} else {
		err = w.f.Commit(path)
	}
	if err != nil {
		d.warn(unusableWarning, err)
	}
	return err
}

// warned holds the directories already warned about: one warning per
// directory and process, however many layers fail.
var warned sync.Map

func (d Dir) warn(msg string, err error) {
	if _, already := warned.LoadOrStore(string(d)+"\x00"+msg, true); already {
		return
	}
	slog.Default().Warn(msg, "dir", string(d), "error", err.Error())
}

// staleTemp is how old a temporary layer file must be before Evict takes
// it for the leftover of a killed build.
const staleTemp = time.Hour

// Evict removes the least recently used layers (by mtime, which Open
// refreshes) until the kept ones take at most maxBytes, and temporary
// files that killed builds left. Builds sharing the directory evict one at
// a time, under a lock; one that finds the lock taken skips, since the
// other does the work. Removing a layer that another build has open is
// safe: that build keeps reading it.
func (d Dir) Evict(maxBytes int64) error {
	lock, err := os.OpenFile(filepath.Join(string(d), ".evict.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil
	}
	layersDir := filepath.Join(string(d), "sha256")
	entries, err := os.ReadDir(layersDir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	type kept struct {
		path  string
		size  int64
		mtime time.Time
	}
	var layers []kept
	var total int64
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		p := filepath.Join(layersDir, e.Name())
		if strings.HasPrefix(e.Name(), ".layer-") {
			if time.Since(fi.ModTime()) > staleTemp {
				_ = os.Remove(p)
			}
			continue
		}
		if !strings.HasSuffix(e.Name(), ".tar") {
			continue
		}
		layers = append(layers, kept{p, fi.Size(), fi.ModTime()})
		total += fi.Size()
	}
	sort.Slice(layers, func(i, j int) bool { return layers[i].mtime.Before(layers[j].mtime) })
	for _, l := range layers {
		if total <= maxBytes {
			break
		}
		if err := os.Remove(l.path); err == nil || os.IsNotExist(err) {
			total -= l.size
		}
	}
	return nil
}
