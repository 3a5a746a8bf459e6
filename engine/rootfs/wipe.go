package rootfs

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Wipe empties root before the next stage's base image is extracted in
// in-place mode, so that extraction never meets what the previous stage
// left (kaniko's "mkdir /lib64: file exists"). Ignored paths survive, with
// the directories that lead to them. idx, when not nil, is emptied.
func Wipe(root string, ignore *IgnoreList, idx *Index) error {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "wipe", Path: root, Err: err}
	}
	f := os.NewFile(uintptr(fd), root)
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return &os.PathError{Op: "wipe", Path: root, Err: err}
	}
	for _, n := range names {
		if err := removeAllAt(fd, n, "/"+n, ignore.Ignored); err != nil {
			return fmt.Errorf("wiping %s for the next stage: %w", root, err)
		}
	}
	if idx != nil {
		idx.Reset()
	}
	return nil
}

// Reset forgets every path.
func (idx *Index) Reset() {
	idx.mu.Lock()
	idx.entries = make(map[string]Entry)
	idx.mu.Unlock()
}
