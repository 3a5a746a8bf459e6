package build

import (
	"context"
	"errors"
	"fmt"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-build/slipway/engine/compressed"
	"github.com/slipway-build/slipway/engine/phase"
	"github.com/slipway-build/slipway/engine/rootfs"
	"github.com/slipway-build/slipway/engine/run"
)

// A step works on a root: a host directory that stands for the image's "/".
// There are three kinds, behind one interface, and the builder asks the
// root, never the Mode:
//   - an unpacked root holds the whole image, extracted into a directory of
//     the stage's own under the work directory (chroot mode);
//   - the in-place root is the container's own "/", the image extracted
//     over it (kaniko's model): stages share it, so they run in turn;
//   - a sparse root holds only what one step looks at of the image below
//     it, read from the layers' headers (rootfs.Sparse). A step that only
//     writes files (COPY, ADD, WORKDIR) uses one when no RUN is left in its
//     stage, so a rebuild in which only the last COPY missed the cache
//     never unpacks the image: it reads the headers, writes the new files
//     and makes their layer. Once a RUN is to come the stage is unpacked
//     instead: the RUN needs it anyway, and would otherwise unpack what the
//     step wrote a second time.
//
// stageFS chooses, for each step, which root it gets.

// root is where one step looks at and writes the image's files.
type root interface {
	// dir is the host directory that stands for the image's "/".
	dir() string
	// reveal makes the image's entries on the way to p present; call it
	// before looking at or writing p.
	reveal(p string) error
	// revealUserDB makes the image's /etc/passwd and /etc/group present,
	// which user and group names resolve against.
	revealUserDB() error
	// wrote records the paths a step wrote, and the directories it wrote
	// into, so that the next snapshot does not take them again.
	wrote(paths []string) error
	// holdsContent says whether the image's files below the step have
	// their content here; a sparse root holds them empty.
	holdsContent() bool
}

// errNeedsRoot stops a step on a sparse root that needs more of the image
// than its metadata; the step then runs again on the unpacked root.
var errNeedsRoot = errors.New("the step needs the unpacked root filesystem")

// unpackedRoot is a whole image extracted into path, with the Index that
// snapshots compare against: a stage directory or, in place, "/".
type unpackedRoot struct {
	path string
	// idx is nil for a stage that takes no snapshots (noLayers).
	idx *rootfs.Index
	// snapshotAll is set with a single snapshot: the stage's one layer is
	// then taken by walking the root, so what steps wrote must stay
	// changes for it.
	snapshotAll bool
}

func (r *unpackedRoot) dir() string         { return r.path }
func (r *unpackedRoot) reveal(string) error { return nil }
func (r *unpackedRoot) revealUserDB() error { return nil }
func (r *unpackedRoot) holdsContent() bool  { return true }

func (r *unpackedRoot) wrote(paths []string) error {
	if r.snapshotAll || r.idx == nil {
		return nil
	}
	return r.idx.RecordPaths(r.path, paths)
}

// sparseRoot is an empty directory that the image below shows through as
// a step asks for its paths.
type sparseRoot struct{ s *rootfs.Sparse }

func (r sparseRoot) dir() string           { return r.s.Dir() }
func (r sparseRoot) reveal(p string) error { return r.s.Reveal(p) }
func (r sparseRoot) holdsContent() bool    { return false }

// wrote records nothing: a sparse root serves one step and goes.
func (r sparseRoot) wrote([]string) error { return nil }

func (r sparseRoot) revealUserDB() error {
	for _, p := range []string{"/etc/passwd", "/etc/group"} {
		if err := r.s.RevealFile(p); err != nil {
			return err
		}
	}
	return nil
}

// roots is where stages unpack their images: a directory of their own
// under the work directory each (chroot mode), or the container's one "/"
// (in-place mode). It is chosen once, from the Mode.
type roots interface {
	// ignoreList is what extraction and snapshots never touch.
	ignoreList(opts Options) (*rootfs.IgnoreList, error)
	// create gives stage index a directory to unpack its image into,
	// empty of everything extraction may write.
	create(b *builder, index int) (string, error)
	// discard forgets a root that may be half-written.
	discard(b *builder, dir string)
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

func (stageDirs) discard(_ *builder, dir string) { removeAll(dir) }

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
func (inPlaceRoot) create(b *builder, index int) (string, error) {
	if err := b.flushHeld(); err != nil {
		return "", err
	}
	b.holdRoot(-1)
	if err := rootfs.Wipe("/", b.ignoreList, nil); err != nil {
		return "", err
	}
	b.holdRoot(index)
	return "/", nil
}

// discard leaves "/" as it is, for the next stage or unpack to wipe, but
// no stage's files are there any more.
func (inPlaceRoot) discard(b *builder, _ string) { b.holdRoot(-1) }

func (inPlaceRoot) shared() bool { return true }

// stageFS is one stage's filesystem: its unpacked root, made on the first
// step that needs the whole image, and the file tree of the image below
// (rootfs.Lower) that sparse roots are made from.
type stageFS struct {
	b     *builder
	index int
	// name is the stage's base, for logs and errors.
	name string

	full *unpackedRoot // nil until unpacked
	// lower is the file tree of the stage's base and of its first
	// lowerLayers new layers.
	lower       *rootfs.Lower
	lowerLayers int
}

func newStageFS(b *builder, index int, name string) *stageFS {
	return &stageFS{b: b, index: index, name: name}
}

// unpacked says whether the stage has its whole image extracted.
func (f *stageFS) unpacked() bool { return f.full != nil }

// unpack returns the stage's unpacked root, extracting img (the stage's
// image so far) into it on first use.
func (f *stageFS) unpack(ctx context.Context, img v1.Image) (*unpackedRoot, error) {
	if f.full != nil {
		return f.full, nil
	}
	dir, err := f.b.roots.create(f.b, f.index)
	if err != nil {
		return nil, err
	}
	r := &unpackedRoot{path: dir, snapshotAll: f.b.opts.SingleSnapshot}
	if f.b.layerUses[f.index] != noLayers {
		// Without an index, which no snapshot of a stage that writes no
		// layers would read, unpacking neither hashes the files nor reads
		// every path back.
		r.idx = rootfs.NewIndex()
	}
	f.b.opts.Log.Info("Unpacking rootfs as cmd requires it.", "image", f.name)
	if err := rootfs.ExtractImage(ctx, r.path, img, r.idx, f.b.extractOptions()...); err != nil {
		return nil, fmt.Errorf("unpacking %s: %w", f.name, err)
	}
	f.full = r
	return r, nil
}

// sparse returns an empty sparse root over base and layers, the stage's
// image so far; remove its dir when the step is done.
func (f *stageFS) sparse(ctx context.Context, base v1.Image, layers []v1.Layer) (sparseRoot, error) {
	stopHeaders := phase.Start(phase.Headers)
	defer stopHeaders()
	rootfs.PrefetchTOCs(ctx, layers[f.lowerLayers:], f.b.extractOptions()...)
	if f.lower == nil && f.lowerLayers == 0 {
		if lower := f.b.takeLower(f.name, base); lower != nil {
			f.b.opts.Log.Debug("The base's file tree was read ahead", "image", f.name)
			f.lower = lower
		}
	}
	if f.lower == nil {
		lower, err := rootfs.ScanImage(ctx, base, f.b.extractOptions()...)
		if err != nil {
			return sparseRoot{}, fmt.Errorf("reading %s: %w", f.name, err)
		}
		f.lower, f.lowerLayers = lower, 0
	}
	for ; f.lowerLayers < len(layers); f.lowerLayers++ {
		if err := f.lower.Add(ctx, layers[f.lowerLayers]); err != nil {
			f.lower = nil
			return sparseRoot{}, err
		}
	}
	stopHeaders()
	dir, err := os.MkdirTemp(f.b.opts.WorkDir, fmt.Sprintf("slipway-sparse-%d-", f.index))
	if err != nil {
		return sparseRoot{}, fmt.Errorf("creating a directory for the step's files: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		removeAll(dir)
		return sparseRoot{}, err
	}
	return sparseRoot{s: f.lower.Sparse(dir)}, nil
}

// apply extracts a layer taken from the cache onto the unpacked root, if
// the stage has one, so that later steps see it. A root the layer could
// not be applied to whole is discarded: the next step that needs it
// unpacks the image again.
func (f *stageFS) apply(l v1.Layer) error {
	if f.full == nil {
		return nil
	}
	rc, err := compressed.Layer(l)
	if err != nil {
		return err
	}
	err = rootfs.Extract(f.full.path, rc, f.full.idx, f.b.extractOptions()...)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		f.discard()
	}
	return err
}

// discard forgets an unpacked root that may be half-written.
func (f *stageFS) discard() {
	if f.full != nil {
		f.b.roots.discard(f.b, f.full.path)
		f.full = nil
	}
}

// kept is the unpacked root a finished stage leaves for COPY --from, or ""
// when it has none or shares "/" with the stages after it.
func (f *stageFS) kept() string {
	if f.full == nil || f.b.roots.shared() {
		return ""
	}
	return f.full.path
}

func (b *builder) extractOptions() []rootfs.Option {
	return append(b.layerCacheOptions(), rootfs.WithIgnoreList(b.ignoreList))
}
