package run

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// stubs creates mount points inside a root and removes them again after the
// run, so that a mount never leaves an empty file or directory behind in the
// snapshot. BuildKit does the same (executor.MountStubsCleaner): a stub is
// removed only if it is still empty, so anything the command put there is
// kept, and its parent's mtime is put back when the command did not change
// that directory otherwise.
//
// What remains visible is the parent's ctime, which cannot be restored: a
// ctime-comparing snapshotter records that directory's header again, with
// unchanged content, mode and mtime.
type stubs struct {
	root    string
	created []stub
}

type stub struct {
	path string
	// parent mtime before and right after the stub was created
	before, after time.Time
}

// ensure resolves target inside the root, never escaping it through
// symlinks or "..", and creates whatever is missing: parent directories
// (0755) and the final component (a 0755 directory, or an empty 0644 file
// when dir is false). It returns the resolved host path.
func (s *stubs) ensure(target string, dir bool) (string, error) {
	p, err := securejoin.SecureJoin(s.root, target)
	if err != nil {
		return "", fmt.Errorf("resolve %s in %s: %w", target, s.root, err)
	}
	rel, err := filepath.Rel(s.root, p)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return "", fmt.Errorf("mount target %s resolves to the root itself or outside it", target)
	}
	cur := s.root
	parts := strings.Split(rel, string(filepath.Separator))
	for i, part := range parts {
		cur = filepath.Join(cur, part)
		last := i == len(parts)-1
		fi, err := os.Lstat(cur)
		if err == nil {
			switch {
			case !last && !fi.IsDir():
				return "", fmt.Errorf("mount target %s: %s exists and is not a directory", target, cur)
			case last && dir && !fi.IsDir():
				return "", fmt.Errorf("mount target %s exists and is not a directory; the mount source is one", target)
			case last && !dir && fi.IsDir():
				return "", fmt.Errorf("mount target %s exists and is a directory; the mount source is a file", target)
			}
			continue
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("mount target %s: %w", target, err)
		}
		st := stub{path: cur, before: mtime(filepath.Dir(cur))}
		if last && !dir {
			f, err := os.OpenFile(cur, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return "", fmt.Errorf("create mount point %s: %w", target, err)
			}
			f.Close()
		} else if err := os.Mkdir(cur, 0o755); err != nil {
			return "", fmt.Errorf("create mount point %s: %w", target, err)
		}
		st.after = mtime(filepath.Dir(cur))
		s.created = append(s.created, st)
	}
	return p, nil
}

// cleanup removes the stubs that are still empty, newest first so that
// created parents go after their children.
func (s *stubs) cleanup() error {
	var errs []error
	for i := len(s.created) - 1; i >= 0; i-- {
		st := s.created[i]
		fi, err := os.Lstat(st.path)
		if err != nil {
			continue
		}
		if fi.IsDir() {
			entries, err := os.ReadDir(st.path)
			if err != nil || len(entries) != 0 {
				continue
			}
		} else if !fi.Mode().IsRegular() || fi.Size() != 0 {
			continue
		}
		parent := filepath.Dir(st.path)
		// Only undo our own change: if the command touched the parent
		// directory as well, its new mtime is part of the result.
		untouched := !st.before.IsZero() && mtime(parent).Equal(st.after)
		if err := os.Remove(st.path); err != nil {
			errs = append(errs, fmt.Errorf("remove mount point %s: %w", st.path, err))
			continue
		}
		if untouched {
			if err := os.Chtimes(parent, time.Time{}, st.before); err != nil {
				errs = append(errs, fmt.Errorf("restore mtime of %s: %w", parent, err))
			}
		}
	}
	s.created = nil
	return errors.Join(errs...)
}

func mtime(p string) time.Time {
	fi, err := os.Lstat(p)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}
