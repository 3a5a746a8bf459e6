// Package atomicfile writes a file under a temporary name in the directory
// of its final path and renames it into place, so that a reader, or a
// concurrent writer of the same content, sees the whole file or none. It is
// the one temp-then-rename of the engine.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// File is a temporary file waiting to be committed or discarded.
type File struct {
	*os.File
	done bool
}

// Create makes a temporary file in dir, creating dir when missing; pattern
// is as for os.CreateTemp. A name starting with "." keeps it out of sight
// of directory listings.
func Create(dir, pattern string) (*File, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return &File{File: f}, nil
}

// Commit closes the file and renames it to path, which must be on the same
// filesystem (Create it in path's directory). On failure the temporary file
// is removed.
func (f *File) Commit(path string) error {
	if f.done {
		return fmt.Errorf("committing %s: the file was already committed or discarded", path)
	}
	f.done = true
	err := f.Close()
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// Discard closes and removes the file unless it was committed; it may be
// deferred right after Create.
func (f *File) Discard() {
	if f.done {
		return
	}
	f.done = true
	_ = f.Close()
	_ = os.Remove(f.Name())
}

// WriteFile writes data to path atomically, synced to disk, with mode perm.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	f, err := Create(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	defer f.Discard()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	return f.Commit(path)
}
