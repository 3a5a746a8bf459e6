package build

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/slipway-build/slipway/engine/rootfs"
)

func TestWipeKeepsIgnoredPaths(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"etc/passwd", "etc/resolv.conf", "usr/bin/tool", "workspace/src/main.go", "slipway/bin/slipway-build", "lib64/ld.so"} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ignore := rootfs.NewIgnoreList("/etc/resolv.conf", "/workspace", "/slipway")
	if err := wipe(root, ignore); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"etc/resolv.conf": true, "workspace/src/main.go": true, "slipway/bin/slipway-build": true,
		"etc/passwd": false, "usr": false, "lib64": false,
	} {
		_, err := os.Lstat(filepath.Join(root, p))
		if got := err == nil; got != want {
			t.Errorf("%s present = %v, want %v", p, got, want)
		}
	}
}
