package job

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ownerMark is the file in a build's work tree that the build holds an
// exclusive flock on for as long as it lives. The kernel drops the lock
// when the process dies, kill -9 included, so a tree whose mark can be
// locked belongs to nobody.
const ownerMark = ".slipway-owner"

// workTree is a build's private tree under --work-dir.
type workTree struct {
	dir  string
	mark *os.File
}

// makeWorkTree creates the build's tree under dir (the system's temporary
// directory when empty), marked as owned, after removing the trees that
// builds killed before their cleanup left there.
func makeWorkTree(dir string, log *slog.Logger) (*workTree, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--work-dir %s: %w", dir, err)
	}
	removeStaleTrees(dir, log)
	w, err := os.MkdirTemp(dir, "slipway-")
	if err != nil {
		return nil, fmt.Errorf("--work-dir %s: %w", dir, err)
	}
	// Locked before it gets its name, so that no other build ever sees an
	// unlocked mark in a live tree.
	mark, err := os.CreateTemp(w, ".owner-*")
	if err == nil {
		if err = unix.Flock(int(mark.Fd()), unix.LOCK_EX|unix.LOCK_NB); err == nil {
			err = os.Rename(mark.Name(), filepath.Join(w, ownerMark))
		}
	}
	if err != nil {
		if mark != nil {
			mark.Close()
		}
		os.RemoveAll(w)
		return nil, fmt.Errorf("--work-dir %s: marking the build's tree: %w", dir, err)
	}
	return &workTree{dir: w, mark: mark}, nil
}

// Remove deletes the tree, then lets go of it.
func (t *workTree) Remove() {
	os.RemoveAll(t.dir)
	t.mark.Close()
}

// removeStaleTrees removes every slipway-* tree in dir whose owner mark
// nobody holds. Trees without a mark (made by something else, or by a
// build still creating it) are left alone.
func removeStaleTrees(dir string, log *slog.Logger) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "slipway-") {
			continue
		}
		tree := filepath.Join(dir, e.Name())
		f, err := os.OpenFile(filepath.Join(tree, ownerMark), os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			// EWOULDBLOCK: a live build holds it.
			f.Close()
			continue
		}
		// Held while removing, so that two builds do not both remove it.
		if rmErr := os.RemoveAll(tree); rmErr != nil {
			log.Warn("Could not remove the work tree of an earlier build that was killed", "dir", tree, "error", rmErr.Error())
		} else {
			log.Info("Removed the work tree of an earlier build that was killed", "dir", tree)
		}
		f.Close()
	}
}
