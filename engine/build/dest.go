package build

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/slipway-build/slipway/engine/rootfs"
)

// Steps that only write files (COPY, ADD, WORKDIR) run on a destRoot: the
// stage's unpacked root when it has one, else a sparse root that holds only
// what the step looks at of the image below (rootfs.Sparse). A rebuild in
// which only the last COPY missed the cache then never unpacks the image:
// it reads the layers' headers, writes the new files and makes their layer.
// Once a RUN is to come, the root is unpacked instead: the RUN needs it
// anyway, and would otherwise unpack what the step wrote a second time.

// errNeedsRoot stops a step on a sparse root that needs more of the image
// than its metadata; the step then runs again on the unpacked root.
var errNeedsRoot = errors.New("the step needs the unpacked root filesystem")

// destRoot is where a file-writing step writes.
type destRoot struct {
	dir string
	// sparse is nil when dir is the stage's unpacked root.
	sparse *rootfs.Sparse
}

// reveal makes the image's entries on the way to p visible in a sparse
// root; call it before looking at or writing p.
func (d destRoot) reveal(p string) error {
	if d.sparse == nil {
		return nil
	}
	return d.sparse.Reveal(p)
}

// revealUserDB gives a sparse root the image's /etc/passwd and /etc/group,
// which user and group names resolve against.
func (d destRoot) revealUserDB() error {
	if d.sparse == nil {
		return nil
	}
	for _, p := range []string{"/etc/passwd", "/etc/group"} {
		if err := d.sparse.RevealFile(p); err != nil {
			return err
		}
	}
	return nil
}

// writeFiles runs a file-writing step on a sparse root when the stage has
// not been unpacked and a sparse root will do, else on the unpacked root.
// The step commits its own layer: from a sparse root with commitFrom.
func (s *stage) writeFiles(ctx context.Context, step func(destRoot) error) error {
	if s.materialized || !s.sparseWrites() {
		if err := s.materialize(ctx); err != nil {
			return err
		}
		return step(destRoot{dir: s.root})
	}
	sparse, err := s.sparseRoot(ctx)
	if err != nil {
		return err
	}
	err = step(destRoot{dir: sparse.Dir(), sparse: sparse})
	removeAll(sparse.Dir())
	if !errors.Is(err, errNeedsRoot) {
		return err
	}
	s.b.opts.Log.Debug("The step needs the unpacked root; unpacking it", "reason", err.Error())
	if err := s.materialize(ctx); err != nil {
		return err
	}
	return step(destRoot{dir: s.root})
}

// sparseWrites says whether a step that only writes files may use a sparse
// root: when no RUN comes later in the stage. A later RUN misses the cache
// too once this step runs (its key is chained from this step's), so it
// would unpack the stage, and this step's layer, anyway. A single snapshot
// needs the unpacked root to take the stage's one layer.
func (s *stage) sparseWrites() bool {
	if s.b.opts.SingleSnapshot {
		return false
	}
	for _, cmd := range s.later {
		if _, ok := cmd.(*instructions.RunCommand); ok {
			return false
		}
	}
	return true
}

// sparseRoot returns an empty sparse root over the stage's current image:
// its base and the layers made or taken from the cache so far.
func (s *stage) sparseRoot(ctx context.Context) (*rootfs.Sparse, error) {
	if s.lower == nil {
		lower, err := rootfs.ScanImage(ctx, s.base, s.extractOptions()...)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", s.ps.Base, err)
		}
		s.lower, s.lowerLayers = lower, 0
	}
	for ; s.lowerLayers < len(s.layers); s.lowerLayers++ {
		if err := s.lower.Add(ctx, s.layers[s.lowerLayers]); err != nil {
			s.lower = nil
			return nil, err
		}
	}
	dir, err := os.MkdirTemp(s.b.opts.WorkDir, fmt.Sprintf("slipway-sparse-%d-", s.ps.Index))
	if err != nil {
		return nil, fmt.Errorf("creating a directory for the step's files: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		removeAll(dir)
		return nil, err
	}
	return s.lower.Sparse(dir), nil
}
