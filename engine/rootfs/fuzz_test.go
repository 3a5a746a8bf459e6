package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/slipway-build/slipway/engine/rootfs/hostile"
)

// The rootfs fuzz targets take a hostile.Script: a few lines that say
// which entries each layer holds. Raw tar bytes would spend the fuzzer's
// time on header checksums; scripts let it recombine names, link targets,
// whiteouts and layers, which is where confinement can break.

// fuzzSeeds are the hostile cases and the layers of the existing tests.
func fuzzSeeds(f *testing.F) {
	for _, c := range hostile.Cases() {
		if len(c.Script) <= maxScript {
			f.Add(string(c.Script), false)
		}
	}
	for _, s := range []string{
		// sparseTestImage's layers.
		"d etc/\nf etc/passwd root:x:0:0::/root:/bin/sh\nf etc/gone x\nd usr/\nd usr/bin/\nf usr/bin/tool\ns bin usr/bin\nd var/\ns var/run /run\nd run/\n" +
			"d opt/\nd opt/old/\nf opt/old/a\ns loop1 loop2\ns loop2 loop1\ns up ../../etc\nd a/\nd a/b/\ns a/link b/../../usr\ns a/b/self .\nf implied/child/file\n" +
			"--\nf etc/.wh.gone\nd opt/\nf opt/.wh..wh..opq\nf opt/new\nh usr/bin/tool2 usr/bin/tool\nf var/run/pidfile\n--\nf etc/passwd",
		// TestExtractWhiteoutsAndOpaque's.
		"d a\nf a/1\nf a/2\nd a/sub\nf a/sub/deep\nd b\nf b/1\nf b/2\nf c\nd e\nf e/1\ns lib64 lib\nd lib\n--\nf .wh.c\nf a/.wh.1\nf a/.wh..wh..opq\nf a/3\nf lib64/.wh..wh..opq",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
}

// maxScript keeps inputs small: a deep path costs extraction time that
// grows with the square of its depth, which is slowness, not a finding.
const maxScript = 2048

func fuzzLayers(t *testing.T, script string, walk bool, outside string) [][]hostile.Entry {
	if len(script) > maxScript || strings.Count(script, "/") > 256 {
		t.Skip("input too large")
	}
	prev := openat2Unavailable.Load()
	openat2Unavailable.Store(walk)
	t.Cleanup(func() { openat2Unavailable.Store(prev) })
	return hostile.Script(script).Layers(outside)
}

// FuzzExtract extracts layers into a root: nothing outside it may change,
// and every error names the entry it is about.
func FuzzExtract(f *testing.F) {
	needRoot(f)
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, script string, walk bool) {
		j := newJail(t)
		// No index: recording it waits out the racy window, 25ms an input.
		err := j.extract(fuzzLayers(t, script, walk, j.outside), nil)
		j.checkConfined(t)
		if err != nil && !strings.Contains(err.Error(), "layer entry") {
			t.Errorf("the error names no layer entry: %v", err)
		}
	})
}

// FuzzLower reads layers' headers into a Lower and reveals every name and
// link target in a sparse root: nothing outside it may change. Where the
// layers also extract cleanly, each revealed path must resolve as it does
// in the unpacked root.
func FuzzLower(f *testing.F) {
	needRoot(f)
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, script string, walk bool) {
		j := newJail(t)
		layers := fuzzLayers(t, script, walk, j.outside)
		lower := NewLower()
		var probes []string
		for _, l := range layers {
			data := hostile.Tar(l)
			layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
			if err != nil {
				t.Fatal(err)
			}
			if err := lower.Add(context.Background(), layer); err != nil {
				if !strings.Contains(err.Error(), "layer entry") {
					t.Errorf("the error names no layer entry: %v", err)
				}
				j.checkConfined(t)
				return
			}
			for _, e := range l {
				probes = append(probes, e.Header.Name, e.Header.Name+"/x")
				if e.Header.Typeflag == tar.TypeSymlink || e.Header.Typeflag == tar.TypeLink {
					probes = append(probes, e.Header.Linkname)
				}
			}
		}
		sparse := lower.Sparse(j.sparseDir)
		var revealed []string
		for _, p := range probes {
			if sparse.Reveal(p) == nil {
				revealed = append(revealed, p)
			}
		}
		j.checkConfined(t)
		if j.extract(layers, nil) != nil {
			return
		}
		for _, p := range revealed {
			want, werr := securejoin.SecureJoin(j.root, p)
			got, gerr := securejoin.SecureJoin(j.sparseDir, p)
			if werr != nil || gerr != nil {
				continue
			}
			wantRel, _ := filepath.Rel(j.root, want)
			gotRel, _ := filepath.Rel(j.sparseDir, got)
			if wantRel != gotRel {
				t.Errorf("%q resolves to /%s in the sparse root, to /%s unpacked", p, gotRel, wantRel)
			}
		}
	})
}
