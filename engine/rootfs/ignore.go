package rootfs

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// IgnoreList holds image paths that extraction, snapshots and wipes must
// never touch. A path is ignored when it or one of its parents is listed.
// In in-place mode the image path is the host path, so this is where the
// pod's mounts (workspace, secrets, /etc/resolv.conf) are protected. A nil
// *IgnoreList ignores nothing.
type IgnoreList struct {
	mu    sync.RWMutex
	paths map[string]struct{}
}

// NewIgnoreList returns a list holding paths.
func NewIgnoreList(paths ...string) *IgnoreList {
	l := &IgnoreList{paths: make(map[string]struct{})}
	l.Add(paths...)
	return l
}

// DefaultIgnoreList is the list in-place mode uses, as kaniko's: every mount
// point, /proc, /sys and /dev, the executor's own directory and the user's
// --ignore-path entries.
func DefaultIgnoreList(executorDir string, extra ...string) (*IgnoreList, error) {
	mounts, err := MountPoints()
	if err != nil {
		return nil, err
	}
	l := NewIgnoreList("/proc", "/sys", "/dev")
	l.Add(mounts...)
	if executorDir != "" {
		l.Add(executorDir)
	}
	l.Add(extra...)
	return l, nil
}

// Add lists more paths. "/" is refused silently: ignoring the root would
// ignore the whole image.
func (l *IgnoreList) Add(paths ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range paths {
		if p == "" {
			continue
		}
		c := Clean(p)
		if c == "/" {
			continue
		}
		l.paths[c] = struct{}{}
	}
}

// Ignored reports whether path or one of its parents is listed.
func (l *IgnoreList) Ignored(p string) bool {
	if l == nil {
		return false
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.paths) == 0 {
		return false
	}
	p = Clean(p)
	for p != "/" {
		if _, ok := l.paths[p]; ok {
			return true
		}
		i := strings.LastIndexByte(p, '/')
		if i == 0 {
			break
		}
		p = p[:i]
	}
	return false
}

// Paths returns the listed paths, sorted.
func (l *IgnoreList) Paths() []string {
	if l == nil {
		return nil
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]string, 0, len(l.paths))
	for p := range l.paths {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// MountPoints lists the mount points in /proc/self/mountinfo, except "/".
func MountPoints() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("listing mount points to protect: %w", err)
	}
	defer f.Close()
	return parseMountInfo(f)
}

func parseMountInfo(f io.Reader) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountInfo(fields[4])
		if mp == "/" {
			continue
		}
		out = append(out, mp)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading /proc/self/mountinfo: %w", err)
	}
	return out, nil
}

// unescapeMountInfo decodes the octal escapes (\040 for a space) the kernel
// writes for whitespace and backslashes in mount points.
func unescapeMountInfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
