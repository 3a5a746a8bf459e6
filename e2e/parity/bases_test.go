package parity

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/slipway-build/slipway/e2e/harness"
)

// The corpus's busybox is the harness's, plus one layer with what
// BuildKit's tests expect of Docker Hub's busybox and Debian's
// busybox-static leaves out: the adduser and addgroup applets (as small
// scripts doing what `adduser -D [-u UID] [-G GROUP] NAME` and `addgroup
// [-g GID] NAME` do), more applets, and the daemon user and wheel group.
const (
	adduserScript = `#!/bin/sh
# Stands in for busybox's adduser, which Debian's busybox-static leaves out:
# adduser [-D] [-S] [-u UID] [-G GROUP] [-h HOME] [-s SHELL] NAME
uid= group= home= shell=/bin/sh
while [ $# -gt 1 ]; do
	case "$1" in
	-u) uid=$2; shift ;;
	-G) group=$2; shift ;;
	-h) home=$2; shift ;;
	-s) shell=$2; shift ;;
	esac
	shift
done
name=$1
[ -n "$uid" ] || uid=$(awk -F: 'BEGIN { m = 999 } $3 > m && $3 < 60000 { m = $3 } END { print m + 1 }' /etc/passwd)
if [ -n "$group" ]; then
	gid=$(awk -F: -v g="$group" '$1 == g { print $3 }' /etc/group)
else
	gid=$uid
	echo "$name:x:$gid:" >> /etc/group
fi
[ -n "$home" ] || home=/home/$name
echo "$name:x:$uid:$gid:Linux User,,,:$home:$shell" >> /etc/passwd
mkdir -p "$home" && chown "$uid:$gid" "$home"
`
	addgroupScript = `#!/bin/sh
# Stands in for busybox's addgroup: addgroup [-S] [-g GID] NAME
gid=
while [ $# -gt 1 ]; do
	case "$1" in -g) gid=$2; shift ;; esac
	shift
done
[ -n "$gid" ] || gid=$(awk -F: 'BEGIN { m = 999 } $3 > m && $3 < 60000 { m = $3 } END { print m + 1 }' /etc/group)
echo "$1:x:$gid:" >> /etc/group
`
	corpusPasswd = "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n" +
		"nobody:x:65534:65534:nobody:/home:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n"
	corpusGroup = "root:x:0:\ndaemon:x:1:\nwheel:x:10:root\napp:x:1000:\nnogroup:x:65533:\nnobody:x:65534:\n"
)

// corpusApplets are the busybox-static applets the ported tests use that
// the harness's busybox does not link.
var corpusApplets = []string{"cmp", "ip", "mkfifo", "nc", "su", "mount", "umount"}

// tarEntry is one entry of a layer made by layerOf.
type tarEntry struct {
	name     string
	typ      byte
	mode     int64
	uid, gid int
	content  string // a file's content, or a symlink's target
}

func layerOf(entries []tarEntry) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: mtime, Format: tar.FormatPAX}
		switch e.typ {
		case tar.TypeReg:
			h.Size = int64(len(e.content))
		case tar.TypeSymlink:
			h.Linkname = e.content
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.content)); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

// appendLayers is base with a layer of each entries list on top.
func appendLayers(t *testing.T, base v1.Image, layers ...[]tarEntry) v1.Image {
	t.Helper()
	img := base
	for _, entries := range layers {
		l, err := layerOf(entries)
		if err != nil {
			t.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

var (
	basesMu     sync.Mutex
	pushedBases = map[string]string{}
)

// pushBase pushes img to reg as repoTag, once per registry.
func pushBase(t *testing.T, reg *harness.Registry, img v1.Image, repoTag string) string {
	t.Helper()
	basesMu.Lock()
	defer basesMu.Unlock()
	key := reg.Dir + " " + repoTag
	if ref, ok := pushedBases[key]; ok {
		return ref
	}
	refStr := reg.Host + "/" + repoTag
	ref, err := name.ParseReference(refStr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Client().Push(context.Background(), img, ref); err != nil {
		t.Fatalf("pushing %s: %v", refStr, err)
	}
	pushedBases[key] = refStr
	return refStr
}

// corpusBusyboxImage is the busybox the ported cases build FROM.
func corpusBusyboxImage(t *testing.T) v1.Image {
	t.Helper()
	entries := []tarEntry{
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/adduser", typ: tar.TypeReg, mode: 0o755, content: adduserScript},
		{name: "bin/addgroup", typ: tar.TypeReg, mode: 0o755, content: addgroupScript},
		{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		{name: "etc/passwd", typ: tar.TypeReg, mode: 0o644, content: corpusPasswd},
		{name: "etc/group", typ: tar.TypeReg, mode: 0o644, content: corpusGroup},
	}
	for _, a := range corpusApplets {
		entries = append(entries, tarEntry{name: "bin/" + a, typ: tar.TypeSymlink, mode: 0o777, content: "busybox"})
	}
	return appendLayers(t, harness.BusyboxImage(t), entries)
}

func corpusBusybox(t *testing.T, reg *harness.Registry) string {
	return pushBase(t, reg, corpusBusyboxImage(t), "slipway-parity/busybox:corpus")
}

// parityBase is the corpus busybox with one more layer: a dangling
// absolute symlink whose target's parents do not exist (issue 12, defect
// 7), and files owned by others than root for COPY --from=<image>
// (defect 2).
func parityBase(t *testing.T, reg *harness.Registry) string {
	t.Helper()
	img := appendLayers(t, corpusBusyboxImage(t), []tarEntry{
		{name: "evil", typ: tar.TypeSymlink, mode: 0o777, content: "/opt/x/y"},
		{name: "owned/", typ: tar.TypeDir, mode: 0o750, uid: 123, gid: 123},
		{name: "owned/f", typ: tar.TypeReg, mode: 0o640, uid: 321, gid: 321, content: "owned\n"},
		{name: "owned/sub/", typ: tar.TypeDir, mode: 0o700, uid: 5, gid: 6},
		{name: "owned/sub/g", typ: tar.TypeReg, mode: 0o600, uid: 7, gid: 8, content: "g\n"},
	})
	return pushBase(t, reg, img, "slipway-parity/parity-base:latest")
}
