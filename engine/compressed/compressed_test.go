package compressed

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"io"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

func TestReaderTakesAllFourFormats(t *testing.T) {
	const text = "the same content, five ways"
	compress := map[Format]func(io.Writer) io.WriteCloser{
		Gzip: func(w io.Writer) io.WriteCloser { return gzip.NewWriter(w) },
		Xz: func(w io.Writer) io.WriteCloser {
			zw, err := xz.NewWriter(w)
			if err != nil {
				t.Fatal(err)
			}
			return zw
		},
		Zstd: func(w io.Writer) io.WriteCloser {
			zw, err := zstd.NewWriter(w)
			if err != nil {
				t.Fatal(err)
			}
			return zw
		},
	}
	// Go has no bzip2 writer: this is `bzip2` of text.
	bz, err := hex.DecodeString("425a68393141592653596f78fa9500000b918040042b638da02000314c001342268f53430d20caa4c9dc3960b0fe32d769563bf1772453850906f78fa950")
	if err != nil {
		t.Fatal(err)
	}
	inputs := map[Format][]byte{Uncompressed: []byte(text), Bzip2: bz}
	for f, newWriter := range compress {
		var buf bytes.Buffer
		zw := newWriter(&buf)
		if _, err := zw.Write([]byte(text)); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		inputs[f] = buf.Bytes()
	}
	for want, in := range inputs {
		t.Run(string(want)+"-", func(t *testing.T) {
			rc, got, err := Reader(bytes.NewReader(in))
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if got != want {
				t.Errorf("format = %q, want %q", got, want)
			}
			out, err := io.ReadAll(rc)
			if err != nil || string(out) != text {
				t.Errorf("read %q, %v; want %q", out, err, text)
			}
		})
	}
}

func TestReaderRefusesABadHeader(t *testing.T) {
	if _, f, err := Reader(bytes.NewReader([]byte{0x1f, 0x8b, 0, 0})); err == nil || f != Gzip {
		t.Errorf("a truncated gzip header: format %q, error %v; want gzip and an error", f, err)
	}
}
