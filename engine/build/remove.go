package build

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/slipway-build/slipway/engine/dockerfile"
	"github.com/slipway-build/slipway/engine/phase"
)

// Removing the build's trees. A stage root holds tens of thousands of
// files, and unlinking them waits on the disk (its journal, and on a
// filesystem mounted with discard, the discards) far more than on a core:
// so directories are removed by several goroutines at once, and a stage's
// root goes, in the background, as soon as no later stage reads it
// (releaseReaders), rather than all at the end of the build.

// removeWorkers bounds the directories removed at once. The work is
// waiting, not computing, so it exceeds the cores.
const removeWorkers = 8

// removals are the removals in flight, by directory, so that the build's
// final clean-up waits for a removal started early instead of walking the
// same tree a second time.
var removals sync.Map // string -> *sync.Once

// removeAll removes dir and everything under it, never following a
// symlink; a removal of the same directory already in flight is waited
// for.
func removeAll(dir string) {
	dir = filepath.Clean(dir)
	once, _ := removals.LoadOrStore(dir, &sync.Once{})
	once.(*sync.Once).Do(func() { removeTree(dir) })
	removals.CompareAndDelete(dir, once)
}

func removeTree(dir string) {
	defer phase.Start(phase.Remove)()
	sem := make(chan struct{}, removeWorkers)
	var remove func(string)
	remove = func(d string) {
		entries, _ := os.ReadDir(d)
		var wg sync.WaitGroup
		for _, e := range entries {
			p := filepath.Join(d, e.Name())
			if !e.IsDir() {
				_ = os.Remove(p)
				continue
			}
			select {
			case sem <- struct{}{}:
				wg.Add(1)
				go func() {
					defer wg.Done()
					remove(p)
					<-sem
				}()
			default:
				remove(p)
			}
		}
		wg.Wait()
		_ = os.Remove(d)
	}
	remove(dir)
	// Whatever the walk could not take (a directory that changed under
	// it), os.RemoveAll takes, or says why not.
	_ = os.RemoveAll(dir)
}

// readersOf counts, by stage index, the later stages that may read a
// stage's files once it is done: those that COPY --from it or mount it,
// and, to be safe, those built FROM it, which DependsOn does not tell
// apart from a COPY --from of their own base.
func readersOf(plan *dockerfile.Plan) map[int]int {
	readers := map[int]int{}
	for _, s := range plan.Stages {
		for _, dep := range s.DependsOn {
			readers[dep]++
		}
	}
	return readers
}

// finished releases, after stage s is done, the trees of the stages that
// no stage still to come reads: s's own, when nothing reads it, and those
// of the stages s was the last to read.
func (b *builder) finished(s *dockerfile.PlannedStage) {
	b.mu.Lock()
	var free []int
	for _, dep := range s.DependsOn {
		if b.readers[dep]--; b.readers[dep] == 0 {
			free = append(free, dep)
		}
	}
	if b.readers[s.Index] == 0 {
		free = append(free, s.Index)
	}
	var dirs []string
	for _, i := range free {
		if res, ok := b.done[i]; ok && res.root != "" {
			dirs = append(dirs, res.root)
		}
		if e, ok := b.trees.byKey["stage:"+strconv.Itoa(i)]; ok {
			dirs = append(dirs, e.root)
		}
	}
	b.mu.Unlock()
	for _, dir := range dirs {
		if dir != "" {
			b.cacheWrites.Go(func() error { removeAll(dir); return nil })
		}
	}
}
