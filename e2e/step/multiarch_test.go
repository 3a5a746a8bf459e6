package step

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway-build/slipway/e2e/harness"
)

// index runs slipway-index.
func index(t *testing.T, args ...string) result {
	t.Helper()
	return runBinary(t, indexBinary, nil, nil, args...)
}

// buildFor builds dir for platform into dest and returns dest's repo@digest
// (the IMAGES result).
func buildFor(t *testing.T, reg *harness.Registry, dir, platform, dest string) string {
	t.Helper()
	images := filepath.Join(t.TempDir(), "images")
	r := slipway(t, nil, "--context", dir, "--custom-platform", platform, "--insecure", "--insecure-pull",
		"--destination", dest, "--images-file", images, "--reproducible")
	if r.code != 0 {
		t.Fatalf("slipway-build --custom-platform %s: exit %d\n%s", platform, r.code, r.stderr)
	}
	return readFile(t, images)
}

// TestMultiPlatformIndex builds one Dockerfile for linux/amd64 and, under
// QEMU, for linux/arm64, assembles the two with slipway-index, and runs the
// result with docker for each platform.
func TestMultiPlatformIndex(t *testing.T) {
	reg := harness.StartRegistry(t)
	base := harness.BusyboxMulti(t, reg, "arm64")
	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nARG TARGETARCH\nRUN echo \"$TARGETARCH $(uname -m)\" > /arch\nCMD [\"cat\", \"/arch\"]\n",
	})
	amd := buildFor(t, reg, dir, "linux/amd64", reg.Host+"/multi/app:amd64")
	arm := buildFor(t, reg, dir, "linux/arm64", reg.Host+"/multi/app:arm64")

	out := t.TempDir()
	dest := reg.Host + "/multi/app:latest"
	r := index(t, "--image", amd, "--image", arm, "--destination", dest, "--destination", reg.Host+"/multi/other:v1",
		"--insecure", "--insecure-pull",
		"--digest-file", filepath.Join(out, "digest"), "--image-url-file", filepath.Join(out, "url"), "--images-file", filepath.Join(out, "images"))
	if r.code != 0 {
		t.Fatalf("slipway-index: exit %d\n%s", r.code, r.stderr)
	}
	digest := readFile(t, filepath.Join(out, "digest"))
	if got := remoteDigest(t, reg, dest); got != digest {
		t.Fatalf("%s is %s, the digest file says %s", dest, got, digest)
	}
	if got := readFile(t, filepath.Join(out, "url")); got != dest {
		t.Errorf("IMAGE_URL = %q, want %q", got, dest)
	}
	wantImages := reg.Host + "/multi/app@" + digest + "," + reg.Host + "/multi/other@" + digest
	if got := readFile(t, filepath.Join(out, "images")); got != wantImages {
		t.Errorf("IMAGES = %q, want %q", got, wantImages)
	}

	// The index's manifests are the two builds, with their platforms.
	ref, _ := name.ParseReference(dest)
	idx, err := remote.Index(ref, reg.Client().RemoteOptions(ref, false)...)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if im.MediaType != types.OCIImageIndex || len(im.Manifests) != 2 {
		t.Fatalf("index %s with %d manifests, want an OCI index of 2", im.MediaType, len(im.Manifests))
	}
	for i, want := range []struct{ arch, ref string }{{"amd64", amd}, {"arm64", arm}} {
		m := im.Manifests[i]
		_, d, _ := strings.Cut(want.ref, "@")
		if m.Platform == nil || m.Platform.OS != "linux" || m.Platform.Architecture != want.arch || m.Digest.String() != d {
			t.Errorf("manifest %d = %+v %s, want linux/%s %s", i, m.Platform, m.Digest, want.arch, d)
		}
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		if cf.Architecture != want.arch {
			t.Errorf("image %s has config architecture %s, want %s", m.Digest, cf.Architecture, want.arch)
		}
	}

	// docker pulls each platform's image from the index and runs it; the
	// arm64 one under the machine's QEMU handler.
	for _, tc := range []struct{ platform, want string }{{"linux/amd64", "amd64 x86_64"}, {"linux/arm64", "arm64 aarch64"}} {
		got := dockerRunPlatform(t, tc.platform, dest)
		if got != tc.want {
			t.Errorf("docker run --platform %s %s printed %q, want %q", tc.platform, dest, got, tc.want)
		}
	}
}

func dockerRunPlatform(t *testing.T, platform, ref string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, "docker", "run", "--rm", "--pull", "always", "--platform", platform, ref)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker run --platform %s %s: %v\n%s%s", platform, ref, err, out, stderr.String())
	}
	t.Cleanup(func() { _ = exec.Command("docker", "rmi", "-f", ref).Run() })
	return strings.TrimSpace(string(out))
}

// TestIndexRefusesBadImages: every check fails before anything is pushed
// and leaves no digest file.
func TestIndexRefusesBadImages(t *testing.T) {
	reg := harness.StartRegistry(t)
	base := harness.BusyboxMulti(t, reg, "arm64")
	dir := writeContext(t, map[string]string{"Dockerfile": "FROM " + base + "\nENV A=1\n"})
	amd := buildFor(t, reg, dir, "linux/amd64", reg.Host+"/bad/app:amd64")
	arm := buildFor(t, reg, dir, "linux/arm64", reg.Host+"/bad/app:arm64")
	baseRef, _ := name.ParseReference(base)
	baseDesc, err := remote.Head(baseRef, reg.Client().RemoteOptions(baseRef, false)...)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"twice", []string{"--image", amd, "--image", arm, "--image", amd}, "platform linux/amd64 appears twice"},
		{"a tag", []string{"--image", reg.Host + "/bad/app:amd64"}, "want REF@DIGEST"},
		{"an index", []string{"--image", amd, "--image", baseRef.Context().Name() + "@" + baseDesc.Digest.String()}, "is itself a multi-platform index"},
		{"missing platform", []string{"--image", amd, "--platform", "linux/amd64,linux/arm64"}, "missing [linux/arm64]"},
		{"extra platform", []string{"--image", amd, "--image", arm, "--platform", "linux/amd64"}, "not asked for [linux/arm64"},
		{"docker format of OCI images", []string{"--image", amd, "--format", "docker"}, "a Docker manifest list holds only Docker images; use --format oci"},
		{"no image", nil, "no --image given"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			dest := reg.Host + "/bad/index:" + strings.ReplaceAll(tc.name, " ", "-")
			r := index(t, append(tc.args, "--destination", dest, "--insecure", "--insecure-pull", "--digest-file", filepath.Join(out, "digest"))...)
			if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, want a failure saying %q:\n%s", r.code, tc.want, r.stderr)
			}
			if _, err := os.Stat(filepath.Join(out, "digest")); !os.IsNotExist(err) {
				t.Error("a failed slipway-index left a digest file")
			}
			ref, _ := name.ParseReference(dest)
			if _, err := remote.Head(ref, reg.Client().RemoteOptions(ref, false)...); err == nil {
				t.Errorf("a failed slipway-index pushed %s", dest)
			}
		})
	}
}

// TestForeignDebianBase builds FROM an arm64 Debian base (debootstrap
// --foreign, its second stage finished under QEMU) with --custom-platform
// linux/arm64: RUN runs Debian's own arm64 shell, coreutils and dpkg
// through the machine's binfmt_misc handler, and the image is arm64.
func TestForeignDebianBase(t *testing.T) {
	reg := harness.StartRegistry(t)
	base := harness.DebianFor(t, reg, "arm64")
	dir := writeContext(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nRUN uname -m > /arch && dpkg --print-architecture >> /arch && dpkg-query -W -f '${Architecture}\\n' coreutils >> /arch\n",
	})
	ref := buildFor(t, reg, dir, "linux/arm64", reg.Host+"/foreign/debian:arm64")
	r, err := name.NewDigest(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r, reg.Client().RemoteOptions(r, false)...)
	if err != nil {
		t.Fatal(err)
	}
	if got := fileIn(t, img, "arch"); got != "aarch64\narm64\narm64\n" {
		t.Errorf("/arch = %q, want aarch64 (uname -m) and arm64 (dpkg, coreutils)", got)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "arm64" {
		t.Errorf("config platform %s/%s, want linux/arm64", cf.OS, cf.Architecture)
	}
}
