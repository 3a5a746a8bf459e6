package layertoc

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// FuzzUnmarshal feeds a table's JSON, gzipped as a blob, to Unmarshal. It
// refuses the blob as damaged or returns a table that passes its checks
// again once written back, and whose entries make tar headers.
func FuzzUnmarshal(f *testing.F) {
	diffID := v1.Hash{Algorithm: "sha256", Hex: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	good, err := json.Marshal(&TOC{Version: Version, DiffID: diffID, Entries: []Entry{
		{Name: "etc/", Typeflag: '5', Mode: 0o755},
		{Name: "etc/passwd", Typeflag: '0', Size: 5, Mode: 0o644, Offset: 1024, Content: []byte("root\n")},
		{Name: "bin/sh", Typeflag: '2', Linkname: "busybox", Offset: 1536, Xattrs: map[string]string{"user.a": "b"}},
	}})
	if err != nil {
		f.Fatal(err)
	}
	unnamed, err := json.Marshal(&TOC{Version: Version, DiffID: diffID, Entries: []Entry{{Typeflag: '0'}}})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range [][]byte{good, unnamed, []byte(`{}`), []byte(`{"version":1,"entries":[{"name":"a","size":-1}]}`), []byte(`null`)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, table []byte) {
		var blob bytes.Buffer
		zw := gzip.NewWriter(&blob)
		zw.Write(table)
		zw.Close()
		toc, err := Unmarshal(&blob, diffID)
		if err != nil {
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("an error that is not ErrDamaged: %v", err)
			}
			return
		}
		for i := range toc.Entries {
			if hdr := toc.Entries[i].Header(); hdr.Name == "" {
				t.Fatalf("entry %d makes a header without a name", i)
			}
		}
		toc.Inline("/etc/passwd")
		again, err := toc.Marshal()
		if err != nil {
			t.Fatalf("a table that was read cannot be written: %v", err)
		}
		if _, err := Unmarshal(bytes.NewReader(again), diffID); err != nil {
			t.Fatalf("a table that was read is refused once written back: %v", err)
		}
	})
}
