package build

import (
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/slipway-build/slipway/engine/layer"
)

// In in-place mode a stage that only later stages' COPY --from read
// (layersForLocalReads) leaves its files at "/", where the next stage
// usually reads them (liveRoot). So the changes its steps make on "/" are
// only recorded, and written as one plain tar, read from "/", only when a
// reader still to come cannot read them there: before "/" is wiped for
// another stage (flushHeld), or when COPY --from needs the stage's image
// (flushStage). The multi-stage Go build's build stage wrote its 470 MB
// golang layer for nothing.

// pendingChanges are a stage's changes on "/" not yet written: the last
// change to each path, in the sense of layer.Change.
type pendingChanges struct {
	byPath map[string]pendingChange
}

type pendingChange struct {
	kind layer.Kind
	// replaced marks a path deleted (or made opaque) by one step and
	// written again by a later one: as a directory it is opaque, so that
	// what the image below held in it stays gone.
	replaced bool
}

// add records a step's changes after the earlier steps'. A deleted or
// opaque directory takes the earlier steps' changes below it with it; they
// are found by binary search in the earlier paths, sorted once per step,
// since a step that deletes thousands of paths would otherwise scan every
// recorded path for each.
func (p *pendingChanges) add(changes []layer.Change) {
	if p.byPath == nil {
		p.byPath = map[string]pendingChange{}
	}
	var earlier []string // sorted when a step first deletes
	for _, c := range changes {
		cp := path.Clean("/" + c.Path)
		prev, had := p.byPath[cp]
		next := pendingChange{kind: c.Kind}
		if c.Kind != layer.Add {
			if earlier == nil {
				earlier = slices.Sorted(maps.Keys(p.byPath))
			}
			prefix := strings.TrimSuffix(cp, "/") + "/"
			i, _ := slices.BinarySearch(earlier, prefix)
			for ; i < len(earlier) && strings.HasPrefix(earlier[i], prefix); i++ {
				delete(p.byPath, earlier[i])
			}
		} else if had && (prev.kind != layer.Add || prev.replaced) {
			next.replaced = true
		}
		p.byPath[cp] = next
	}
}

// changes are the recorded changes as one layer takes them from root: a
// path replaced by a directory is opaque.
func (p *pendingChanges) changes(root string) []layer.Change {
	out := make([]layer.Change, 0, len(p.byPath))
	for cp, c := range p.byPath {
		kind := c.kind
		if c.replaced {
			if fi, err := os.Lstat(root + cp); err == nil && fi.IsDir() {
				kind = layer.Opaque
			}
		}
		out = append(out, layer.Change{Path: cp, Kind: kind})
	}
	return out
}

// flushHeld writes the pending changes of the stage whose files "/"
// holds, if a stage still to come reads it, before "/" is wiped.
func (b *builder) flushHeld() error {
	b.mu.Lock()
	held := b.rootHolder
	readers := b.readers[held]
	b.mu.Unlock()
	if held < 0 || readers == 0 {
		return nil
	}
	return b.flushStage(held)
}

// flushStage writes a finished stage's pending changes, read from "/",
// which must still hold its files, as one plain tar on its image.
func (b *builder) flushStage(index int) error {
	b.mu.Lock()
	res, ok := b.done[index]
	held := b.rootHolder == index
	b.mu.Unlock()
	if !ok || res.pending == nil {
		return nil
	}
	if !held {
		return fmt.Errorf("stage %d: its changes are no longer at / to be written", index)
	}
	l, err := layer.Write("/", res.pending.changes("/"), layer.Options{Compression: layer.Uncompressed, Epoch: b.opts.Epoch, TempDir: b.opts.WorkDir})
	if err != nil {
		return fmt.Errorf("writing the changes of stage %d: %w", index, err)
	}
	img, err := mutate.Append(res.image, mutate.Addendum{Layer: l, History: v1.History{CreatedBy: "the stage's changes, for COPY --from", Comment: "slipway"}})
	if err != nil {
		return err
	}
	b.mu.Lock()
	res.image, res.pending = img, nil
	b.mu.Unlock()
	return nil
}
