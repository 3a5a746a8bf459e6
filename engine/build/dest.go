package build

import (
	"context"
	"errors"
)

// writeFiles runs a file-writing step on a sparse root when the stage has
// not been unpacked and a sparse root will do, else on the unpacked root
// (roots.go). The step commits its own layer (commitTo).
func (s *stage) writeFiles(ctx context.Context, step func(root) error) error {
	if !s.fs.unpacked() && s.sparseWrites() {
		sparse, err := s.fs.sparse(ctx, s.base, s.layers)
		if err != nil {
			return err
		}
		err = step(sparse)
		removeAll(sparse.dir())
		if !errors.Is(err, errNeedsRoot) {
			return err
		}
		s.b.opts.Log.Debug("The step needs the unpacked root; unpacking it", "reason", err.Error())
	}
	r, err := s.unpack(ctx)
	if err != nil {
		return err
	}
	return step(r)
}

// sparseWrites says whether a step that only writes files may use a sparse
// root: when no RUN comes later in the stage. A later RUN misses the cache
// too once this step runs (its key is chained from this step's), so it
// would unpack the stage, and this step's layer, anyway. A single snapshot
// needs the unpacked root to take the stage's one layer.
//
// A stage that writes no layers keeps its changes only in its unpacked
// root, so its steps always write there.
func (s *stage) sparseWrites() bool {
	if s.b.opts.SingleSnapshot || s.layerUse() == noLayers {
		return false
	}
	return !s.plan.runsLater(s.current)
}
