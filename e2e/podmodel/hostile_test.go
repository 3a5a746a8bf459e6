package podmodel

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway-build/slipway/e2e/harness"
	"github.com/slipway-build/slipway/engine/rootfs/hostile"
)

// canaryMount is where a host directory is mounted in the pod for the
// hostile cases to aim at: in in-place mode the root is the container's
// own /, so what lies outside it is what the pod mounts.
const canaryMount = "/canary"

// TestHostileBaseInPlace builds FROM each hostile case of
// engine/rootfs/hostile, in place in the executor image, as a pod runs it.
// The case's layers aim at a mounted host directory; neither it nor the
// mounted workspace may change, and a failing build must name the entry.
// --single-snapshot makes the build unpack the base into / although the
// Dockerfile has no RUN (a hostile base may have broken any shell).
func TestHostileBaseInPlace(t *testing.T) {
	b := executorImages(t)
	reg := harness.StartRegistry(t)
	for i, c := range hostile.Cases() {
		t.Run(c.Name, func(t *testing.T) {
			base := pushHostile(t, reg, fmt.Sprintf("%s/hostile/case%d:1", reg.Host, i), c.Script.Layers(canaryMount))
			ctx := writeContext(t, map[string]string{
				"Dockerfile": "FROM " + base + "\nCOPY marker /slipway-hostile-marker\n",
				"marker":     "marker\n",
			})
			canary := t.TempDir()
			if err := hostile.MakeOutside(canary); err != nil {
				t.Fatal(err)
			}
			before := fingerprint(t, canary)
			beforeCtx := fingerprint(t, ctx)
			out, code := dockerRun(t,
				"-v", ctx+":/workspace",
				"-v", canary+":"+canaryMount,
				b.executor,
				"--context", "dir:///workspace",
				"--destination", reg.Host+"/hostile/out:1",
				"--no-push",
				"--single-snapshot",
				"--insecure-registry", reg.Host,
			)
			if d := hostile.Diff(before, fingerprint(t, canary)); d != "" {
				t.Errorf("the mounted host directory changed:\n%s\nbuild output:\n%s", d, out)
			}
			if d := hostile.Diff(beforeCtx, fingerprint(t, ctx)); d != "" {
				t.Errorf("the mounted workspace changed:\n%s\nbuild output:\n%s", d, out)
			}
			if !strings.Contains(out, "Unpacking rootfs") {
				t.Errorf("the build did not unpack the base in place:\n%s", out)
			}
			blame := c.Blamed(canaryMount)
			switch {
			case code != 0 && !hostile.NamesPlace(out, blame):
				t.Errorf("the build exited %d without naming the entry %.80q:\n%s", code, blame, out)
			case code == 0 && c.MustFail:
				t.Errorf("the build succeeded; want a failure naming %.80q:\n%s", blame, out)
			}
		})
	}
}

func fingerprint(t *testing.T, dir string) map[string]string {
	t.Helper()
	fp, err := hostile.Fingerprint(dir)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

// pushHostile pushes an image made of the layers alone, with no base.
func pushHostile(t *testing.T, reg *harness.Registry, refStr string, layers [][]hostile.Entry) string {
	t.Helper()
	img := empty.Image
	for _, l := range layers {
		data := hostile.Tar(l)
		layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		}, tarball.WithMediaType(types.OCILayer))
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			t.Fatal(err)
		}
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	ref, err := name.ParseReference(refStr, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuthFromKeychain(reg.Keychain())); err != nil {
		t.Fatalf("pushing %s: %v", refStr, err)
	}
	return refStr
}
