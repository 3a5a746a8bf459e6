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
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

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
