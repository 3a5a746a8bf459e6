package job

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-build/slipway/engine/run"
)

func TestDefaultCacheDir(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CACHE_HOME", "")
	if got := defaultCacheDir(run.Chroot); got != filepath.Join(home, ".cache", "slipway") {
		t.Errorf("chroot mode, no XDG_CACHE_HOME: %q", got)
	}
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if got := defaultCacheDir(run.Chroot); got != "/xdg/slipway" {
		t.Errorf("chroot mode with XDG_CACHE_HOME: %q", got)
	}
	if got := defaultCacheDir(run.InPlace); got != "/cache" {
		t.Errorf("in-place mode keeps kaniko's /cache: %q", got)
	}
}

func TestExtractedLayerDirStepsAside(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	made := filepath.Join(t.TempDir(), "new-cache")
	if got := extractedLayerDir(made, run.Chroot, log); got != filepath.Join(made, "layers") {
		t.Errorf("a cache dir to be made: %q", got)
	}
	// In in-place mode a --cache-dir is used only when it exists: one made
	// in / would be snapshotted.
	if got := extractedLayerDir(filepath.Join(t.TempDir(), "absent"), run.InPlace, log); got != "" {
		t.Errorf("in-place mode made %q", got)
	}
	blocked := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocked, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if got := extractedLayerDir(blocked, run.Chroot, log); got != "" {
		t.Errorf("an unusable cache dir gave %q", got)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "without keeping layers") {
		t.Errorf("want one warning:\n%s", logs.String())
	}
}
