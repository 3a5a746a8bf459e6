package dockerfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// Ignore is a build context's .dockerignore, matched with BuildKit's
// library and rules (github.com/moby/patternmatcher): later patterns win,
// `!` re-includes, `**` spans directories, and a path is excluded when it
// or one of its parents matches. A nil *Ignore excludes nothing.
//
// The Dockerfile and the .dockerignore themselves get no special case: as
// in BuildKit, COPY sees them unless a pattern excludes them.
type Ignore struct {
	// Patterns are the cleaned patterns, as BuildKit reads them.
	Patterns []string
	// File is the ignore file that was read, or "" when there was none.
	File string

	mu sync.Mutex // patternmatcher compiles lazily and is not concurrency-safe
	pm *patternmatcher.PatternMatcher
	// prefixOnly reports that every `!` exception is a plain path, so an
	// excluded directory can be pruned unless an exception lies under it.
	// With a wildcard exception nothing can be pruned. This is fsutil's
	// rule, which BuildKit uses to send the context.
	prefixOnly bool
}

// ReadIgnore finds the ignore file of a build the way BuildKit does:
// `<Dockerfile>.dockerignore` beside the Dockerfile first (e.g.
// build/app.Dockerfile.dockerignore), else `.dockerignore` at the root of
// the context. dockerfileName is the Dockerfile's path, absolute or
// relative to contextDir. No file means nothing is excluded.
func ReadIgnore(contextDir string, dockerfileName string) (*Ignore, error) {
	var candidates []string
	if dockerfileName != "" {
		p := dockerfileName
		if !filepath.IsAbs(p) {
			p = filepath.Join(contextDir, p)
		}
		candidates = append(candidates, p+".dockerignore")
	}
	candidates = append(candidates, filepath.Join(contextDir, ".dockerignore"))
	for _, c := range candidates {
		f, err := os.Open(c)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading ignore file: %w", err)
		}
		patterns, err := ignorefile.ReadAll(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading ignore file %s: %w", c, err)
		}
		ig, err := NewIgnore(patterns)
		if err != nil {
			return nil, fmt.Errorf("ignore file %s: %w", c, err)
		}
		ig.File = c
		return ig, nil
	}
	return NewIgnore(nil)
}

// NewIgnore builds an Ignore from patterns as read from a .dockerignore.
func NewIgnore(patterns []string) (*Ignore, error) {
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("invalid pattern: %w", err)
	}
	ig := &Ignore{Patterns: patterns, pm: pm, prefixOnly: true}
	for _, p := range pm.Patterns() {
		if p.Exclusion() && strings.ContainsAny(p.String(), `*?[\`) {
			ig.prefixOnly = false
		}
	}
	return ig, nil
}

// cleanRel turns a context-relative path into the form patterns match:
// slash-separated, no leading "/" or "./".
func cleanRel(rel string) string {
	rel = path.Clean("/" + filepath.ToSlash(rel))
	return strings.TrimPrefix(rel, "/")
}

// Excluded reports whether the context path rel (relative to the context
// root) is excluded. isDir does not change the answer, since BuildKit's
// patterns do not tell files and directories apart; use SkipDir to decide
// whether a walk may skip a directory's contents.
func (i *Ignore) Excluded(rel string, isDir bool) (bool, error) {
	if i == nil || len(i.pm.Patterns()) == 0 {
		return false, nil
	}
	rel = cleanRel(rel)
	if rel == "" {
		return false, nil
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	m, err := i.pm.MatchesOrParentMatches(rel)
	if err != nil {
		return false, fmt.Errorf("matching %s against .dockerignore: %w", rel, err)
	}
	return m, nil
}

// SkipDir reports whether a walk may skip everything under the directory
// rel: it is excluded and no `!` exception could re-include anything
// beneath it.
func (i *Ignore) SkipDir(rel string) (bool, error) {
	excluded, err := i.Excluded(rel, true)
	if err != nil || !excluded {
		return false, err
	}
	return i.canPrune(cleanRel(rel)), nil
}

func (i *Ignore) canPrune(rel string) bool {
	if !i.pm.Exclusions() {
		return true
	}
	if !i.prefixOnly {
		return false
	}
	dirSlash := rel + "/"
	for _, p := range i.pm.Patterns() {
		if p.Exclusion() && strings.HasPrefix(p.String()+"/", dirSlash) {
			return false
		}
	}
	return true
}

// IgnoredSource reports whether BuildKit would warn that a COPY or ADD
// source from the context is excluded by .dockerignore (its CopyIgnoredFile
// check), so that a build does not quietly copy less than the Dockerfile
// names. Like BuildKit it stays silent when the file has `!` exceptions,
// which make the answer depend on what lies below src.
func (i *Ignore) IgnoredSource(src string) (bool, error) {
	if i == nil || len(i.pm.Patterns()) == 0 || i.pm.Exclusions() {
		return false, nil
	}
	src = cleanRel(src)
	if src == "" {
		// The context root counts only when a pattern excludes all of it.
		for _, p := range i.pm.Patterns() {
			switch p.String() {
			case "*", "**", "**/*":
				return true, nil
			}
		}
		return false, nil
	}
	return i.Excluded(src, false)
}

// WalkFunc is called by Walk for each included path, slash-separated and
// relative to the walked root.
type WalkFunc func(rel string, d fs.DirEntry) error

// Walk walks root in lexical order, like filepath.WalkDir, calling fn for
// every path the Ignore does not exclude. It does not follow symlinks. It
// prunes excluded directories when no exception can re-include anything
// under them. An excluded directory holding a re-included path is reported
// just before that path, so a copy can create it, as BuildKit does. fn may
// return filepath.SkipDir for a directory.
func (i *Ignore) Walk(root string, fn WalkFunc) error {
	w := &walker{ig: i, root: root, fn: fn, readDir: os.ReadDir}
	return w.dir("", patternmatcher.MatchInfo{}, nil)
}

type walker struct {
	ig      *Ignore
	root    string
	fn      WalkFunc
	readDir func(string) ([]os.DirEntry, error) // replaced in tests to see pruning
}

// pendingDir is an excluded directory not yet reported because nothing
// under it has been included so far.
type pendingDir struct {
	rel      string
	d        fs.DirEntry
	reported bool
}

func (w *walker) dir(rel string, parent patternmatcher.MatchInfo, pending []*pendingDir) error {
	entries, err := w.readDir(filepath.Join(w.root, filepath.FromSlash(rel)))
	if err != nil {
		return fmt.Errorf("walking build context: %w", err)
	}
	for _, e := range entries {
		child := e.Name()
		if rel != "" {
			child = rel + "/" + child
		}
		excluded, info, err := w.match(child, parent)
		if err != nil {
			return err
		}
		if excluded {
			if !e.IsDir() || w.ig.canPrune(child) {
				continue
			}
			if err := w.dir(child, info, append(pending, &pendingDir{rel: child, d: e})); err != nil {
				return err
			}
			continue
		}
		for _, p := range pending {
			if !p.reported {
				p.reported = true
				if err := w.fn(p.rel, p.d); err != nil {
					return err
				}
			}
		}
		err = w.fn(child, e)
		if e.IsDir() {
			if errors.Is(err, filepath.SkipDir) {
				continue
			}
			if err != nil {
				return err
			}
			if err := w.dir(child, info, nil); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) match(rel string, parent patternmatcher.MatchInfo) (bool, patternmatcher.MatchInfo, error) {
	if w.ig == nil || len(w.ig.pm.Patterns()) == 0 {
		return false, patternmatcher.MatchInfo{}, nil
	}
	w.ig.mu.Lock()
	defer w.ig.mu.Unlock()
	m, info, err := w.ig.pm.MatchesUsingParentResults(rel, parent)
	if err != nil {
		return false, info, fmt.Errorf("matching %s against .dockerignore: %w", rel, err)
	}
	return m, info, nil
}
