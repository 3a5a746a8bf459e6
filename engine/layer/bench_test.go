package layer

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkWrite writes one layer of a single 256 MiB file of random data,
// as the scaling benchmark's one-large-file point does, per compression,
// and with gzip keeping the uncompressed copy as a build does.
func BenchmarkWrite(b *testing.B) {
	const size = 256 << 20
	root := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, size)
	for i := 0; i+8 <= len(buf); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			buf[i+j] = byte(v >> (8 * j))
		}
	}
	if err := os.WriteFile(filepath.Join(root, "big"), buf, 0o644); err != nil {
		b.Fatal(err)
	}
	buf = nil
	for _, c := range []Compression{Gzip, Zstd, Uncompressed, "gzip-keep"} {
		b.Run(string(c), func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				opts := Options{Compression: c, TempDir: b.TempDir()}
				if c == "gzip-keep" {
					opts.Compression, opts.KeepUncompressed = Gzip, b.TempDir()
				}
				l, err := Write(root, []Change{{Path: "/big"}}, opts)
				if err != nil {
					b.Fatal(err)
				}
				os.Remove(l.(*fileLayer).path)
			}
		})
	}
}
