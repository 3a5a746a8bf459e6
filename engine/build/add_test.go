package build

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// rawTar is a plain tar of the given headers; a regular file's content is
// its Linkname field, moved out of the header.
func rawTar(t *testing.T, hdrs ...tar.Header) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		content := ""
		if h.Typeflag == tar.TypeReg {
			content, h.Linkname = h.Linkname, ""
			h.Size = int64(len(content))
		}
		if h.ModTime.IsZero() {
			h.ModTime = time.Unix(1600000000, 0)
		}
		must(t, tw.WriteHeader(&h))
		_, err := tw.Write([]byte(content))
		must(t, err)
	}
	must(t, tw.Close())
	return buf.String()
}

// ADD unpacks an archive through rootfs's extractor as BuildKit does (an
// Untar chrooted into the destination): a symlink in the archive cannot
// lead out of the destination, owners are kept unless --chown, and the
// sparse root makes the same layers as the unpacked one.
func TestAddArchiveIsConfinedToItsDestination(t *testing.T) {
	needsRoot(t)
	archive := rawTar(t,
		tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 5, Gid: 6},
		tar.Header{Name: "d/f", Typeflag: tar.TypeReg, Mode: 0o640, Uid: 5, Gid: 6, Linkname: "f"},
		tar.Header{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "/", Mode: 0o777},
		tar.Header{Name: "up/escaped", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "e"},
		tar.Header{Name: "hl", Typeflag: tar.TypeLink, Linkname: "d/f"},
		tar.Header{Name: "fifo", Typeflag: tar.TypeFifo, Mode: 0o644},
	)
	build := func(dockerfile string) (v1.Image, map[string]fsEntry) {
		t.Helper()
		img, err := memBuild(t, &recordingExecutor{}, map[string]string{"Dockerfile": dockerfile, "a.tar": archive},
			func(o *Options) { epoch := time.Unix(1700000000, 0).UTC(); o.Epoch = &epoch })
		if err != nil {
			t.Fatal(err)
		}
		return img, flatten(t, img)
	}
	sparse, fs := build("FROM base\nADD a.tar /dst/\nADD --chown=1:2 a.tar /owned\n")
	hasDir("/dst/d", 0o700, 5, 6)(t, fs, nil)
	hasFile("/dst/d/f", "f", 0o640, 5, 6)(t, fs, nil)
	hasFile("/dst/escaped", "e", 0o644, 0, 0)(t, fs, nil)
	hasSymlink("/dst/up", "/")(t, fs, nil)
	hasFile("/owned/d/f", "f", 0o640, 1, 2)(t, fs, nil)
	absent("/escaped", "/dst/fifo")(t, fs, nil)
	// The archive's hardlink stays one, to d/f under the destination (or,
	// were it written as a file, holds d/f's content).
	if e := fs["/dst/hl"]; !(e.typ == tar.TypeLink && strings.TrimPrefix(e.link, "/") == "dst/d/f") && !(e.typ == tar.TypeReg && e.content == "f") {
		t.Errorf("/dst/hl = %+v, want a hardlink to /dst/d/f", e)
	}

	unpacked, _ := build("FROM base\nADD a.tar /dst/\nADD --chown=1:2 a.tar /owned\nRUN true\n")
	assertSameLayers(t, unpacked, sparse)
}

// A name that climbs out of the destination fails the ADD, as BuildKit's
// Untar refuses it.
func TestAddArchiveRefusesClimbingNames(t *testing.T) {
	needsRoot(t)
	archive := rawTar(t, tar.Header{Name: "../climb", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "x"})
	_, err := memBuild(t, nil, map[string]string{"Dockerfile": "FROM base\nADD a.tar /dst/\n", "a.tar": archive})
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "climbs out") {
		t.Fatalf("err = %v, want the ADD's line and the unsafe name", err)
	}
}
