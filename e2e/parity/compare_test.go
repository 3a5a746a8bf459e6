package parity

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path"
	"reflect"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// entry is what is compared of one path of a flattened image. Times are
// left out: the two builds run at different moments.
type entry struct {
	Type     string
	Mode     string // permission and setuid/setgid/sticky bits, octal
	UID, GID int
	Digest   string // sha256 of a regular file's content
	Link     string // symlink target
	// Hardlinks names every path sharing this file's inode, this one
	// included; empty for a file with one name.
	Hardlinks string
	Xattrs    string // sorted name=value list
	Device    string // major,minor of a device node

	// text is a small file's content, shown when digests differ.
	text string
}

var typeNames = map[byte]string{
	tar.TypeReg: "file", tar.TypeLink: "hardlink", tar.TypeSymlink: "symlink",
	tar.TypeChar: "char", tar.TypeBlock: "block", tar.TypeDir: "dir", tar.TypeFifo: "fifo",
}

// flatten reads the filesystem of img, with whiteouts applied, as a map
// from absolute path to entry.
func flatten(img v1.Image) (map[string]entry, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]entry{}
	links := map[string]string{} // hardlink name -> the name it links to
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			groupHardlinks(out, links)
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading the flattened image: %w", err)
		}
		p := "/" + strings.Trim(path.Clean(h.Name), "/")
		e := entry{Type: typeNames[h.Typeflag], Mode: fmt.Sprintf("%04o", h.Mode&0o7777), UID: h.Uid, GID: h.Gid}
		if e.Type == "" {
			e.Type = fmt.Sprintf("tar type %q", h.Typeflag)
		}
		switch h.Typeflag {
		case tar.TypeReg:
			sum := sha256.New()
			var head strings.Builder
			w := io.Writer(sum)
			if h.Size <= 512 {
				w = io.MultiWriter(sum, &head)
			}
			if _, err := io.Copy(w, tr); err != nil {
				return nil, fmt.Errorf("reading %s: %w", p, err)
			}
			e.Digest = hex.EncodeToString(sum.Sum(nil))[:16]
			e.text = head.String()
		case tar.TypeSymlink:
			e.Link = h.Linkname
		case tar.TypeLink:
			links[p] = "/" + strings.Trim(path.Clean(h.Linkname), "/")
		case tar.TypeChar, tar.TypeBlock:
			e.Device = fmt.Sprintf("%d,%d", h.Devmajor, h.Devminor)
		}
		var xattrs []string
		for k, v := range h.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				xattrs = append(xattrs, name+"="+hex.EncodeToString([]byte(v)))
			}
		}
		sort.Strings(xattrs)
		e.Xattrs = strings.Join(xattrs, " ")
		out[p] = e
	}
}

// groupHardlinks turns each hardlink entry into the file it names and
// records, on every name of the file, the full set of its names. Which name
// a builder writes as the file and which as links depends on its walk
// order, so the set is compared rather than the tar entry types; a link
// that became a separate copy still shows, as a Hardlinks diff.
func groupHardlinks(fs map[string]entry, links map[string]string) {
	root := func(p string) string {
		for i := 0; i < len(links)+1; i++ {
			t, ok := links[p]
			if !ok {
				break
			}
			p = t
		}
		return p
	}
	groups := map[string][]string{}
	for name := range links {
		r := root(name)
		if len(groups[r]) == 0 {
			groups[r] = []string{r}
		}
		groups[r] = append(groups[r], name)
	}
	for r, names := range groups {
		sort.Strings(names)
		target, ok := fs[r]
		if !ok {
			continue // a link to a path the image lacks: left as it is
		}
		target.Hardlinks = strings.Join(names, " ")
		for _, n := range names {
			fs[n] = target
		}
	}
}

// diff is one field of one path (or of the config, with Path "config")
// where the two images disagree.
type diff struct {
	Path, Field  string
	Ref, Slipway string
}

func (d diff) String() string {
	return fmt.Sprintf("%s %s: reference %s, slipway %s", d.Path, d.Field, d.Ref, d.Slipway)
}

const absent = "<absent>"

// compareFS lists the differences between two flattened filesystems. A
// path present on one side only is a "presence" diff.
func compareFS(docker, slipway map[string]entry) []diff {
	paths := map[string]bool{}
	for p := range docker {
		paths[p] = true
	}
	for p := range slipway {
		paths[p] = true
	}
	var out []diff
	for _, p := range sortedKeys(paths) {
		d, dok := docker[p]
		s, sok := slipway[p]
		if !dok || !sok {
			out = append(out, diff{p, "presence", present(dok, d), present(sok, s)})
			continue
		}
		dv, sv := reflect.ValueOf(d), reflect.ValueOf(s)
		for i := 0; i < dv.NumField(); i++ {
			f := dv.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			if a, b := fmt.Sprint(dv.Field(i)), fmt.Sprint(sv.Field(i)); a != b {
				if f.Name == "Digest" {
					a, b = fmt.Sprintf("%s %q", a, d.text), fmt.Sprintf("%s %q", b, s.text)
				}
				out = append(out, diff{p, f.Name, quote(a), quote(b)})
			}
		}
	}
	return out
}

func present(ok bool, e entry) string {
	if !ok {
		return absent
	}
	e.text = ""
	return fmt.Sprintf("%+v", e)
}

func quote(s string) string {
	if s == "" {
		return `""`
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// compareConfig lists the differences in the fields of the image config
// that Dockerfile instructions write. Empty and missing values are the same
// (docker writes null where BuildKit writes {} for some maps; both mean
// "none"). ArgsEscaped, Image, hostname and the like are docker internals
// and are not compared.
func compareConfig(docker, slipway *v1.ConfigFile) []diff {
	fields := func(c v1.Config) map[string]any {
		return map[string]any{
			"Env": c.Env, "Cmd": c.Cmd, "Entrypoint": c.Entrypoint,
			"WorkingDir": c.WorkingDir, "User": c.User, "Labels": c.Labels,
			"ExposedPorts": c.ExposedPorts, "Volumes": c.Volumes,
			"StopSignal": c.StopSignal, "Shell": c.Shell,
			"Healthcheck": c.Healthcheck, "OnBuild": c.OnBuild,
		}
	}
	d, s := fields(docker.Config), fields(slipway.Config)
	// MAINTAINER writes the top-level author, not a Config field.
	d["Author"], s["Author"] = docker.Author, slipway.Author
	var out []diff
	for _, k := range sortedKeys(d) {
		a, b := render(d[k]), render(s[k])
		if a != b {
			out = append(out, diff{"config", k, a, b})
		}
	}
	return out
}

// render prints a config value so that nil and empty compare equal and
// maps print in key order.
func render(v any) string {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Map:
		if rv.Len() == 0 {
			return "<none>"
		}
	case reflect.Pointer:
		if rv.IsNil() {
			return "<none>"
		}
		return fmt.Sprintf("%+v", rv.Elem().Interface())
	case reflect.String:
		if rv.Len() == 0 {
			return "<none>"
		}
		return fmt.Sprintf("%q", v)
	}
	return fmt.Sprintf("%q", v)
}

// checkDiffs fails t for every difference from BuildKit that the
// knownDiffs table does not name for caseName, and for every knownDiffs
// entry of caseName that matched nothing: the table stays honest both ways.
func checkDiffs(t *testing.T, caseName string, diffs []diff) {
	t.Helper()
	tolerated := append(append([]knownDiff(nil), knownDiffs...), deliberateDiffs...)
	used := map[int]bool{}
next:
	for _, d := range diffs {
		for i, k := range tolerated {
			if k.matches(caseName, d) {
				used[i] = true
				t.Logf("known difference (%s): %s", k.Reason, d)
				continue next
			}
		}
		t.Errorf("differs from BuildKit %s: %s", buildkitVersion, d)
	}
	for i, k := range tolerated {
		if k.Case == caseName && !used[i] {
			t.Errorf("knownDiffs entry %+v matched nothing: Slipway now matches BuildKit there, delete the entry", k)
		}
	}
}

// checkLegacy fails t for every difference between docker's legacy
// builder and BuildKit (diffs, with BuildKit on the Slipway side) that the
// legacyDiffs table does not name for caseName, and for stale entries.
// Where the two agree, docker is a second opinion on what Slipway gives.
func checkLegacy(t *testing.T, caseName string, diffs []diff) {
	t.Helper()
	used := map[int]bool{}
next:
	for _, d := range diffs {
		for i, l := range legacyDiffs {
			if l.matches(caseName, d) {
				used[i] = true
				t.Logf("docker's legacy builder departs from BuildKit (%s): %s %s: docker %s, BuildKit %s", l.Reason, d.Path, d.Field, d.Ref, d.Slipway)
				continue next
			}
		}
		t.Errorf("docker's legacy builder and BuildKit %s disagree, and legacyDiffs does not say why: %s %s: docker %s, BuildKit %s", buildkitVersion, d.Path, d.Field, d.Ref, d.Slipway)
	}
	for i, l := range legacyDiffs {
		if l.Case == caseName && !used[i] {
			t.Errorf("legacyDiffs entry %+v matched nothing: docker and BuildKit now agree there, delete the entry", l)
		}
	}
}

// pathMatch matches p against a path.Match pattern; a pattern ending in
// "/**" matches its directory and everything under it.
func pathMatch(pattern, p string) bool {
	if pattern == p {
		return true
	}
	if dir, ok := strings.CutSuffix(pattern, "/**"); ok {
		return p == dir || strings.HasPrefix(p, dir+"/")
	}
	ok, _ := path.Match(pattern, p)
	return ok
}
