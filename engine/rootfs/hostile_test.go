package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/slipway-build/slipway/engine/rootfs/hostile"
)

// TestHostileLayers applies every hostile case (engine/rootfs/hostile) by
// extraction and through a sparse root. Nothing outside the root may
// change, and an error must name the entry it is about.
func TestHostileLayers(t *testing.T) {
	needRoot(t)
	resolverModes(t, func(t *testing.T) {
		for _, c := range hostile.Cases() {
			t.Run(c.Name, func(t *testing.T) {
				t.Run("unpacked", func(t *testing.T) {
					j := newJail(t)
					layers := c.Script.Layers(j.outside)
					err := j.extract(layers, NewIndex())
					j.check(t, c, err)
				})
				t.Run("sparse", func(t *testing.T) {
					j := newJail(t)
					layers := c.Script.Layers(j.outside)
					err := j.sparse(t, layers)
					j.check(t, c, err)
				})
			})
		}
	})
}

// jail is a temporary directory holding the root, the sparse root and the
// outside directory that no layer may change.
type jail struct {
	tmp, root, sparseDir, outside string
	before, beforeTmp             map[string]string
}

func newJail(t testing.TB) *jail {
	t.Helper()
	tmp := t.TempDir()
	j := &jail{tmp: tmp, root: filepath.Join(tmp, "root"), sparseDir: filepath.Join(tmp, "sparse"), outside: filepath.Join(tmp, "outside")}
	mustMkdir(t, j.root)
	mustMkdir(t, j.sparseDir)
	if err := hostile.MakeOutside(j.outside); err != nil {
		t.Fatal(err)
	}
	var err error
	if j.before, err = hostile.Fingerprint(j.outside); err != nil {
		t.Fatal(err)
	}
	if j.beforeTmp, err = hostile.Fingerprint(tmp, "root", "sparse", "outside"); err != nil {
		t.Fatal(err)
	}
	return j
}

// extract applies the layers to the root in turn, as ExtractImage does,
// recording them in idx (which may be nil).
func (j *jail) extract(layers [][]hostile.Entry, idx *Index) error {
	for _, l := range layers {
		if err := Extract(j.root, bytes.NewReader(hostile.Tar(l)), idx); err != nil {
			return err
		}
	}
	return nil
}

// sparse reads the layers' headers into a Lower and reveals, in a sparse
// root, every name and link target the layers hold, and what lies below
// each. Reveal errors are the step's to report; only confinement counts.
func (j *jail) sparse(t testing.TB, layers [][]hostile.Entry) error {
	lower := NewLower()
	var probes []string
	for _, l := range layers {
		data := hostile.Tar(l)
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
		if err != nil {
			t.Fatal(err)
		}
		if err := lower.Add(context.Background(), layer); err != nil {
			return err
		}
		for _, e := range l {
			probes = append(probes, e.Header.Name, e.Header.Name+"/x")
			if e.Header.Typeflag == tar.TypeSymlink || e.Header.Typeflag == tar.TypeLink {
				probes = append(probes, e.Header.Linkname, e.Header.Linkname+"/x")
			}
		}
	}
	reveal(t, lower.Sparse(j.sparseDir), probes)
	return nil
}

func reveal(t testing.TB, s *Sparse, probes []string) {
	for _, p := range probes {
		if err := s.Reveal(p); err != nil {
			t.Logf("Reveal(%.80q): %v", p, err)
		}
		if err := s.RevealFile(p); err != nil {
			t.Logf("RevealFile(%.80q): %v", p, err)
		}
	}
}

// check asserts that the outside directory and the temporary directory
// are as they were, and that err, if any, names the case's entry.
func (j *jail) check(t *testing.T, c hostile.Case, err error) {
	t.Helper()
	j.checkConfined(t)
	blame := c.Blamed(j.outside)
	switch {
	case err != nil && !hostile.NamesEntry(err.Error(), blame):
		t.Errorf("the error does not name the entry %.80q: %v", blame, err)
	case err == nil && c.MustFail:
		t.Errorf("applied without error; want an error naming %.80q", blame)
	case err != nil:
		t.Logf("refused: %.300v", err)
	}
}

// checkConfined asserts that the outside directory and the temporary
// directory around the root are as they were.
func (j *jail) checkConfined(t *testing.T) {
	t.Helper()
	after, ferr := hostile.Fingerprint(j.outside)
	if ferr != nil {
		t.Fatal(ferr)
	}
	if d := hostile.Diff(j.before, after); d != "" {
		t.Errorf("the outside directory changed:\n%s", d)
	}
	afterTmp, ferr := hostile.Fingerprint(j.tmp, "root", "sparse", "outside")
	if ferr != nil {
		t.Fatal(ferr)
	}
	if d := hostile.Diff(j.beforeTmp, afterTmp); d != "" {
		t.Errorf("the directory around the root changed:\n%s", d)
	}
}
