package rootfs

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestMarkRacy(t *testing.T) {
	since := time.Unix(0, 1_000_000)
	for _, tc := range []struct {
		ctime int64
		racy  bool
	}{
		{999_999, false},
		{1_000_000, true}, // the same tick as the reading
		{1_000_001, true},
	} {
		e := Entry{Ctime: tc.ctime}
		e.MarkRacy(since)
		if e.Racy != tc.racy {
			t.Errorf("ctime %d, since %d: racy %v, want %v", tc.ctime, since.UnixNano(), e.Racy, tc.racy)
		}
	}
}

// TestSettledBeforePrecedesLaterChanges checks what MarkRacy relies on
// against this kernel: a change made after SettledBefore returns gets a
// ctime no earlier than it, so an entry whose ctime is earlier cannot be
// changed without its ctime changing. Content writes and chmods, in a
// directory of the test file system and, where there is one, on tmpfs.
func TestSettledBeforePrecedesLaterChanges(t *testing.T) {
	dirs := []string{t.TempDir()}
	if shm, err := os.MkdirTemp("/dev/shm", "slipway-settle-"); err == nil {
		t.Cleanup(func() { os.RemoveAll(shm) })
		dirs = append(dirs, shm)
	}
	for _, dir := range dirs {
		p := filepath.Join(dir, "f")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2000 {
			since := SettledBefore(dir)
			if i%2 == 0 {
				_, err = f.Write([]byte{'x'})
			} else {
				err = f.Chmod(os.FileMode(0o600 | i/2%2*0o40))
			}
			if err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			if err := unix.Fstat(int(f.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			if c := st.Ctim.Nano(); c < since.UnixNano() {
				t.Fatalf("%s: change %d got ctime %d, before SettledBefore %d", dir, i, c, since.UnixNano())
			}
		}
		f.Close()
	}
}

// TestSettle re-reads what was just written, so that no entry stays racy,
// and leaves racy an entry whose ctime lies beyond any wait (a clock set
// back): its content decides in the next snapshot.
func TestSettle(t *testing.T) {
	root := t.TempDir()
	idx := NewIndex()
	for _, name := range []string{"fresh", "future"} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, name), &st); err != nil {
			t.Fatal(err)
		}
		e := EntryFromStat(&st)
		e.Racy = true
		idx.Set("/"+name, e)
	}
	if err := idx.Settle(root, []string{"/fresh"}); err != nil {
		t.Fatal(err)
	}
	if e, _ := idx.Get("/fresh"); e.Racy {
		t.Errorf("/fresh is still racy after Settle: %+v", e)
	}

	future, _ := idx.Get("/future")
	future.Ctime = time.Now().Add(time.Hour).UnixNano()
	idx.Set("/future", future)
	if err := idx.Settle(root, []string{"/future"}); err != nil {
		t.Fatal(err)
	}
	if e, _ := idx.Get("/future"); !e.Racy || e.Ctime != future.Ctime {
		t.Errorf("/future was settled: %+v, want it racy as it was", e)
	}
}
