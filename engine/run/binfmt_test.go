package run

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var (
	linuxAMD64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	linuxARM64 = ocispec.Platform{OS: "linux", Architecture: "arm64"}
)

// Handlers as Debian's qemu-user-static registers them.
const (
	qemuAarch64 = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: PF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n"
	qemuArm     = "enabled\ninterpreter /usr/libexec/qemu-binfmt/arm-binfmt-P\nflags: PF\noffset 0\nmagic 7f454c4601010100000000000000000002002800\nmask ffffffffffffff00fffffffffffffffffeffffff\n"
	qemuS390x   = "enabled\ninterpreter /usr/libexec/qemu-binfmt/s390x-binfmt-P\nflags: PF\noffset 0\nmagic 7f454c4602020100000000000000000000020016\nmask fffffffffffffffcfffffffffffffffffffeffff\n"
	qemuPPC64le = "enabled\ninterpreter /usr/libexec/qemu-binfmt/ppc64le-binfmt-P\nflags: PF\noffset 0\nmagic 7f454c4602010100000000000000000002001500\nmask fffffffffffffffcfffffffffffffffffeffff00\n"
	jar         = "enabled\ninterpreter /usr/bin/jexec\nflags: \nextension .jar\n"
)

func binfmtDir(t *testing.T, status string, entries map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"status": status, "register": ""}
	for k, v := range entries {
		files[k] = v
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheckPlatform(t *testing.T) {
	all := map[string]string{"qemu-aarch64": qemuAarch64, "qemu-arm": qemuArm, "qemu-s390x": qemuS390x, "qemu-ppc64le": qemuPPC64le, "jar": jar}
	for _, tc := range []struct {
		name          string
		dir           string
		target        ocispec.Platform
		native        bool
		handler       string
		unknown       bool
		wantErrSubstr string
	}{
		{name: "native", dir: binfmtDir(t, "enabled", nil), target: linuxAMD64, native: true},
		{name: "386 on amd64", dir: binfmtDir(t, "enabled", nil), target: ocispec.Platform{OS: "linux", Architecture: "386"}, native: true},
		{name: "arm64", dir: binfmtDir(t, "enabled", all), target: linuxARM64, handler: "qemu-aarch64"},
		{name: "arm64/v8", dir: binfmtDir(t, "enabled", all), target: ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, handler: "qemu-aarch64"},
		{name: "arm/v7", dir: binfmtDir(t, "enabled", all), target: ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, handler: "qemu-arm"},
		{name: "s390x", dir: binfmtDir(t, "enabled", all), target: ocispec.Platform{OS: "linux", Architecture: "s390x"}, handler: "qemu-s390x"},
		{name: "ppc64le", dir: binfmtDir(t, "enabled", all), target: ocispec.Platform{OS: "linux", Architecture: "ppc64le"}, handler: "qemu-ppc64le"},
		{name: "no handler", dir: binfmtDir(t, "enabled", map[string]string{"qemu-arm": qemuArm, "jar": jar}), target: linuxARM64, wantErrSubstr: "no binfmt_misc handler"},
		{name: "disabled handler", dir: binfmtDir(t, "enabled", map[string]string{"qemu-aarch64": strings.Replace(qemuAarch64, "enabled", "disabled", 1)}), target: linuxARM64, wantErrSubstr: "no binfmt_misc handler"},
		{name: "binfmt_misc disabled", dir: binfmtDir(t, "disabled", all), target: linuxARM64, wantErrSubstr: "binfmt_misc is disabled"},
		{name: "no F flag", dir: binfmtDir(t, "enabled", map[string]string{"qemu-aarch64": strings.Replace(qemuAarch64, "flags: PF", "flags: P", 1)}), target: linuxARM64, wantErrSubstr: "lacks the F (fix-binary) flag"},
		{name: "not mounted", dir: filepath.Join(t.TempDir(), "none"), target: linuxARM64, unknown: true},
		{name: "windows", dir: binfmtDir(t, "enabled", all), target: ocispec.Platform{OS: "windows", Architecture: "amd64"}, wantErrSubstr: "only linux binaries"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			em, err := CheckPlatform(tc.dir, tc.target, linuxAMD64)
			if tc.wantErrSubstr != "" {
				var perr *PlatformError
				if !errors.As(err, &perr) || !strings.Contains(err.Error(), tc.wantErrSubstr) || !strings.Contains(err.Error(), "qemu-user-static") {
					t.Fatalf("got %+v, %v; want a PlatformError with %q", em, err, tc.wantErrSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if em.Native != tc.native || em.Handler != tc.handler || em.Unknown != tc.unknown {
				t.Errorf("got %+v, want native=%v handler=%q unknown=%v", em, tc.native, tc.handler, tc.unknown)
			}
		})
	}
}

// TestCheckPlatformOnThisMachine reads the kernel's own binfmt_misc, which
// .ci/deps fills with qemu-user-static's handlers.
func TestCheckPlatformOnThisMachine(t *testing.T) {
	if linuxAMD64.Architecture != hostArch(t) {
		t.Skip("the handlers below are checked from an amd64 machine")
	}
	for _, arch := range []string{"arm64", "ppc64le", "s390x"} {
		em, err := CheckPlatform(BinfmtDir, ocispec.Platform{OS: "linux", Architecture: arch}, linuxAMD64)
		if err != nil || em.Unknown || em.Handler == "" {
			t.Errorf("linux/%s: %+v, %v; run .ci/deps (qemu-user-static, update-binfmts --enable)", arch, em, err)
		}
	}
}

func hostArch(t *testing.T) string {
	data, err := os.ReadFile("/proc/sys/kernel/arch")
	if err != nil {
		t.Skip("no /proc/sys/kernel/arch")
	}
	switch a := strings.TrimSpace(string(data)); a {
	case "x86_64":
		return "amd64"
	default:
		return a
	}
}
