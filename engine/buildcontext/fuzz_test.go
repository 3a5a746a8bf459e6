package buildcontext

import (
	"bytes"
	"compress/gzip"
	"context"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/slipway-build/slipway/engine/rootfs/hostile"
)

// FuzzParseGitOptions reads --git values: no panic, and what is accepted
// is sane.
func FuzzParseGitOptions(f *testing.F) {
	for _, s := range []string{
		"", "branch=feature,single-branch=true", "depth=1", "recurse-submodules=true,insecure-skip-tls=false",
		"branch=main,single-branch=true,recurse-submodules=false,insecure-skip-tls=true,depth=3", "depth=-1", "nope=1", "branch",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseGitOptions(s)
		if err == nil && o.Depth < 0 {
			t.Fatalf("--git %q gave depth %d", s, o.Depth)
		}
		if err != nil && !strings.Contains(err.Error(), "--git") {
			t.Fatalf("the error does not name --git: %v", err)
		}
	})
}

// fuzzMaxSize is the size cap of fuzzed contexts.
const fuzzMaxSize = 64 << 10

// FuzzExtract unpacks a context archive next to a directory that must not
// change: nothing may land outside the context directory, and no more than
// the size cap may be written. mode picks the input: a tar of a
// hostile.Script (plain, gzip or zstd), or raw bytes.
func FuzzExtract(f *testing.F) {
	for _, c := range hostile.Cases() {
		if len(c.Script) < 1024 {
			f.Add(string(c.Script), []byte(nil), uint8(0))
		}
	}
	f.Add("d app/\nf app/run.sh echo\nh app/run-again.sh app/run.sh\ns app/link run.sh", []byte(nil), uint8(1))
	f.Add("f big "+strings.Repeat("x", 512), []byte(nil), uint8(2))
	f.Add("", []byte("BZh91AY&SY"), uint8(3))
	f.Add("", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, uint8(3))
	f.Fuzz(func(t *testing.T, script string, raw []byte, mode uint8) {
		if len(script) > 4096 || len(raw) > 1<<20 {
			t.Skip("input too large")
		}
		tmp := t.TempDir()
		dest, outside := filepath.Join(tmp, "context"), filepath.Join(tmp, "outside")
		if err := hostile.MakeOutside(outside); err != nil {
			t.Fatal(err)
		}
		if err := mkdir(dest); err != nil {
			t.Fatal(err)
		}
		before, err := hostile.Fingerprint(outside)
		if err != nil {
			t.Fatal(err)
		}
		beforeTmp, err := hostile.Fingerprint(tmp, "context", "outside")
		if err != nil {
			t.Fatal(err)
		}
		var data []byte
		if mode%4 == 3 {
			data = raw
		} else {
			var all []hostile.Entry
			for _, l := range hostile.Script(script).Layers(outside) {
				all = append(all, l...)
			}
			data = compress(t, hostile.Tar(all), mode%4)
		}
		_ = Extract(context.Background(), bytes.NewReader(data), dest, fuzzMaxSize)

		after, err := hostile.Fingerprint(outside)
		if err != nil {
			t.Fatal(err)
		}
		if d := hostile.Diff(before, after); d != "" {
			t.Fatalf("the outside directory changed:\n%s", d)
		}
		afterTmp, err := hostile.Fingerprint(tmp, "context", "outside")
		if err != nil {
			t.Fatal(err)
		}
		if d := hostile.Diff(beforeTmp, afterTmp); d != "" {
			t.Fatalf("the directory around the context changed:\n%s", d)
		}
		var written int64
		inodes := map[uint64]bool{}
		_ = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return nil
			}
			if fi, err := d.Info(); err == nil {
				if st, ok := fi.Sys().(*syscall.Stat_t); ok && !inodes[st.Ino] {
					inodes[st.Ino] = true
					written += st.Blocks * 512
				}
			}
			return nil
		})
		// Allocation rounds each file up to a block.
		if written > fuzzMaxSize+int64(len(inodes))*4096 {
			t.Fatalf("%d bytes written, the cap is %d", written, fuzzMaxSize)
		}
	})
}

func mkdir(p string) error { return syscall.Mkdir(p, 0o755) }

func compress(t *testing.T, data []byte, mode uint8) []byte {
	var buf bytes.Buffer
	switch mode {
	case 1:
		zw := gzip.NewWriter(&buf)
		zw.Write(data)
		zw.Close()
	case 2:
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(data)
		zw.Close()
	default:
		return data
	}
	return buf.Bytes()
}
