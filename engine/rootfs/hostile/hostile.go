// Package hostile holds crafted image layers that try to reach outside the
// root they are applied to: names that climb with "..", writes through
// symlinks (also across layers), hardlinks to outside files, whiteouts and
// opaque markers that climb or pass through symlinks, devices, very long
// names, symlink loops and entries that change type between layers.
//
// One table serves every way Slipway applies layers: extraction into an
// unpacked root and the sparse root read from the layers' headers (the
// rootfs tests), and in-place mode, where the root is a container's own /
// (the pod-model tests). Each case is a Script, a few lines of text, so the
// same cases also seed the rootfs fuzz targets, whose inputs are Scripts.
package hostile

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A Script lists a layer's entries, one per line; a line "--" starts the
// next layer. Each line is a kind letter and space-separated fields:
//
//	f NAME [CONTENT]   regular file (content "pwned" when left out)
//	d NAME             directory
//	s NAME TARGET      symlink
//	h NAME TARGET      hardlink
//	c NAME MAJOR MINOR character device
//	b NAME MAJOR MINOR block device
//	p NAME             fifo
//
// In names and targets, $OUT is replaced with the absolute path of the
// outside directory, as the code under test sees it, and $UP with a
// relative path that climbs from anywhere up to the file system's root and
// down into that directory. Lines that do not parse are skipped, so that
// any text is a Script (the fuzz targets rely on it).
type Script string

// Entry is one crafted tar entry.
type Entry struct {
	Header tar.Header
	Body   string
}

// Case is one hostile input.
type Case struct {
	Name   string
	Script Script
	// Blame is the entry that an error must name: by default the last
	// entry of the last layer, as written in the tar.
	Blame string
	// MustFail is set where confinement alone is not enough: the input
	// is unsafe and must be refused, by naming Blame.
	MustFail bool
}

// Outside's contents: what the tests put there and check afterwards.
const (
	SecretName    = "secret"
	SecretContent = "keep"
)

// ModTime is the time of every crafted entry.
var ModTime = time.Date(2021, 2, 3, 4, 5, 6, 0, time.UTC)

// Layers reads a script, with outside substituted, into its layers'
// entries.
func (s Script) Layers(outside string) [][]Entry {
	up := strings.Repeat("../", 24) + strings.TrimPrefix(outside, "/")
	expand := func(f string) string {
		return strings.NewReplacer("$OUT", outside, "$UP", up).Replace(f)
	}
	layers := [][]Entry{nil}
	for _, line := range strings.Split(string(s), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if fields[0] == "--" {
			layers = append(layers, nil)
			continue
		}
		if len(fields) < 2 {
			continue
		}
		h := tar.Header{Name: expand(fields[1]), ModTime: ModTime, Mode: 0o644, Format: tar.FormatPAX}
		arg := func(i int) string {
			if i < len(fields) {
				return expand(fields[i])
			}
			return ""
		}
		num := func(i int) int64 {
			n, _ := strconv.ParseInt(arg(i), 10, 32)
			return n
		}
		e := Entry{}
		switch fields[0] {
		case "f":
			h.Typeflag = tar.TypeReg
			e.Body = "pwned"
			if len(fields) > 2 {
				e.Body = arg(2)
			}
			h.Size = int64(len(e.Body))
		case "d":
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case "s":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, arg(2), 0o777
		case "h":
			h.Typeflag, h.Linkname = tar.TypeLink, arg(2)
		case "c", "b":
			h.Typeflag = tar.TypeChar
			if fields[0] == "b" {
				h.Typeflag = tar.TypeBlock
			}
			h.Devmajor, h.Devminor = num(2), num(3)
		case "p":
			h.Typeflag = tar.TypeFifo
		default:
			continue
		}
		e.Header = h
		layers[len(layers)-1] = append(layers[len(layers)-1], e)
	}
	return layers
}

// Tar writes entries as an uncompressed layer. Entries the tar format
// cannot hold are left out.
func Tar(entries []Entry) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.Header
		// archive/tar refuses some headers before writing anything (and
		// then stays usable); a refused entry is simply not in the layer.
		if err := tw.WriteHeader(&h); err != nil {
			continue
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, e.Body); err != nil {
				panic(err) // a bytes.Buffer does not fail
			}
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// Blamed returns the name an error about the case must contain.
func (c Case) Blamed(outside string) string {
	if c.Blame != "" {
		return strings.ReplaceAll(c.Blame, "$OUT", outside)
	}
	layers := c.Script.Layers(outside)
	last := layers[len(layers)-1]
	if len(last) == 0 {
		return ""
	}
	return last[len(last)-1].Header.Name
}

// NamesEntry reports whether an error message names the entry: as written,
// or quoted as %q writes it.
func NamesEntry(msg, name string) bool {
	return strings.Contains(msg, name) || strings.Contains(msg, strconv.Quote(name))
}

// NamesPlace is NamesEntry, or the message names most of the entry's path:
// one of its parent directories, at least half as long as the name. A
// later step (the snapshot, for one) reports the path it failed on, which
// for a name past PATH_MAX is a directory on the way.
func NamesPlace(msg, name string) bool {
	if NamesEntry(msg, name) {
		return true
	}
	p := "/" + strings.TrimLeft(name, "/")
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' && 2*i >= len(name) && strings.Contains(msg, p[:i]) {
			return true
		}
	}
	return false
}

// MakeOutside fills dir, the directory no layer may change, with a file
// and a directory holding one.
func MakeOutside(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "dir"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, SecretName), []byte(SecretContent), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "dir", "file"), []byte(SecretContent), 0o600)
}

// Fingerprint lists every path under dir with its type, mode, owner, link
// count, size, mtime, content digest and link target, so that any change
// below dir shows as a difference. Paths in skip (relative to dir) are left
// out with all they hold.
func Fingerprint(dir string, skip ...string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		for _, s := range skip {
			if rel == s {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("mode %o owner %d:%d nlink %d size %d mtime %d", st.Mode, st.Uid, st.Gid, st.Nlink, st.Size, st.Mtim.Nano())
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + t
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " sha256 " + hex.EncodeToString(sum[:])
		}
		out[rel] = desc
		return nil
	})
	return out, err
}

// Diff describes how two fingerprints differ, or returns "".
func Diff(before, after map[string]string) string {
	var b strings.Builder
	for p, d := range before {
		if a, ok := after[p]; !ok {
			fmt.Fprintf(&b, "removed %s (%s)\n", p, d)
		} else if a != d {
			fmt.Fprintf(&b, "changed %s: %s, was %s\n", p, a, d)
		}
	}
	for p, a := range after {
		if _, ok := before[p]; !ok {
			fmt.Fprintf(&b, "added %s (%s)\n", p, a)
		}
	}
	return b.String()
}
