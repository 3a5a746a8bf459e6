package build

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/slipway-build/slipway/e2e/harness"
	"github.com/slipway-build/slipway/engine/run"
)

// fsEntry is one path of a flattened image.
type fsEntry struct {
	typ      byte
	mode     int64
	uid, gid int
	link     string
	content  string
}

func flatten(t *testing.T, img v1.Image) map[string]fsEntry {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	out := map[string]fsEntry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		var content string
		if h.Typeflag == tar.TypeReg && h.Size < 1<<16 {
			b, _ := io.ReadAll(tr)
			content = string(b)
		}
		out["/"+strings.TrimSuffix(h.Name, "/")] = fsEntry{typ: h.Typeflag, mode: h.Mode & 0o7777, uid: h.Uid, gid: h.Gid, link: h.Linkname, content: content}
	}
}

type fixture struct {
	reg  *harness.Registry
	base string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the distribution registry; run without -short")
	}
	reg := harness.StartRegistry(t)
	return fixture{reg: reg, base: harness.Busybox(t, reg)}
}

// build writes files into a new context and builds it.
func (f fixture) build(t *testing.T, files map[string]string, mutateOpts ...func(*Options)) (v1.Image, error) {
	t.Helper()
	return f.buildIn(t, t.TempDir(), files, mutateOpts...)
}

func (f fixture) buildIn(t *testing.T, dir string, files map[string]string, mutateOpts ...func(*Options)) (v1.Image, error) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.ReplaceAll(content, "$BASE", f.base)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	exec, err := run.New(run.Chroot)
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{
		Inputs:        Inputs{ContextDir: dir},
		Collaborators: Collaborators{WorkDir: t.TempDir(), Images: f.reg.Client(), Executor: exec, Output: io.Discard},
	}
	for _, m := range mutateOpts {
		if m != nil {
			m(&opts)
		}
	}
	return Build(context.Background(), opts)
}

func TestSmoke(t *testing.T) {
	f := newFixture(t)
	img, err := f.build(t, map[string]string{
		"Dockerfile": "FROM $BASE\nENV A=1\nWORKDIR /app\nCOPY hello.txt ./\nRUN echo ran > /app/ran && rm /etc/group\nCMD [\"cat\", \"/app/hello.txt\"]\n",
		"hello.txt":  "hello\n",
	})
	if err != nil {
		t.Fatal(err)
	}
	fs := flatten(t, img)
	if fs["/app/hello.txt"].content != "hello\n" || fs["/app/ran"].content != "ran\n" {
		t.Errorf("files: %+v %+v", fs["/app/hello.txt"], fs["/app/ran"])
	}
	if _, ok := fs["/etc/group"]; ok {
		t.Error("/etc/group was deleted by RUN but is still in the image")
	}
	cf, _ := img.ConfigFile()
	if cf.Config.WorkingDir != "/app" || cf.Config.Cmd[0] != "cat" {
		t.Errorf("config: %+v", cf.Config)
	}
}
