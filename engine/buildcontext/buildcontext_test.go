package buildcontext

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseGitOptions(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    GitOptions
		wantErr string
	}{
		{in: "", want: GitOptions{}},
		{in: "branch=main", want: GitOptions{Branch: "main"}},
		{in: "branch=release/1.x,single-branch=true,recurse-submodules=true,insecure-skip-tls=true,depth=1",
			want: GitOptions{Branch: "release/1.x", SingleBranch: true, RecurseSubmodules: true, InsecureSkipTLS: true, Depth: 1}},
		{in: "depth=3, single-branch=false", want: GitOptions{Depth: 3}},
		{in: "branch", wantErr: "not key=value"},
		{in: "shallow=true", wantErr: `unknown key "shallow"`},
		{in: "single-branch=yes", wantErr: "bad value for single-branch"},
		{in: "depth=-1", wantErr: "bad value for depth"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseGitOptions(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestNewKinds pins how a --context value is classified and how it is
// shown in logs: with credentials removed.
func TestNewKinds(t *testing.T) {
	for _, tc := range []struct {
		in      string
		env     map[string]string
		kind    any
		display string
		repo    string // for git: the URL cloned
		ref     string
		commit  string
		dir     string
	}{
		{in: "tar:///ctx/c.tar.gz", kind: &tarFileSource{}, display: "tar:///ctx/c.tar.gz"},
		{in: "tar://stdin", kind: &stdinSource{}, display: "tar://stdin"},
		{in: "https://u:pw@example.com/c.tar.gz", kind: &httpSource{}, display: "https://example.com/c.tar.gz"},
		{in: "https://example.com/c.tar.gz?X-Amz-Signature=abc&x=1", kind: &httpSource{}, display: "https://example.com/c.tar.gz?X-Amz-Signature=REDACTED&x=1"},
		{in: "git://github.com/org/repo#refs/heads/main#0123456789abcdef0123456789abcdef01234567", kind: &gitSource{},
			display: "git://github.com/org/repo#refs/heads/main#0123456789abcdef0123456789abcdef01234567",
			repo:    "https://github.com/org/repo", ref: "refs/heads/main", commit: "0123456789abcdef0123456789abcdef01234567"},
		{in: "git://example.com/repo", env: map[string]string{"GIT_PULL_METHOD": "git"}, kind: &gitSource{}, display: "git://example.com/repo", repo: "git://example.com/repo"},
		{in: "git://example.com/repo#v1:docker", env: map[string]string{"GIT_PULL_METHOD": "http"}, kind: &gitSource{}, display: "git://example.com/repo#v1:docker", repo: "http://example.com/repo", ref: "v1", dir: "docker"},
		{in: "https://tok:x-oauth@example.com/org/repo.git#main", kind: &gitSource{}, display: "https://example.com/org/repo.git#main", repo: "https://example.com/org/repo.git", ref: "main"},
		{in: "ssh://git@example.com/org/repo.git", kind: &gitSource{}, display: "ssh://git@example.com/org/repo.git", repo: "ssh://git@example.com/org/repo.git"},
		{in: "git@example.com:org/repo.git#refs/pull/7/head", kind: &gitSource{}, display: "git@example.com:org/repo.git#refs/pull/7/head", repo: "git@example.com:org/repo.git", ref: "refs/pull/7/head"},
		{in: "s3://bucket/path/ctx.tar.gz", kind: &s3Source{}, display: "s3://bucket/path/ctx.tar.gz"},
		{in: "gs://bucket/ctx.tar.gz", kind: &gcsSource{}, display: "gs://bucket/ctx.tar.gz"},
		{in: "https://acct.blob.core.windows.net/ctr/ctx.tar.gz?sv=2020&sig=secret", kind: &azureSource{}, display: "https://acct.blob.core.windows.net/ctr/ctx.tar.gz?sig=REDACTED&sv=2020"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			src, err := New(tc.in, Options{Env: envMap(tc.env)})
			if err != nil {
				t.Fatal(err)
			}
			if reflect.TypeOf(src) != reflect.TypeOf(tc.kind) {
				t.Fatalf("kind = %T, want %T", src, tc.kind)
			}
			if got := src.String(); got != tc.display {
				t.Errorf("String() = %q, want %q", got, tc.display)
			}
			if g, ok := src.(*gitSource); ok {
				if g.repoURL != tc.repo || g.ref != tc.ref || g.commit != tc.commit || g.dir != tc.dir {
					t.Errorf("git = %q ref %q commit %q dir %q, want %q %q %q %q", g.repoURL, g.ref, g.commit, g.dir, tc.repo, tc.ref, tc.commit, tc.dir)
				}
			}
		})
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ftp://u:secret@host/x.tar", "unknown prefix"},
		{"s3://bucket-only", "want s3://BUCKET/"},
		{"gs://", "want gs://BUCKET/"},
		{"https://acct.blob.core.windows.net/ctr", "CONTAINER/PATH"},
	} {
		_, err := New(tc.in, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%q) = %v, want %q", tc.in, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("New(%q) leaks the password: %v", tc.in, err)
		}
	}
	if _, err := New("git://h/r", Options{Env: envMap(map[string]string{"GIT_PULL_METHOD": "ftp"})}); err == nil || !strings.Contains(err.Error(), "GIT_PULL_METHOD") {
		t.Errorf("bad GIT_PULL_METHOD: err = %v", err)
	}
}

func TestPrepareLocal(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "sub/deeper"), 0o755)
	os.WriteFile(filepath.Join(root, "sub/Dockerfile"), []byte("FROM scratch\n"), 0o644)
	os.Symlink("/", filepath.Join(root, "escape"))
	os.Symlink("sub", filepath.Join(root, "alias"))
	os.WriteFile(filepath.Join(root, "file"), nil, 0o644)
	realRoot, _ := filepath.EvalSymlinks(root)

	for _, tc := range []struct {
		ctx, sub, want, wantErr string
	}{
		{ctx: root, want: root},
		{ctx: "dir://" + root, want: root},
		{ctx: root, sub: "sub", want: filepath.Join(realRoot, "sub")},
		{ctx: root, sub: "alias/deeper", want: filepath.Join(realRoot, "sub/deeper")},
		{ctx: root, sub: "../", wantErr: "leaves the context"},
		{ctx: root, sub: "escape/etc", wantErr: "leaves the context"},
		{ctx: root, sub: "/etc", wantErr: "must be relative"},
		{ctx: root, sub: "missing", wantErr: "does not exist"},
		{ctx: root, sub: "file", wantErr: "not a directory"},
		{ctx: filepath.Join(root, "file"), wantErr: "use tar://"},
		{ctx: filepath.Join(root, "nope"), wantErr: "no such file"},
	} {
		t.Run(tc.ctx+"|"+tc.sub, func(t *testing.T) {
			dir, cleanup, err := Prepare(context.Background(), tc.ctx, t.TempDir(), Options{SubPath: tc.sub})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			cleanup()
			if dir != tc.want {
				t.Errorf("dir = %q, want %q", dir, tc.want)
			}
			if _, err := os.Stat(root); err != nil {
				t.Errorf("cleanup removed a local context: %v", err)
			}
		})
	}
}

func TestPrepareTar(t *testing.T) {
	data := gzipBytes(t, makeTar(t, sampleEntries()...))
	path := filepath.Join(t.TempDir(), "ctx.tar.gz")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()

	t.Run("file", func(t *testing.T) {
		dir, cleanup, err := Prepare(context.Background(), "tar://"+path, work, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(dir, work) {
			t.Errorf("fetched into %s, not under the work dir %s", dir, work)
		}
		assertTree(t, dir, sampleTree())
		cleanup()
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cleanup left %s behind", dir)
		}
	})
	t.Run("stdin with sub-path", func(t *testing.T) {
		dir, cleanup, err := Prepare(context.Background(), "tar://stdin", work, Options{Stdin: bytes.NewReader(data), SubPath: "app"})
		if err != nil {
			t.Fatal(err)
		}
		defer cleanup()
		assertTree(t, dir, map[string]string{
			"run.sh":       "file 0755 #!/bin/sh\necho hi\n",
			"secret.txt":   "file 0600 only me\n",
			"current":      "symlink run.sh",
			"run-again.sh": "file 0755 #!/bin/sh\necho hi\n",
		})
	})
	t.Run("missing", func(t *testing.T) {
		_, _, err := Prepare(context.Background(), "tar:///no/such.tar", work, Options{})
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "/no/such.tar") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("sub-path missing cleans up", func(t *testing.T) {
		_, _, err := Prepare(context.Background(), "tar://"+path, work, Options{SubPath: "nope"})
		if err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Fatalf("err = %v", err)
		}
	})
	if ents, _ := os.ReadDir(work); len(ents) != 0 {
		t.Errorf("work dir not cleaned: %v", ents)
	}
}

func TestPrepareHTTPTarball(t *testing.T) {
	good := gzipBytes(t, makeTar(t, sampleEntries()...))
	bomb := gzipBytes(t, makeTar(t, entry{name: "zeros", typ: '0', mode: 0o644, size: 32 << 20}))
	escape := makeTar(t, file("../../escape", "x", 0o644))
	mux := http.NewServeMux()
	mux.HandleFunc("/public/ctx.tar.gz", func(w http.ResponseWriter, r *http.Request) { w.Write(good) })
	mux.HandleFunc("/private/ctx.tar.gz", func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="ctx"`)
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		w.Write(good)
	})
	mux.HandleFunc("/bomb.tar.gz", func(w http.ResponseWriter, r *http.Request) { w.Write(bomb) })
	mux.HandleFunc("/escape.tar", func(w http.ResponseWriter, r *http.Request) { w.Write(escape) })
	mux.HandleFunc("/page.html", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<html>login</html>") })
	mux.HandleFunc("/big.tar", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(64<<20))
		w.WriteHeader(http.StatusOK)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")

	for _, tc := range []struct {
		name, url string
		want      error
		msg       string
	}{
		{name: "public", url: srv.URL + "/public/ctx.tar.gz"},
		{name: "basic auth", url: "http://alice:s3cret@" + host + "/private/ctx.tar.gz"},
		{name: "no credentials", url: srv.URL + "/private/ctx.tar.gz", want: ErrAuth, msg: "USER:PASSWORD"},
		{name: "wrong credentials", url: "http://alice:wrong@" + host + "/private/ctx.tar.gz", want: ErrAuth, msg: "refused the credentials"},
		{name: "not found", url: srv.URL + "/nope.tar.gz", want: ErrNotFound, msg: "HTTP 404"},
		{name: "not a tarball", url: srv.URL + "/page.html", want: ErrNotTarball, msg: srv.URL + "/page.html"},
		{name: "gzip bomb", url: srv.URL + "/bomb.tar.gz", want: ErrTooLarge},
		{name: "content-length over cap", url: srv.URL + "/big.tar", want: ErrTooLarge, msg: "server says"},
		{name: "path escape", url: srv.URL + "/escape.tar", want: ErrUnsafePath},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			dir, cleanup, err := Prepare(context.Background(), tc.url, work, Options{MaxSize: 8 << 20, HTTPClient: srv.Client()})
			if tc.want != nil {
				if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("err = %v, want %v mentioning %q", err, tc.want, tc.msg)
				}
				if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "wrong") {
					t.Errorf("error leaks the password: %v", err)
				}
				if ents, _ := os.ReadDir(work); len(ents) != 0 {
					t.Errorf("a failed fetch left %v in the work dir", ents)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer cleanup()
			assertTree(t, dir, sampleTree())
		})
	}
}
