package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/slipway-build/slipway/engine/dockerfile"
)

// SourceOption configures SourceDigest.
type SourceOption func(*sourceConfig)

type sourceConfig struct {
	skipDir func(rel string) (bool, error)
	workers int
}

// WithSkipDir lets SourceDigest skip everything under an excluded
// directory when skip says nothing beneath it can be re-included (see
// dockerfile.Ignore.SkipDir). Without it, excluded directories are still
// walked so that a `!` exception inside them is honoured.
func WithSkipDir(skip func(rel string) (bool, error)) SourceOption {
	return func(c *sourceConfig) { c.skipDir = skip }
}

// WithWorkers sets how many files are hashed at once; the default is the
// number of CPUs.
func WithWorkers(n int) SourceOption {
	return func(c *sourceConfig) {
		if n > 0 {
			c.workers = n
		}
	}
}

// sourceEntry is one file system object of a COPY source, as it enters the
// digest. COPY from the context does not keep owners (they become root or
// --chown), so uid and gid are left out: a checkout by another user must
// still hit.
type sourceEntry struct {
	rel     string
	kind    byte // 'f' regular, 'd' directory, 'l' symlink, 'o' other
	mode    fs.FileMode
	target  string // symlink target
	path    string // absolute path, for hashing the content
	content string // hex sha256 of a regular file's content
}

// SourceDigest returns a digest of the context paths (relative to root)
// that a COPY or ADD reads: each object's relative name, type, permission
// and special mode bits, symlink target and file content, directories
// walked in lexical order. Paths excluded by .dockerignore (excluded may
// be nil) are left out, so that changing them cannot change a key. File
// contents are streamed, several files at once.
func SourceDigest(root string, paths []string, excluded func(rel string, isDir bool) (bool, error), opts ...SourceOption) (string, error) {
	cfg := sourceConfig{workers: runtime.NumCPU()}
	for _, o := range opts {
		o(&cfg)
	}
	if excluded == nil {
		excluded = func(string, bool) (bool, error) { return false, nil }
	}
	var entries []*sourceEntry
	for _, p := range paths {
		rel, err := cleanSource(p)
		if err != nil {
			return "", err
		}
		matches := []string{rel}
		if dockerfile.HasWildcard(rel) {
			if matches, err = dockerfile.Glob(root, rel, excluded); err != nil {
				return "", err
			}
		}
		// A marker between sources keeps "COPY a b" apart from a single
		// source holding both.
		entries = append(entries, &sourceEntry{rel: rel, kind: 's'})
		for _, m := range matches {
			found, err := collect(root, m, excluded, cfg.skipDir)
			if err != nil {
				return "", err
			}
			entries = append(entries, found...)
		}
	}
	if err := hashContents(entries, cfg.workers); err != nil {
		return "", err
	}
	h := sha256.New()
	field(h, keyVersion)
	field(h, "sources")
	for _, e := range entries {
		field(h, string(e.kind))
		field(h, e.rel)
		field(h, fmt.Sprintf("%o", uint32(e.mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))))
		field(h, e.target)
		field(h, e.content)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// cleanSource makes p a slash-separated path relative to the context root
// and refuses one that leaves it.
func cleanSource(p string) (string, error) {
	// Docker reads an absolute source as relative to the context root.
	c := filepath.Clean(strings.TrimLeft(p, "/"))
	if c != "." && !filepath.IsLocal(c) {
		return "", fmt.Errorf("COPY source %q is outside the build context", p)
	}
	return filepath.ToSlash(c), nil
}

func collect(root, rel string, excluded func(string, bool) (bool, error), skipDir func(string) (bool, error)) ([]*sourceEntry, error) {
	var out []*sourceEntry
	// Symlinks in a source path are followed as if the context were /, as
	// the builder's COPY does, so a link can never lead outside it.
	start, err := securejoin.SecureJoin(root, rel)
	if err != nil {
		return nil, fmt.Errorf("COPY source %s: %w", rel, err)
	}
	if rel != "." {
		parent, err := securejoin.SecureJoin(root, path.Dir(rel))
		if err != nil {
			return nil, fmt.Errorf("COPY source %s: %w", rel, err)
		}
		// A symlink named as a source counts as the link and as what it
		// points to, whose content is what lands in the image.
		if target, err := os.Readlink(filepath.Join(parent, path.Base(rel))); err == nil {
			out = append(out, &sourceEntry{rel: rel, kind: 'l', target: target})
		}
	}
	if _, err := os.Stat(start); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("COPY source %s: not found in the build context %s", rel, root)
		}
		return nil, fmt.Errorf("COPY source %s: %w", rel, err)
	}
	err = filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("reading COPY source %s: %w", p, err)
		}
		sub, err := filepath.Rel(start, p)
		if err != nil {
			return err
		}
		name := rel
		if sub != "." {
			name = filepath.ToSlash(filepath.Join(rel, sub))
		}
		ex, err := excluded(name, d.IsDir())
		if err != nil {
			return err
		}
		if ex {
			if d.IsDir() && skipDir != nil {
				if skip, err := skipDir(name); err != nil {
					return err
				} else if skip {
					return filepath.SkipDir
				}
			}
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return fmt.Errorf("reading COPY source %s: %w", p, err)
		}
		e := &sourceEntry{rel: name, mode: info.Mode()}
		if sub == "." && info.IsDir() {
			// COPY copies a source directory's contents, not the
			// directory: its own mode never reaches the image, and
			// checkouts differ in it (a 0700 temp dir, a 0755 clone).
			e.mode = 0
		}
		switch {
		case info.Mode().IsRegular():
			e.kind, e.path = 'f', p
		case info.IsDir():
			e.kind = 'd'
		case info.Mode()&fs.ModeSymlink != 0:
			e.kind = 'l'
			if e.target, err = os.Readlink(p); err != nil {
				return fmt.Errorf("reading COPY source %s: %w", p, err)
			}
		default:
			e.kind = 'o'
			e.target = info.Mode().Type().String()
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// hashContents fills in the content digest of every regular file with a
// pool of workers; each file is streamed through SHA-256.
func hashContents(entries []*sourceEntry, workers int) error {
	jobs := make(chan *sourceEntry)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := sha256.New()
			buf := make([]byte, 64<<10)
			for e := range jobs {
				sum, err := hashFile(h, buf, e.path)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				e.content = sum
			}
		}()
	}
	for _, e := range entries {
		if e.kind == 'f' {
			jobs <- e
		}
	}
	close(jobs)
	wg.Wait()
	return firstErr
}

func hashFile(h hash.Hash, buf []byte, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("reading COPY source %s: %w", path, err)
	}
	defer f.Close()
	h.Reset()
	if _, err := io.CopyBuffer(h, f, buf); err != nil {
		return "", fmt.Errorf("reading COPY source %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
