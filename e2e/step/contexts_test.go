package step

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/slipway-build/slipway/e2e/harness"
)

// contextFiles is the context every kind of source delivers; the build
// proves it arrived by copying the marker file into the image.
func contextFiles(base, marker string) map[string]string {
	return map[string]string{
		"app/Dockerfile": "FROM " + base + "\nCOPY marker.txt /marker.txt\n",
		"app/marker.txt": marker,
	}
}

func tarGz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for n, c := range files {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg, ModTime: time.Unix(1600000000, 0)}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(c))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = []string{"HOME=" + dir, "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "PATH=/usr/bin:/bin"}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// gitDaemon serves a repository holding files over git:// on loopback.
func gitDaemon(t *testing.T, files map[string]string) string {
	t.Helper()
	base := t.TempDir()
	work := filepath.Join(base, "work")
	for n, c := range files {
		harness.WriteFile(t, filepath.Join(work, n), c)
	}
	git(t, work, "init", "-q", "-b", "main")
	git(t, work, "add", ".")
	git(t, work, "commit", "-q", "-m", "context")
	git(t, base, "clone", "-q", "--bare", work, filepath.Join(base, "app.git"))
	out, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	port := harness.FreePort(t)
	cmd := exec.Command(filepath.Join(strings.TrimSpace(string(out)), "git-daemon"), "--reuseaddr", "--export-all",
		"--base-path="+base, "--listen=127.0.0.1", fmt.Sprintf("--port=%d", port), base)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting git daemon: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("git daemon did not listen on %s", addr)
		}
	}
}

// An end-to-end build from each kind of context into the registry.
func TestBuildFromEachContextKind(t *testing.T) {
	reg := harness.StartRegistry(t)
	base := harness.Busybox(t, reg)

	type source struct {
		context string
		env     []string
		stdin   []byte
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, files map[string]string) source
	}{
		{"directory", func(t *testing.T, files map[string]string) source {
			return source{context: "dir://" + writeContext(t, files)}
		}},
		{"tar file", func(t *testing.T, files map[string]string) source {
			p := filepath.Join(t.TempDir(), "ctx.tar.gz")
			harness.WriteFile(t, p, string(tarGz(t, files)))
			return source{context: "tar://" + p}
		}},
		{"tar on stdin", func(t *testing.T, files map[string]string) source {
			return source{context: "tar://stdin", stdin: tarGz(t, files)}
		}},
		{"https tarball", func(t *testing.T, files map[string]string) source {
			body := tarGz(t, files)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
			t.Cleanup(srv.Close)
			return source{context: srv.URL + "/ctx.tar.gz"}
		}},
		{"git", func(t *testing.T, files map[string]string) source {
			return source{context: "git://" + gitDaemon(t, files) + "/app.git#main", env: []string{"GIT_PULL_METHOD=git"}}
		}},
		{"s3", func(t *testing.T, files map[string]string) source {
			backend := s3mem.New()
			if err := backend.CreateBucket("contexts"); err != nil {
				t.Fatal(err)
			}
			body := tarGz(t, files)
			if _, err := backend.PutObject("contexts", "ctx.tar.gz", map[string]string{}, bytes.NewReader(body), int64(len(body)), nil); err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(gofakes3.New(backend).Server())
			t.Cleanup(srv.Close)
			return source{context: "s3://contexts/ctx.tar.gz", env: []string{
				"S3_ENDPOINT=" + srv.URL, "S3_FORCE_PATH_STYLE=true", "AWS_ACCESS_KEY_ID=AKIDSLIPWAY", "AWS_SECRET_ACCESS_KEY=secret",
				"AWS_REGION=eu-west-1", "AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
			}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			marker := "from the " + tt.name + " context\n"
			src := tt.setup(t, contextFiles(base, marker))
			dest := reg.Host + "/contexts/" + strings.ReplaceAll(tt.name, " ", "-") + ":1"
			args := []string{"--context", src.context, "--context-sub-path", "app", "--destination", dest, "--insecure-registry", reg.Host}
			res := run(t, src.env, src.stdin, args...)
			if res.code != 0 {
				t.Fatalf("exit %d:\n%s", res.code, res.stderr)
			}
			ref, _ := name.ParseReference(dest)
			img, err := reg.Client().Pull(t.Context(), ref.String(), v1.Platform{})
			if err != nil {
				t.Fatal(err)
			}
			if got := fileIn(t, img, "marker.txt"); got != marker {
				t.Errorf("marker.txt in the image = %q, want %q", got, marker)
			}
		})
	}
}

// fileIn reads one file of an image's flattened filesystem.
func fileIn(t *testing.T, img v1.Image, p string) string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s not in the image (%v)", p, err)
		}
		if strings.TrimPrefix(h.Name, "/") == p {
			b, _ := io.ReadAll(tr)
			return string(b)
		}
	}
}
