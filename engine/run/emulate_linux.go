package run

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/slipway-build/slipway/engine/rootfs"
)

// emulateMounts stands in for RUN --mount in a pod that may not mount
// (kaniko's situation): each source is put in place before the command
// runs, and the returned undo takes it away again and puts back what the
// image had at the target. What emulation cannot give:
//   - read-only is not enforced for a root command (a secret is 0400);
//   - a tmpfs is an ordinary directory on the root's disk;
//   - writes to a type=bind mount are discarded with the copy, as BuildKit
//     discards them, while a type=cache mount keeps them.
//
// undo is never nil and is safe to call after a failure part-way.
func (e *executor) emulateMounts(mounts []Mount) (undo func() error, err error) {
	var undos []func() error
	undo = func() error {
		var errs []error
		for i := len(undos) - 1; i >= 0; i-- {
			errs = append(errs, undos[i]())
		}
		undos = nil
		return errors.Join(errs...)
	}
	sorted := append([]Mount(nil), mounts...)
	sort.SliceStable(sorted, func(i, j int) bool {
		return strings.Count(sorted[i].Target, "/") < strings.Count(sorted[j].Target, "/")
	})
	for _, m := range sorted {
		u, err := emulateMount(m)
		if u != nil {
			undos = append(undos, u)
		}
		if err != nil {
			return undo, fmt.Errorf("run --mount type=%s,target=%s (emulated by copying, since this container may not mount): %w", m.Type, m.Target, err)
		}
	}
	return undo, nil
}

func emulateMount(m Mount) (func() error, error) {
	target, err := securejoin.SecureJoin("/", m.Target)
	if err != nil {
		return nil, err
	}
	var undos []func() error
	parent := filepath.Dir(target)
	parentBefore := mtime(parent)
	var parentAfter time.Time
	undo := func() error {
		// As for stubs: the parent's mtime goes back unless the command
		// changed that directory itself.
		untouched := !parentAfter.IsZero() && mtime(parent).Equal(parentAfter)
		var errs []error
		for i := len(undos) - 1; i >= 0; i-- {
			errs = append(errs, undos[i]())
		}
		if untouched && !parentBefore.IsZero() {
			if err := os.Chtimes(parent, time.Time{}, parentBefore); err != nil {
				errs = append(errs, fmt.Errorf("restore mtime of %s: %w", parent, err))
			}
		}
		return errors.Join(errs...)
	}
	// Whatever the image has at the target is moved aside, as a mount
	// would hide it, and moved back afterwards.
	if _, err := os.Lstat(target); err == nil {
		hidden := filepath.Join(filepath.Dir(target), ".slipway-hidden-"+randomSuffix()+"-"+filepath.Base(target))
		if err := os.Rename(target, hidden); err != nil {
			return nil, fmt.Errorf("move %s aside: %w", target, err)
		}
		undos = append(undos, func() error {
			if err := os.Rename(hidden, target); err != nil {
				return fmt.Errorf("restore %s: %w", target, err)
			}
			return nil
		})
	}
	// Parents the image lacks are created and removed again like stubs.
	st := &stubs{root: "/"}
	if parent != "/" {
		if _, err := st.ensure(parent, true); err != nil {
			return undo, err
		}
	}
	undos = append(undos, st.cleanup)
	removeTarget := func() error {
		if err := os.RemoveAll(target); err != nil {
			return fmt.Errorf("remove emulated mount %s: %w", target, err)
		}
		return nil
	}

	switch m.Type {
	case MountTmpfs:
		mode := rootfs.UnixMode(m.Mode)
		if m.Mode == 0 {
			mode = 0o1777
		}
		if err := os.Mkdir(target, 0o700); err != nil {
			return undo, err
		}
		undos = append(undos, removeTarget)
		if err := os.Chown(target, m.UID, m.GID); err != nil {
			return undo, err
		}
		if err := chmod(target, mode); err != nil {
			return undo, err
		}
	case MountSecret:
		undos = append(undos, removeTarget)
		if err := stageSecret(m, target); err != nil {
			return undo, err
		}
	case MountBind:
		undos = append(undos, removeTarget)
		if err := copyTree(m.Source, target); err != nil {
			return undo, err
		}
	case MountCache:
		// Moving the cache in is free when it is on the same file system,
		// and keeps what the command writes without a copy back.
		if err := os.Rename(m.Source, target); err == nil {
			undos = append(undos, func() error {
				if err := os.Rename(target, m.Source); err != nil {
					return fmt.Errorf("move cache %s back to %s: %w", target, m.Source, err)
				}
				return nil
			})
			break
		}
		undos = append(undos, removeTarget)
		if err := copyTree(m.Source, target); err != nil {
			return undo, err
		}
		if !m.ReadOnly {
			// Runs before removeTarget: undos run last first.
			undos = append(undos, func() error { return replaceTree(target, m.Source) })
		}
	}
	parentAfter = mtime(parent)
	return undo, nil
}

// replaceTree makes dst a copy of src, swapping only once the copy is
// complete so that a failure leaves the old dst whole.
func replaceTree(src, dst string) error {
	fi, err := os.Lstat(dst)
	if err != nil {
		return err
	}
	tmp := dst + ".slipway-new-" + randomSuffix()
	if !fi.IsDir() {
		if err := copyFile(src, tmp); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("save cache back to %s: %w", dst, err)
		}
		return os.Rename(tmp, dst)
	}
	if err := copyTree(src, tmp); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("save cache back to %s: %w", dst, err)
	}
	old := dst + ".slipway-old-" + randomSuffix()
	if err := os.Rename(dst, old); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("save cache back to %s: %w", dst, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("save cache back to %s (previous content kept in %s): %w", dst, old, err)
	}
	return os.RemoveAll(old)
}

// copyTree copies regular files, directories and symlinks with their
// modes and owners. Other file types have no place in a mount source.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			if err := os.Mkdir(out, 0o700); err != nil && !(rel == "." && errors.Is(err, fs.ErrExist)) {
				return err
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, out); err != nil {
				return err
			}
		case fi.Mode().IsRegular():
			if err := copyFile(p, out); err != nil {
				return err
			}
		default:
			return fmt.Errorf("copy %s: unsupported file type %s", p, fi.Mode().Type())
		}
		return chownLike(out, fi)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return nil
}

func chmod(p string, mode uint32) error {
	if err := unix.Chmod(p, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", p, err)
	}
	return nil
}

// chownLike gives p the owner and mode bits of fi; chmod comes after chown
// because chown clears setuid and setgid.
func chownLike(p string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if err := os.Lchown(p, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil
	}
	return chmod(p, st.Mode&0o7777)
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
