package harness

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// BusyboxBinary is the static busybox from Debian's busybox-static.
const BusyboxBinary = "/bin/busybox"

// BusyboxApplets are linked into /bin of the Busybox image.
var BusyboxApplets = []string{
	"sh", "ls", "cat", "echo", "mkdir", "rm", "touch", "id", "chmod", "chown",
	"ln", "sed", "grep", "wc", "sleep", "env", "true", "false", "test", "printf",
	"tee", "mv", "cp", "find", "stat", "readlink", "head", "tail", "sort", "uniq",
	"tr", "cut", "basename", "dirname", "pwd", "whoami", "date", "du", "tar",
	"gzip", "xargs", "expr", "seq", "md5sum", "sha256sum", "hostname", "uname",
	"mktemp", "diff", "awk", "[", "chgrp", "sync", "rmdir", "wget", "which",
}

// epoch is the fixed time of every Busybox entry, so that its digest is the
// same on every run and machine with the same busybox binary.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

const busyboxPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

var (
	busyboxOnce  sync.Once
	busyboxImage v1.Image
	busyboxErr   error

	pushedMu sync.Mutex
	pushed   = map[string]string{}
)

// BusyboxImage is the linux/amd64 base image: /bin/busybox with applet
// symlinks, /etc/passwd (root, nobody, app uid 1000), /etc/group, /tmp 1777,
// /root, /home/app; PATH set and Cmd ["sh"]. It is built once per process.
func BusyboxImage(t testing.TB) v1.Image {
	t.Helper()
	SkipIfShort(t, "busybox-static")
	busyboxOnce.Do(func() { busyboxImage, busyboxErr = buildBusybox() })
	if busyboxErr != nil {
		t.Fatalf("building the busybox base image: %v", busyboxErr)
	}
	return busyboxImage
}

// Busybox pushes BusyboxImage to reg and returns its reference
// ("127.0.0.1:PORT/slipway-test/busybox:latest").
func Busybox(t testing.TB, reg *Registry) string {
	t.Helper()
	return pushOnce(t, reg, "slipway-test/busybox:latest", func(ref name.Reference) error {
		_, err := reg.Client().Push(context.Background(), BusyboxImage(t), ref)
		return err
	})
}

// BusyboxIndex pushes an index holding BusyboxImage for linux/amd64 and a
// small stand-in image for linux/arm64/v8, for platform resolution tests.
// The arm64 image holds only /ARCH, containing "arm64".
func BusyboxIndex(t testing.TB, reg *Registry) string {
	t.Helper()
	return pushOnce(t, reg, "slipway-test/busybox-index:latest", func(ref name.Reference) error {
		arm, err := armStandIn()
		if err != nil {
			return err
		}
		idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
		idx = mutate.AppendManifests(idx,
			mutate.IndexAddendum{Add: BusyboxImage(t), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
			mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}}},
		)
		_, err = reg.Client().PushIndex(context.Background(), idx, ref)
		return err
	})
}

func pushOnce(t testing.TB, reg *Registry, repoTag string, push func(name.Reference) error) string {
	t.Helper()
	refStr := reg.Host + "/" + repoTag
	// Keyed by the registry's directory: a later registry may get the same
	// port but starts empty.
	key := reg.Dir + " " + repoTag
	pushedMu.Lock()
	defer pushedMu.Unlock()
	if _, ok := pushed[key]; ok {
		return refStr
	}
	ref, err := name.ParseReference(refStr)
	if err != nil {
		t.Fatal(err)
	}
	if err := push(ref); err != nil {
		t.Fatalf("pushing base image %s: %v", refStr, err)
	}
	pushed[key] = refStr
	return refStr
}

func buildBusybox() (v1.Image, error) {
	bin, err := os.ReadFile(BusyboxBinary)
	if err != nil {
		return nil, fmt.Errorf("%w: apt-get install busybox-static", err)
	}
	return busyboxFrom(bin, "amd64")
}

// busyboxFrom lays out the busybox image around bin, a static busybox for
// arch.
func busyboxFrom(bin []byte, arch string) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64, uid int) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: uid, Gid: uid, ModTime: epoch, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX})
		_, _ = tw.Write(data)
	}
	link := func(name, target string) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: epoch, Format: tar.FormatPAX})
	}
	for _, d := range []string{"bin", "etc", "home", "usr", "usr/bin", "usr/sbin", "usr/local", "usr/local/bin", "var", "sbin", "dev", "proc", "sys"} {
		dir(d+"/", 0o755, 0)
	}
	dir("tmp/", 0o1777, 0)
	dir("root/", 0o700, 0)
	dir("home/app/", 0o755, 1000)
	file("bin/busybox", 0o755, bin)
	for _, a := range BusyboxApplets {
		link("bin/"+a, "busybox")
	}
	// Scripts with "#!/usr/bin/env sh" are common in Dockerfiles.
	link("usr/bin/env", "/bin/busybox")
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\napp:x:1000:\n"))
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return imageFromTar(buf.Bytes(), arch, "busybox-static base layer")
}

func armStandIn() (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	data := []byte("arm64\n")
	_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "ARCH", Mode: 0o644, Size: int64(len(data)), ModTime: epoch})
	_, _ = tw.Write(data)
	if err := tw.Close(); err != nil {
		return nil, err
	}
	img, err := imageFromTar(buf.Bytes(), "arm64", "arm64 stand-in layer")
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Variant = "v8"
	return mutate.ConfigFile(img, cf)
}

func imageFromTar(data []byte, arch, createdBy string) (v1.Image, error) {
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:   layer,
		History: v1.History{CreatedBy: createdBy, Created: v1.Time{Time: epoch}},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Env = []string{"PATH=" + busyboxPath}
	cf.Config.Cmd = []string{"sh"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	// Compute the layer digests once, so that every push reuses them.
	if _, err := img.Digest(); err != nil {
		return nil, err
	}
	return img, nil
}
