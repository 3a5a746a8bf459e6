package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-build/slipway/e2e/harness"
)

// TestMakeDemo runs the demo as `make demo` does: its own binary, outside
// any test binary, over examples/hello, so that the README's main command
// stays true.
func TestMakeDemo(t *testing.T) {
	harness.SkipIfShort(t, "the distribution registry and busybox-static")
	bin := t.TempDir()
	for pkg, out := range map[string]string{".": "demo", "../../steps/build": "slipway-build"} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(bin, out), pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
	}
	cmd := exec.Command(filepath.Join(bin, "demo"), "-bin", filepath.Join(bin, "slipway-build"), "-context", "examples/hello")
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	for _, want := range []string{"Registry running on 127.0.0.1:", `"org.opencontainers.image.title": "hello"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, out)
		}
	}
}
