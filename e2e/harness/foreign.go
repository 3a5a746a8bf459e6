package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// archImages keeps an image per architecture, or the error of building
// it, so that each is built once per process.
type archImages struct {
	mu    sync.Mutex
	built map[string]builtImage
}

type builtImage struct {
	img v1.Image
	err error
}

// get is the image for arch, built by build the first time it is asked for.
func (m *archImages) get(arch string, build func(arch string) (v1.Image, error)) (v1.Image, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.built[arch]
	if !ok {
		b.img, b.err = build(arch)
		if m.built == nil {
			m.built = map[string]builtImage{}
		}
		m.built[arch] = b
	}
	return b.img, b.err
}

// foreignBusybox are the Busybox images built for other architectures.
var foreignBusybox archImages

// BusyboxImageFor is the Busybox image for another architecture (a Go
// architecture name: arm64, ppc64le, s390x): the same layout around the
// static busybox of Debian's busybox-static package for it, downloaded with
// apt-get download (the architecture must be added with dpkg
// --add-architecture; .ci/deps adds arm64) and kept under CacheDir.
func BusyboxImageFor(t testing.TB, arch string) v1.Image {
	t.Helper()
	img, err := foreignBusybox.get(arch, buildForeignBusybox)
	if err != nil {
		t.Fatalf("building the linux/%s busybox base image: %v", arch, err)
	}
	return img
}

// BusyboxFor pushes BusyboxImageFor(arch) to reg as a single-platform image
// and returns its reference ("127.0.0.1:PORT/slipway-test/busybox-ARCH:latest").
func BusyboxFor(t testing.TB, reg *Registry, arch string) string {
	t.Helper()
	return pushOnce(t, reg, "slipway-test/busybox-"+arch+":latest", func(ref name.Reference) error {
		_, err := reg.Client().Push(context.Background(), BusyboxImageFor(t, arch), ref)
		return err
	})
}

func buildForeignBusybox(arch string) (v1.Image, error) {
	bin, err := ForeignBusyboxBinary(arch)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	return busyboxFrom(data, arch)
}

// debianArch is Debian's name for a Go architecture.
func debianArch(goarch string) string {
	switch goarch {
	case "ppc64le":
		return "ppc64el"
	case "arm":
		return "armhf"
	case "386":
		return "i386"
	}
	return goarch
}

// ForeignBusyboxBinary returns the path of the static busybox from Debian's
// busybox-static package for the Go architecture arch, fetching it once per
// machine under a file lock.
func ForeignBusyboxBinary(goarch string) (string, error) {
	arch := debianArch(goarch)
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	out := filepath.Join(cache, "busybox-static-"+arch)
	unlock, err := lockFile(out + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	work, err := os.MkdirTemp(cache, "busybox-"+arch+"-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	download := exec.Command("apt-get", "download", "busybox-static:"+arch)
	download.Dir = work
	if b, err := download.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download busybox-static:%s (needs dpkg --add-architecture %s && apt-get update): %w\n%s", arch, arch, err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(work, "busybox-static_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download busybox-static:%s left %d .deb files in %s", arch, len(debs), work)
	}
	root := filepath.Join(work, "root")
	if b, err := exec.Command("dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb -x %s: %w\n%s", debs[0], err, b)
	}
	tmp := filepath.Join(work, "busybox")
	if err := os.Rename(filepath.Join(root, "bin", "busybox"), tmp); err != nil {
		return "", fmt.Errorf("busybox-static:%s has no /bin/busybox: %w", arch, err)
	}
	return out, os.Rename(tmp, out)
}

// BusyboxMulti pushes an index holding the Busybox image for linux/amd64
// and BusyboxImageFor each of archs, and returns its reference
// ("127.0.0.1:PORT/slipway-test/busybox-multi:latest").
func BusyboxMulti(t testing.TB, reg *Registry, archs ...string) string {
	t.Helper()
	return pushOnce(t, reg, "slipway-test/busybox-multi:latest", func(ref name.Reference) error {
		idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: BusyboxImage(t), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
		for _, arch := range archs {
			idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: BusyboxImageFor(t, arch), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
		}
		_, err := reg.Client().PushIndex(context.Background(), idx, ref)
		return err
	})
}
