package build

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-build/slipway/e2e/harness"
	"github.com/slipway-build/slipway/engine/registry"
	"github.com/slipway-build/slipway/engine/run"
)

var arm64 = v1.Platform{OS: "linux", Architecture: "arm64"}

// requireQEMU fails when the machine has no handler for arm64 binaries:
// .ci/deps installs qemu-user-static and registers its handlers.
func requireQEMU(t *testing.T) run.Emulation {
	t.Helper()
	em, err := run.CheckPlatform(run.BinfmtDir, toOCIPlatform(arm64), toOCIPlatform(hostPlatform()))
	if err != nil || em.Unknown {
		t.Fatalf("this test runs arm64 binaries under QEMU: run .ci/deps (qemu-user-static, update-binfmts --enable): %v", err)
	}
	return em
}

// noHandlers is a binfmt_misc directory with no handler registered.
func noHandlers(t *testing.T) string {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "status"), []byte("enabled\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestForeignRun(t *testing.T) {
	f := newFixture(t)
	if hostPlatform().Architecture == "arm64" {
		t.Skip("the machine is arm64: nothing foreign to emulate")
	}
	requireQEMU(t)
	armBase := harness.BusyboxFor(t, f.reg, "arm64")
	img, err := f.build(t, map[string]string{
		"Dockerfile": "FROM " + armBase + "\nARG TARGETPLATFORM TARGETARCH TARGETVARIANT\nRUN uname -m > /arch && echo \"$TARGETPLATFORM $TARGETARCH [$TARGETVARIANT]\" > /args\n",
	}, func(o *Options) { o.Platform = v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"} })
	if err != nil {
		t.Fatal(err)
	}
	fs := flatten(t, img)
	if got := fs["/arch"].content; got != "aarch64\n" {
		t.Errorf("uname -m under linux/arm64 = %q, want aarch64", got)
	}
	// BuildKit normalises linux/arm64/v8 to linux/arm64 (containerd's rules).
	if got := fs["/args"].content; got != "linux/arm64 arm64 []\n" {
		t.Errorf("platform args = %q", got)
	}
	cf, _ := img.ConfigFile()
	if cf.OS != "linux" || cf.Architecture != "arm64" {
		t.Errorf("config platform %s/%s, want linux/arm64", cf.OS, cf.Architecture)
	}
}

// TestCrossCompile is the Go pattern: the builder stage runs on the build
// platform, the final stage is the target's and runs nothing. It must need
// no emulation: the check is given a binfmt_misc with no handler at all,
// and the only arm64 binaries are in the final stage, which has no RUN.
func TestCrossCompile(t *testing.T) {
	f := newFixture(t)
	if hostPlatform().Architecture == "arm64" {
		t.Skip("the machine is arm64")
	}
	armBase := harness.BusyboxFor(t, f.reg, "arm64")
	var out bytes.Buffer
	img, err := f.build(t, map[string]string{
		"Dockerfile": `FROM --platform=$BUILDPLATFORM $BASE AS build
ARG TARGETOS TARGETARCH TARGETVARIANT TARGETPLATFORM BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT
RUN echo "GOOS=$TARGETOS GOARCH=$TARGETARCH target=$TARGETPLATFORM build=$BUILDPLATFORM $BUILDOS/$BUILDARCH[$BUILDVARIANT]" > /out && uname -m >> /out
FROM ` + armBase + `
COPY --from=build /out /out
`,
	}, func(o *Options) {
		o.Platform = arm64
		o.BinfmtDir = noHandlers(t)
		o.Output = &out
	})
	if err != nil {
		t.Fatal(err)
	}
	fs := flatten(t, img)
	want := "GOOS=linux GOARCH=arm64 target=linux/arm64 build=linux/amd64 linux/amd64[]\nx86_64\n"
	if got := fs["/out"].content; got != want {
		t.Errorf("/out = %q, want %q", got, want)
	}
	cf, _ := img.ConfigFile()
	if cf.Architecture != "arm64" {
		t.Errorf("image architecture %s, want arm64", cf.Architecture)
	}
}

// TestNoEmulator: without a handler for the target, the build fails
// before any RUN, naming the platform and what to install.
func TestNoEmulator(t *testing.T) {
	f := newFixture(t)
	if hostPlatform().Architecture == "arm64" {
		t.Skip("the machine is arm64")
	}
	armBase := harness.BusyboxFor(t, f.reg, "arm64")
	var out bytes.Buffer
	_, err := f.build(t, map[string]string{
		"Dockerfile": "FROM --platform=$BUILDPLATFORM $BASE AS native\nRUN echo native-ran\nFROM " + armBase + "\nCOPY --from=native /etc/passwd /p\nRUN uname -m\n",
	}, func(o *Options) {
		o.Platform = arm64
		o.BinfmtDir = noHandlers(t)
		o.Output = &out
	})
	var perr *run.PlatformError
	if !errors.As(err, &perr) {
		t.Fatalf("got %v, want a run.PlatformError", err)
	}
	for _, s := range []string{"linux/arm64", "qemu-user-static", "binfmt", "line 3"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	if strings.Contains(out.String(), "native-ran") {
		t.Error("a RUN ran before the emulation check failed")
	}
}

// TestExecFormatError: where binfmt_misc cannot be seen (a pod), RUN is
// tried, and the kernel's exec format error is explained. The base's shell
// is an ELF for no machine any handler takes.
func TestExecFormatError(t *testing.T) {
	f := newFixture(t)
	if hostPlatform().Architecture == "arm64" {
		t.Skip("the machine is arm64")
	}
	armBase := harness.BusyboxFor(t, f.reg, "arm64")
	bogus := make([]byte, 64)
	copy(bogus, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(bogus[16:], 2)
	binary.LittleEndian.PutUint16(bogus[18:], 0xbeef)
	_, err := f.build(t, map[string]string{
		"Dockerfile": "FROM " + armBase + "\nCOPY --chmod=755 sh /bin/sh.bogus\nRUN [\"/bin/sh.bogus\"]\n",
		"sh":         string(bogus),
	}, func(o *Options) {
		o.Platform = arm64
		o.BinfmtDir = filepath.Join(t.TempDir(), "not-mounted")
	})
	var perr *run.PlatformError
	if !errors.As(err, &perr) || !errors.Is(err, run.ErrExecFormat) {
		t.Fatalf("got %v, want a run.PlatformError for an exec format error", err)
	}
	if !strings.Contains(err.Error(), "qemu-user-static") {
		t.Errorf("error %q does not say what to install", err)
	}
}

// TestBasePlatformMismatch: a single-platform base for another platform is
// an error naming both; scratch takes the target platform.
func TestBasePlatformMismatch(t *testing.T) {
	f := newFixture(t)
	armBase := harness.BusyboxFor(t, f.reg, "arm64")
	_, err := f.build(t, map[string]string{"Dockerfile": "FROM " + armBase + "\nENV A=1\n"},
		func(o *Options) { o.Platform = v1.Platform{OS: "linux", Architecture: "s390x"} })
	var perr *registry.PlatformError
	if !errors.As(err, &perr) || !strings.Contains(err.Error(), "linux/s390x") || !strings.Contains(err.Error(), armBase) {
		t.Fatalf("got %v, want a PlatformError naming the image and linux/s390x", err)
	}
	img, err := f.build(t, map[string]string{"Dockerfile": "FROM scratch\nENV A=1\n"},
		func(o *Options) { o.Platform = v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"} })
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if cf.Architecture != "arm" || cf.Variant != "v7" {
		t.Errorf("scratch for linux/arm/v7: config %s/%s", cf.Architecture, cf.Variant)
	}
}
