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
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-build/slipway/engine/atomicfile"
)

// Dir is a directory of extracted layers; the empty Dir keeps nothing.
type Dir string

// Path is where the layer with diffID is kept.
func (d Dir) Path(diffID v1.Hash) string {
	return filepath.Join(string(d), diffID.Algorithm, diffID.Hex+".tar")
}

// Open opens the kept layer with diffID.
func (d Dir) Open(diffID v1.Hash) (*os.File, error) {
	return os.Open(d.Path(diffID))
}

// Create starts a layer whose diff ID is known only once it is written;
// Keep it when it is, or Discard it.
func (d Dir) Create() (*atomicfile.File, error) {
	return atomicfile.Create(filepath.Join(string(d), "sha256"), ".layer-*")
}

// Keep places f, made by Create and whose content hashes to diffID, as that
// layer. The caller checks the hash: a wrong one would poison later builds.
func (d Dir) Keep(f *atomicfile.File, diffID v1.Hash) error {
	path := d.Path(diffID)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.Discard()
		return err
	}
	return f.Commit(path)
}
