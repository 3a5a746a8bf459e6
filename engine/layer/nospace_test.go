package layer

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// inTinyTmpfs runs fn with a 1 MB tmpfs mounted on a new directory, in a
// mount namespace of fn's own thread: the mount dies with the thread and
// the machine's mount table never sees it.
func inTinyTmpfs(t *testing.T, fn func(dir string) error) error {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with its namespace
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			errc <- err
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			errc <- err
			return
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
			errc <- err
			return
		}
		errc <- fn(dir)
	}()
	err := <-errc
	if errors.Is(err, unix.EPERM) {
		t.Skipf("no mount namespace here: %v", err)
	}
	return err
}

// TestWriteOutOfSpaceNamesTheDirectory: a layer bigger than the disk left
// under the work directory fails saying so, not blaming the file copied.
func TestWriteOutOfSpaceNamesTheDirectory(t *testing.T) {
	root := t.TempDir()
	big := make([]byte, 3<<20) // random, so compression cannot shrink it
	if _, err := rand.Read(big); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "r"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	var werr error
	err := inTinyTmpfs(t, func(dir string) error {
		_, werr = Write(root, []Change{{Path: "/r"}}, Options{TempDir: dir})
		if werr == nil {
			return errors.New("a 3 MB layer was written into a 1 MB tmpfs")
		}
		if !strings.Contains(werr.Error(), dir) {
			return errors.New("the error does not name the directory " + dir + ": " + werr.Error())
		}
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			return errors.New("the failed layer file was left behind")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"no space left", "--work-dir"} {
		if !strings.Contains(werr.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, werr)
		}
	}
	if strings.Contains(werr.Error(), "did it change") || strings.Contains(werr.Error(), "shrank") {
		t.Errorf("the error blames the file copied: %v", werr)
	}
}
