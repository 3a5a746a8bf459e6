package build

import (
	"fmt"
	"os"

	"github.com/slipway-build/slipway/engine/rootfs"
	"github.com/slipway-build/slipway/engine/run"
)

// roots is where stages unpack their filesystems: a directory of their own
// under the work directory each (chroot mode), or the container's one "/"
// (in-place mode). The builder asks it, never the Mode. (A step that only
// writes files may work on a sparse root instead; see dest.go.)
type roots interface {
	// ignoreList is what extraction and snapshots never touch.
	ignoreList(opts Options) (*rootfs.IgnoreList, error)
	// create gives stage index a root to unpack its image into, empty of
	// everything extraction may write.
	create(b *builder, index int) (string, error)
	// discard forgets a root that may be half-written.
	discard(dir string)
	// shared says the stages share one root: they run one after another,
	// and a finished stage's root cannot serve COPY --from.
	shared() bool
}

func rootsFor(mode run.Mode) roots {
	if mode == run.InPlace {
		return inPlaceRoot{}
	}
	return stageDirs{}
}

// stageDirs gives each stage a directory of its own under the work
// directory, removed with the build.
type stageDirs struct{}

func (stageDirs) ignoreList(opts Options) (*rootfs.IgnoreList, error) {
	return rootfs.NewIgnoreList(opts.IgnorePaths...), nil
}

func (stageDirs) create(b *builder, index int) (string, error) {
	dir, err := os.MkdirTemp(b.opts.WorkDir, fmt.Sprintf("slipway-stage-%d-", index))
	if err != nil {
		return "", fmt.Errorf("creating the stage's root filesystem: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	b.addCleanup(func() { removeAll(dir) })
	return dir, nil
}

func (stageDirs) discard(dir string) { removeAll(dir) }

func (stageDirs) shared() bool { return false }

// inPlaceRoot is the container's own "/", kaniko's model.
type inPlaceRoot struct{}

// ignoreList is kaniko's list of mount points, /proc, /sys, /dev, the
// executor's own directory and binary, the work directory, and
// --ignore-path.
func (inPlaceRoot) ignoreList(opts Options) (*rootfs.IgnoreList, error) {
	// /busybox is where kaniko's and Slipway's debug images keep their
	// shell, which a build started from that shell must not push; /kaniko
	// is where jobs written for kaniko put their docker config.
	// The running binary, wherever it was put, is neither wiped nor
	// snapshotted.
	keep := []string{opts.WorkDir, "/busybox", "/kaniko"}
	if exe, err := os.Executable(); err == nil {
		keep = append(keep, exe)
	}
	return rootfs.DefaultIgnoreList(ExecutorDir, append(keep, opts.IgnorePaths...)...)
}

// create clears "/", which holds what the container started with or an
// earlier stage's files (mounts and the ignored paths stay), so that the
// stage's index, and so its snapshots, cover everything in it. What later
// stages need of an earlier one is in that stage's image.
func (inPlaceRoot) create(b *builder, _ int) (string, error) {
	if err := rootfs.Wipe("/", b.ignoreList, nil); err != nil {
		return "", err
	}
	return "/", nil
}

// discard leaves "/" as it is: the next stage or unpack wipes it.
func (inPlaceRoot) discard(string) {}

func (inPlaceRoot) shared() bool { return true }
