package rootfs

import (
	"archive/tar"
	"fmt"
	"io"
	"testing"
)

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// BenchmarkExtractStreamed extracts a layer with one 256 MiB file fed
// through a pipe; B/op shows that the content is streamed, not buffered.
func BenchmarkExtractStreamed(b *testing.B) {
	needRoot(b)
	const size = 256 << 20
	b.SetBytes(size)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "big", Mode: 0o644, Size: size})
			if err == nil {
				_, err = io.CopyN(tw, zeros{}, size)
			}
			if err == nil {
				err = tw.Close()
			}
			pw.CloseWithError(err)
		}()
		root := b.TempDir()
		if err := Extract(root, pr, NewIndex()); err != nil {
			b.Fatal(fmt.Errorf("iteration %d: %w", i, err))
		}
	}
}
