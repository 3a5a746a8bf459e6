package build

import (
	"errors"
	"fmt"
	"os"
	"path"

	"github.com/slipway-build/slipway/engine/rootfs"
)

// wipe empties root for the next stage in in-place mode, as kaniko does
// between stages, but leaves every ignored path and the directories
// leading to them in place: a mount point (the workspace, a secret,
// /etc/resolv.conf) is never removed or written through.
func wipe(root string, ignore *rootfs.IgnoreList) error {
	protected := map[string]bool{}
	for _, p := range ignore.Paths() {
		for dir := p; dir != "/" && dir != "."; dir = path.Dir(dir) {
			protected[dir] = true
		}
	}
	return wipeDir(root, "/", ignore, protected)
}

func wipeDir(root, dir string, ignore *rootfs.IgnoreList, protected map[string]bool) error {
	entries, err := os.ReadDir(root + dir)
	if err != nil {
		return fmt.Errorf("clearing %s for the next stage: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		p := path.Join(dir, e.Name())
		switch {
		case ignore.Ignored(p):
			continue
		case protected[p] && e.IsDir():
			errs = append(errs, wipeDir(root, p, ignore, protected))
		default:
			if err := os.RemoveAll(root + p); err != nil {
				errs = append(errs, fmt.Errorf("clearing %s for the next stage: %w", p, err))
			}
		}
	}
	return errors.Join(errs...)
}
