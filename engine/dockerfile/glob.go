package dockerfile

import (
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// HasWildcard reports whether a COPY or ADD source is a pattern.
func HasWildcard(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// Glob expands a COPY or ADD source pattern under root one path component
// at a time, with path.Match as docker does, leaving out the paths excluded
// reports (.dockerignore). Directories are resolved as if root were /, so a
// symlink cannot lead the match outside. The matches are sorted; none is no
// error here, since the caller knows how to word that.
func Glob(root, pattern string, excluded func(rel string, isDir bool) (bool, error)) ([]string, error) {
	parts := strings.Split(pattern, "/")
	current := []string{""}
	for i, part := range parts {
		var next []string
		for _, dir := range current {
			if !HasWildcard(part) {
				next = append(next, path.Join(dir, part))
				continue
			}
			hostDir, err := securejoin.SecureJoin(root, dir)
			if err != nil {
				return nil, err
			}
			entries, err := os.ReadDir(hostDir)
			if err != nil {
				continue
			}
			for _, e := range entries {
				ok, err := path.Match(part, e.Name())
				if err != nil {
					return nil, fmt.Errorf("source %s: bad pattern: %w", pattern, err)
				}
				if !ok || (i < len(parts)-1 && !e.IsDir()) {
					continue
				}
				p := path.Join(dir, e.Name())
				if excluded != nil {
					if ex, err := excluded(p, e.IsDir()); err != nil {
						return nil, err
					} else if ex {
						continue
					}
				}
				next = append(next, p)
			}
		}
		current = next
	}
	sort.Strings(current)
	return current, nil
}
