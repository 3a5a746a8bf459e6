package podmodel

import (
	"bytes"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/slipway-build/slipway/e2e/harness"
	"github.com/slipway-build/slipway/tasks"
)

// elfMachine is what each platform's binaries must be built for.
var elfMachine = map[string]struct {
	machine elf.Machine
	order   elf.Data
}{
	"linux/amd64":   {elf.EM_X86_64, elf.ELFDATA2LSB},
	"linux/arm64":   {elf.EM_AARCH64, elf.ELFDATA2LSB},
	"linux/ppc64le": {elf.EM_PPC64, elf.ELFDATA2LSB},
	"linux/s390x":   {elf.EM_S390, elf.ELFDATA2MSB},
}

// multiBuilt are the executor and debug images as `make image` builds
// them: one index each, over every platform of tasks.Platforms.
type multiBuilt struct {
	// executor and debug are the indexes' references in the registry, by
	// digest.
	executor, debug name.Digest
	// executorLayout and debugLayout hold the same indexes.
	executorLayout, debugLayout string
	// executorTar is the docker tarball of this machine's platform's image.
	executorTar string
}

// buildMultiPlatform cross-compiles the step binaries for every platform
// and builds both images with steps/image/build.sh -p, as `make image`
// does, pushing the indexes to reg and writing them as OCI layouts.
func buildMultiPlatform(t *testing.T, b built, reg *harness.Registry) multiBuilt {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	// The host binaries build and join the images; the per-platform ones
	// go into them.
	for _, s := range []string{"slipway-build", "slipway-index"} {
		if err := os.Link(filepath.Join(b.bin, s), filepath.Join(bin, s)); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range strings.Split(tasks.Platforms, ",") {
		goos, goarch, _ := strings.Cut(p, "/")
		if err := buildStepsFor(root, filepath.Join(bin, goos+"-"+goarch), goos, goarch); err != nil {
			t.Fatal(err)
		}
	}
	var m multiBuilt
	for _, target := range []string{"executor", "debug"} {
		out := filepath.Join(dir, target)
		args := []string{"-b", bin, "-t", target, "-p", tasks.Platforms,
			"--destination", reg.Host + "/slipway:" + target, "--insecure",
			"--oci-layout-path", out, "--digest-file", out + ".digest"}
		if target == "executor" {
			m.executorTar = filepath.Join(dir, "executor.tar")
			args = append(args, "--tar-path", m.executorTar)
		}
		cmd := exec.Command(filepath.Join(root, "steps", "image", "build.sh"), args...)
		cmd.Dir = root
		if o, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("steps/image/build.sh %s: %v\n%s", strings.Join(args, " "), err, o)
		}
		digest, err := os.ReadFile(out + ".digest")
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.NewDigest(reg.Host + "/slipway@" + string(digest))
		if err != nil {
			t.Fatal(err)
		}
		if target == "executor" {
			m.executor, m.executorLayout = ref, out
		} else {
			m.debug, m.debugLayout = ref, out
		}
	}
	return m
}

// buildStepsFor cross-compiles slipway-build, which runs the other steps
// by name, for goos/goarch into bin, as `make build-platforms` does.
func buildStepsFor(root, bin, goos, goarch string) error {
	return buildStep(root, bin, "build", "GOOS="+goos, "GOARCH="+goarch)
}

// TestImageIndex builds the executor and debug images for every platform
// of tasks.Platforms, as `make image` and `make release` do, and checks the
// indexes, the docker tarball beside them, and that each platform's image
// runs.
func TestImageIndex(t *testing.T) {
	b := executorImages(t)
	reg := harness.StartRegistry(t)
	m := buildMultiPlatform(t, b, reg)
	t.Run("contents", func(t *testing.T) { checkIndexes(t, m) })
	t.Run("native tarball", func(t *testing.T) { checkNativeTarball(t, m, b) })
	t.Run("runs emulated", func(t *testing.T) { checkEmulatedRuns(t, m) })
	t.Run("in place under emulation", func(t *testing.T) {
		// The arm64 executor itself runs under QEMU and builds an arm64
		// image in place, natively as far as it can tell.
		ref := m.executor.Context().Tag("executor").String()
		t.Cleanup(func() { _ = exec.Command("docker", "rmi", "--force", "--no-prune", ref).Run() })
		inPlaceArch(t, reg, []string{"--pull", "always", "--platform", "linux/arm64", ref}, "linux/arm64", "arm64 aarch64")
	})
}

// TestInPlaceForeignRun: the executor image of this machine's platform,
// in place as a pod runs it, builds for linux/arm64; its RUN executes
// arm64 binaries through the node's QEMU handler, which the container
// cannot see in its /proc but the kernel applies all the same.
func TestInPlaceForeignRun(t *testing.T) {
	b := executorImages(t)
	reg := harness.StartRegistry(t)
	inPlaceArch(t, reg, []string{b.executor, "--custom-platform", "linux/arm64"}, "linux/arm64", "arm64 aarch64")
}

// inPlaceArch runs an in-place build under docker run (image and its
// leading arguments in run) of an arm64 busybox base whose RUN records
// TARGETARCH and the machine it ran on, pushes it, and checks both and the
// image's platform.
func inPlaceArch(t *testing.T, reg *harness.Registry, run []string, platform, want string) {
	t.Helper()
	base := harness.BusyboxFor(t, reg, "arm64")
	ctx := writeContext(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nARG TARGETARCH\nRUN echo \"$TARGETARCH $(uname -m)\" > /arch\n",
	})
	dest := reg.Host + "/inplace/arch:" + strings.ReplaceAll(platform, "/", "-")
	args := append([]string{"-v", ctx + ":/workspace"}, run...)
	args = append(args, "--context", "dir:///workspace", "--destination", dest,
		"--digest-file", "/workspace/out/digest", "--insecure-registry", reg.Host)
	out, code := dockerRun(t, args...)
	if code != 0 {
		t.Fatalf("the in-place build exited %d:\n%s", code, out)
	}
	img := assertPushed(t, reg, dest, filepath.Join(ctx, "out", "digest"))
	fs := flatten(t, img)
	if f := fs["/arch"]; f == nil || strings.TrimSpace(string(f.data)) != want {
		t.Errorf("/arch = %v, want %q", f, want)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.OS + "/" + cf.Architecture; got != platform {
		t.Errorf("the image is for %s, want %s", got, platform)
	}
}

// checkIndexes: the executor and debug images are indexes of one image per
// platform, whose config names that platform and whose binaries (and
// busybox) are built for its machine; the layout and the registry hold the
// same index.
func checkIndexes(t *testing.T, m multiBuilt) {
	platforms := strings.Split(tasks.Platforms, ",")
	for _, tc := range []struct {
		name, layout string
		ref          name.Digest
		busybox      bool
	}{
		{"executor", m.executorLayout, m.executor, false},
		{"debug", m.debugLayout, m.debug, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lp, err := layout.ImageIndexFromPath(tc.layout)
			if err != nil {
				t.Fatal(err)
			}
			outer, err := lp.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			if len(outer.Manifests) != 1 || !outer.Manifests[0].MediaType.IsIndex() {
				t.Fatalf("the OCI layout %s holds %+v, want one image index", tc.layout, outer.Manifests)
			}
			if got := outer.Manifests[0].Digest.String(); got != tc.ref.DigestStr() {
				t.Errorf("the layout's index is %s, the pushed one %s", got, tc.ref.DigestStr())
			}
			idx, err := remote.Index(tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			if len(im.Manifests) != len(platforms) {
				t.Fatalf("the index holds %d manifests, want %d (%s)", len(im.Manifests), len(platforms), tasks.Platforms)
			}
			for i, want := range platforms {
				d := im.Manifests[i]
				if d.Platform == nil || d.Platform.String() != want {
					t.Errorf("manifest %d is for %v, want %s", i, d.Platform, want)
					continue
				}
				img, err := idx.Image(d.Digest)
				if err != nil {
					t.Fatal(err)
				}
				cf, err := img.ConfigFile()
				if err != nil {
					t.Fatal(err)
				}
				if got := cf.OS + "/" + cf.Architecture; got != want || cf.Variant != "" {
					t.Errorf("%s: the config says %s (variant %q)", want, got, cf.Variant)
				}
				fs := flatten(t, img)
				var checked []string
				for p, f := range fs {
					if f.data == nil || !(strings.HasPrefix(p, "/slipway/bin/") || tc.busybox && p == "/busybox/busybox") {
						continue
					}
					assertMachine(t, want, p, f.data)
					assertStatic(t, want+" "+p, f.data)
					checked = append(checked, p)
				}
				// slipway-build (the other steps and the credential helpers
				// are links to it) and, in debug only, busybox.
				if fs["/slipway/bin/slipway-build"] == nil || tc.busybox != (fs["/busybox/busybox"] != nil) {
					t.Errorf("%s: checked %q; want slipway-build and, in debug only, busybox", want, checked)
				}
			}
		})
	}
}

// assertMachine fails when the ELF binary data is not built for platform.
func assertMachine(t *testing.T, platform, path string, data []byte) {
	t.Helper()
	want, ok := elfMachine[platform]
	if !ok {
		t.Fatalf("no ELF machine known for %s", platform)
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		t.Errorf("%s %s is not an ELF binary: %v", platform, path, err)
		return
	}
	defer f.Close()
	if f.Machine != want.machine || f.Data != want.order || f.Class != elf.ELFCLASS64 {
		t.Errorf("%s %s is an ELF binary for %v %v %v, want %v %v", platform, path, f.Machine, f.Class, f.Data, want.machine, want.order)
	}
}

// checkNativeTarball: the docker tarball build.sh -p writes for docker load
// is the index's image for this machine's platform, and the same image as
// the single-platform build of the same binaries.
func checkNativeTarball(t *testing.T, m multiBuilt, b built) {
	img, err := tarball.ImageFromPath(m.executorTar, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(m.executor)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var native v1.Hash
	for _, d := range im.Manifests {
		if d.Platform != nil && d.Platform.Architecture == "amd64" {
			native = d.Digest
		}
	}
	if got != native {
		t.Errorf("the tarball's image is %s, the index's linux/amd64 one %s", got, native)
	}
	single, err := layoutImage(t, b.executorLayout).Digest()
	if err != nil {
		t.Fatal(err)
	}
	if single != native {
		t.Errorf("the index's linux/amd64 image is %s, the single-platform build of the same binaries %s", native, single)
	}
}

// checkEmulatedRuns: docker picks each platform's image from the debug
// index; the arm64 and s390x ones run under the machine's QEMU binfmt_misc
// handlers, and their busybox reports its machine.
func checkEmulatedRuns(t *testing.T, m multiBuilt) {
	for _, tc := range []struct{ platform, want string }{
		{"linux/amd64", "x86_64"},
		{"linux/arm64", "aarch64"},
		{"linux/s390x", "s390x"},
	} {
		t.Run(tc.platform, func(t *testing.T) {
			ref := m.debug.Context().Tag("debug").String()
			out, code := dockerRun(t, "--pull", "always", "--platform", tc.platform, "--entrypoint", "/busybox/uname", ref, "-m")
			t.Cleanup(func() { _ = exec.Command("docker", "rmi", "--force", "--no-prune", ref).Run() })
			// The pull's progress comes first; the command's line last.
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if code != 0 || lines[len(lines)-1] != tc.want {
				t.Errorf("docker run --platform %s %s: /busybox/uname -m printed %q (exit %d), want %s", tc.platform, ref, out, code, tc.want)
			}
		})
	}
}
