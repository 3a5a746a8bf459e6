package build

import (
	"context"
	"io"
	"log/slog"
	"os"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/slipway-build/slipway/engine/rootfs"
)

// A stage's root is unpacked with an index, every file hashed, only when
// a snapshot will compare the root with it: a stage that writes no layers
// (read by COPY --from only) takes none, so its unpack hashes nothing and
// reads nothing back.
func TestUnpackIndexesOnlyRootsThatSnapshotsRead(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("unpacking sets owners: needs root")
	}
	img, err := random.Image(4096, 3)
	must(t, err)
	for use, indexed := range map[layerUse]bool{noLayers: false, layersPushed: true, layersForImage: true} {
		b := &builder{
			opts:      Options{Collaborators: Collaborators{WorkDir: t.TempDir(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}},
			roots:     stageDirs{},
			layerUses: map[int]layerUse{0: use},
		}
		r, err := newStageFS(b, 0, "random").unpack(context.Background(), img)
		must(t, err)
		entries, err := os.ReadDir(r.path)
		must(t, err)
		if len(entries) != 3 {
			t.Errorf("use %d: the root holds %d entries, want the 3 layers' files", use, len(entries))
		}
		if got := r.idx != nil; got != indexed {
			t.Errorf("use %d: root indexed = %v, want %v", use, got, indexed)
		}
		if r.idx != nil {
			hashed := 0
			r.idx.Range(func(_ string, e rootfs.Entry) bool {
				if e.Mode.IsRegular() && e.Hash != nil {
					hashed++
				}
				return true
			})
			if hashed != 3 {
				t.Errorf("use %d: %d files hashed in the index, want 3", use, hashed)
			}
		}
		must(t, r.wrote([]string{"/"}))
		b.cleanup()
	}
}
