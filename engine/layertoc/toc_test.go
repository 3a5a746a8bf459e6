package layertoc

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

var testDiffID = v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}

// layerTar writes a tar holding a directory, /etc/passwd, a large file, a
// symlink, a hardlink and an xattr, and returns its bytes.
func layerTar(t testing.TB) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1700000000, 0)
	add := func(hdr *tar.Header, body string) {
		hdr.ModTime, hdr.Format = mtime, tar.FormatPAX
		hdr.Size = int64(len(body))
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, body); err != nil {
			t.Fatal(err)
		}
	}
	add(&tar.Header{Typeflag: tar.TypeDir, Name: "etc/", Mode: 0o755}, "")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644}, "root:x:0:0::/root:/bin/sh\n")
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "usr/big", Mode: 0o600, Uid: 7, Gid: 8,
		PAXRecords: map[string]string{"SCHILY.xattr.user.k": "v", "mtime": "1700000000"}}, strings.Repeat("x", 5000))
	add(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin", Linkname: "usr/bin"}, "")
	add(&tar.Header{Typeflag: tar.TypeLink, Name: "usr/big2", Linkname: "usr/big"}, "")
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// scan records a table while reading data as extraction does, reading no
// content itself.
func scan(t *testing.T, data []byte) *TOC {
	t.Helper()
	b := NewBuilder()
	cr := &countReader{r: bytes.NewReader(data)}
	tr := tar.NewReader(cr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if r := b.Entry(hdr, cr.n, tr); r != io.Reader(tr) {
			if _, err := io.Copy(io.Discard, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	return b.TOC(testDiffID)
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestTableRoundTrip(t *testing.T) {
	data := layerTar(t)
	toc := scan(t, data)
	blob, err := toc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(bytes.NewReader(blob), testDiffID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Entries) != 5 {
		t.Fatalf("%d entries, want 5", len(got.Entries))
	}
	// Each entry's offset is where its content is in the tar, and the
	// header is what a tar reader gives, less user names and PAX records
	// other than xattrs.
	tr := tar.NewReader(bytes.NewReader(data))
	for i := range got.Entries {
		want, err := tr.Next()
		if err != nil {
			t.Fatal(err)
		}
		e := &got.Entries[i]
		h := e.Header()
		if h.Name != want.Name || h.Typeflag != want.Typeflag || h.Linkname != want.Linkname || h.Mode != want.Mode ||
			h.Uid != want.Uid || h.Gid != want.Gid || !h.ModTime.Equal(want.ModTime) {
			t.Errorf("entry %d: %+v, want %+v", i, h, want)
		}
		if want.Typeflag == tar.TypeReg && h.Size != want.Size {
			t.Errorf("%s: size %d, want %d", h.Name, h.Size, want.Size)
		}
		if want.Typeflag == tar.TypeReg && want.Size > 0 {
			body, _ := io.ReadAll(tr)
			if at := data[e.Offset : e.Offset+e.Size]; !bytes.Equal(at, body) {
				t.Errorf("%s: offset %d does not point at its content", h.Name, e.Offset)
			}
		}
	}
	if x := got.Entries[2].Header().PAXRecords; len(x) != 1 || x["SCHILY.xattr.user.k"] != "v" {
		t.Errorf("xattrs = %v, want only user.k", x)
	}
	if c, ok := got.Inline("/etc/passwd"); !ok || string(c) != "root:x:0:0::/root:/bin/sh\n" {
		t.Errorf("Inline(/etc/passwd) = %q, %v", c, ok)
	}
	if _, ok := got.Inline("/usr/big"); ok {
		t.Error("the table carries /usr/big's content; it carries only the user databases")
	}
}

// A table whose content of /etc/passwd was not read whole carries none,
// so that a reader falls back to the layer.
func TestPartlyReadContentIsDropped(t *testing.T) {
	b := NewBuilder()
	r := b.Entry(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Size: 10}, 512, strings.NewReader("0123456789"))
	if _, err := io.ReadFull(r, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	b.Entry(&tar.Header{Typeflag: tar.TypeDir, Name: "etc/"}, 1536, nil)
	if _, ok := b.TOC(testDiffID).Inline("/etc/passwd"); ok {
		t.Error("a table carries content that was read only in part")
	}
}

func TestDamagedTablesAreRefused(t *testing.T) {
	good := scan(t, layerTar(t))
	blob, err := good.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	other := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("cd", 32)}
	edited := func(edit func(*TOC)) []byte {
		c := *good
		c.Entries = append([]Entry(nil), good.Entries...)
		edit(&c)
		b, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct {
		name   string
		blob   []byte
		diffID v1.Hash
	}{
		{"truncated", blob[:len(blob)/2], testDiffID},
		{"not gzip", []byte(`{"version":1}`), testDiffID},
		{"another layer's", blob, other},
		{"another version", edited(func(c *TOC) { c.Version = 2 }), testDiffID},
		{"unnamed entry", edited(func(c *TOC) { c.Entries[1].Name = "" }), testDiffID},
		{"offsets going back", edited(func(c *TOC) { c.Entries[2].Offset = 0 }), testDiffID},
		{"content of the wrong size", edited(func(c *TOC) { c.Entries[1].Content = []byte("short") }), testDiffID},
		{"unknown type", edited(func(c *TOC) { c.Entries[0].Typeflag = 'Z' }), testDiffID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Unmarshal(bytes.NewReader(tc.blob), tc.diffID); !errors.Is(err, ErrDamaged) {
				t.Errorf("Unmarshal = %v, want ErrDamaged", err)
			}
		})
	}
}
