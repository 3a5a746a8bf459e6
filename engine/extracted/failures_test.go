package extracted

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// captureWarnings sends the default logger to a buffer for the test.
func captureWarnings(t *testing.T) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, nil)))
	t.Cleanup(func() { slog.SetDefault(prev) })
	return &buf
}

func diffIDOf(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// TestFullDirWarnsOnce keeps three 600 KB layers in a 1 MB tmpfs, mounted
// in a mount namespace of the test's own thread (it dies with it): the
// first fits, the next ones fail without an error reaching the writer,
// with one warning in all, and no temporary file is left.
func TestFullDirWarnsOnce(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	logs := captureWarnings(t)
	dir := t.TempDir()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with its namespace
		errc <- func() error {
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return err
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return err
			}
			if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
				return err
			}
			d := Dir(dir)
			kept := 0
			for i := 0; i < 3; i++ {
				layer := make([]byte, 600<<10)
				rand.Read(layer)
				w := d.Create()
				if w == nil {
					return errors.New("Create failed on an empty tmpfs")
				}
				if n, err := w.Write(layer); n != len(layer) || err != nil {
					return errors.New("a write to the cache failed the writer")
				}
				if d.Keep(w, diffIDOf(layer)) == nil {
					kept++
				}
			}
			if kept != 1 {
				return errors.New("want exactly the first layer kept")
			}
			entries, err := os.ReadDir(filepath.Join(dir, "sha256"))
			if err != nil || len(entries) != 1 {
				return errors.New("want the one kept layer and no temporary file")
			}
			return nil
		}()
	}()
	if err := <-errc; err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("no mount namespace here: %v", err)
		}
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 || !strings.Contains(logs.String(), "no space left") {
		t.Errorf("want one warning naming the full disk, got %d:\n%s", n, logs)
	}
}

func TestReadOnlyDirWarnsOnce(t *testing.T) {
	logs := captureWarnings(t)
	parent := t.TempDir()
	// A file where the directory should be: nothing can be created in it,
	// for root too.
	blocked := filepath.Join(parent, "layers")
	if err := os.WriteFile(blocked, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	d := Dir(blocked)
	for i := 0; i < 3; i++ {
		if w := d.Create(); w != nil {
			t.Fatal("Create succeeded in an unusable directory")
		}
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("want one warning, got %d:\n%s", n, logs)
	}
}

func TestDamagedLayerIsRemoved(t *testing.T) {
	logs := captureWarnings(t)
	d := Dir(t.TempDir())
	layer := []byte("a layer tar, whole")
	w := d.Create()
	w.Write(layer)
	id := diffIDOf(layer)
	if err := d.Keep(w, id); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(d.Path(id), layer[:5], 0o644); err != nil { // truncated on disk
		t.Fatal(err)
	}
	if f, err := d.Open(id); err == nil {
		f.Close()
		t.Fatal("a damaged layer was opened")
	}
	if _, err := os.Stat(d.Path(id)); !os.IsNotExist(err) {
		t.Errorf("the damaged layer is still there: %v", err)
	}
	if !strings.Contains(logs.String(), "damaged") {
		t.Errorf("no warning about the damaged layer:\n%s", logs)
	}
}
