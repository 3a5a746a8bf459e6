package snapshot

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"io"
	"sort"
	"testing"

	"github.com/slipway-build/slipway/engine/layer"
)

// tarEntry is what two layers must agree on for the same change.
type tarEntry struct {
	typ      byte
	mode     int64
	uid, gid int
	link     string
	dev      string
	xattrs   string
	body     string
	digest   string
}

// layerEntries writes changes with engine/layer (into a test temp dir,
// which cleans the file up) and reads the tar back.
func layerEntries(t *testing.T, root string, changes []layer.Change) map[string]tarEntry {
	t.Helper()
	l, err := layer.Write(root, changes, layer.Options{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]tarEntry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		var xs []string
		for k, v := range h.PAXRecords {
			if len(k) > 13 && k[:13] == "SCHILY.xattr." {
				xs = append(xs, fmt.Sprintf("%s=%x", k[13:], v))
			}
		}
		sort.Strings(xs)
		out[h.Name] = tarEntry{
			typ: h.Typeflag, mode: h.Mode, uid: h.Uid, gid: h.Gid, link: h.Linkname,
			dev: fmt.Sprintf("%d:%d", h.Devmajor, h.Devminor), xattrs: fmt.Sprint(xs),
			body: string(b), digest: fmt.Sprintf("%x", sha256.Sum256(b)),
		}
	}
	return out
}

func keys(m map[string]tarEntry) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
