package buildcontext

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// gitFixture is a set of bare repositories made with the git CLI:
//
//	app.git  main:     Dockerfile "v2", run.sh (0755), link -> run.sh, docker/Dockerfile
//	         v1:       annotated tag on the first commit (Dockerfile "v1")
//	         feature:  main plus feature.txt
//	         with-sub: main plus the submodule lib -> ../lib.git
//	         refs/pull/7/head: a commit on no branch, with pr.txt
//	lib.git  main:     lib.txt, and the submodule nested -> ../nested.git
//	nested.git main:   nested.txt
type gitFixture struct {
	base          string // directory holding the bare repositories
	first, second string // commit hashes on main
	pr            string
}

func requireGit(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the git tests run the git CLI and servers")
	}
	p, err := exec.LookPath("git")
	if err != nil {
		t.Skip("the git CLI makes the fixtures and serves them; install the Debian package git")
	}
	return p
}

func gitEnv() []string {
	return append(os.Environ(),
		"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=test@example.com",
		"GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=test@example.com",
		"GIT_AUTHOR_DATE=2024-01-02T03:04:05Z", "GIT_COMMITTER_DATE=2024-01-02T03:04:05Z",
	)
}

func runGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "protocol.file.allow=always", "-c", "init.defaultBranch=main"}, args...)...)
	cmd.Dir = dir
	cmd.Env = gitEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s in %s: %v\n%s", strings.Join(args, " "), dir, err, out)
	}
	return strings.TrimSpace(string(out))
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var (
	fixtureOnce sync.Once
	fixture     *gitFixture
	fixtureRoot string
)

// TestMain removes the shared git fixture, which outlives any one test.
func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureRoot != "" {
		os.RemoveAll(fixtureRoot)
	}
	os.Exit(code)
}

// newGitFixture builds the repositories once per test binary: the git
// tests only read them, and building takes seconds.
func newGitFixture(t *testing.T) *gitFixture {
	requireGit(t)
	fixtureOnce.Do(func() {
		root, err := os.MkdirTemp("", "slipway-gitfixture-")
		if err != nil {
			t.Fatal(err)
		}
		fixtureRoot = root
		fixture = buildGitFixture(t, root)
	})
	if fixture == nil {
		t.Fatal("building the git fixture failed in an earlier test")
	}
	return fixture
}

func buildGitFixture(t *testing.T, root string) *gitFixture {
	f := &gitFixture{base: filepath.Join(root, "repos")}
	work := filepath.Join(root, "work")
	os.MkdirAll(f.base, 0o755)
	os.MkdirAll(work, 0o755)
	bare := func(name string) string {
		p := filepath.Join(f.base, name)
		runGit(t, f.base, "init", "-q", "--bare", p)
		// Lets a shallow clone fetch an older commit by its hash, as
		// GitHub and GitLab allow.
		runGit(t, p, "config", "uploadpack.allowReachableSHA1InWant", "true")
		return p
	}

	nested := filepath.Join(work, "nested")
	runGit(t, work, "init", "-q", nested)
	writeFiles(t, nested, map[string]string{"nested.txt": "deep\n"})
	runGit(t, nested, "add", ".")
	runGit(t, nested, "commit", "-q", "-m", "nested")
	runGit(t, nested, "push", "-q", bare("nested.git"), "main")

	lib := filepath.Join(work, "lib")
	runGit(t, work, "init", "-q", lib)
	runGit(t, lib, "remote", "add", "origin", filepath.Join(f.base, "lib.git"))
	writeFiles(t, lib, map[string]string{"lib.txt": "library\n"})
	runGit(t, lib, "submodule", "add", "-q", "../nested.git", "nested")
	runGit(t, lib, "add", ".")
	runGit(t, lib, "commit", "-q", "-m", "lib")
	runGit(t, lib, "push", "-q", bare("lib.git"), "main")

	app := filepath.Join(work, "app")
	runGit(t, work, "init", "-q", app)
	runGit(t, app, "remote", "add", "origin", filepath.Join(f.base, "app.git"))
	writeFiles(t, app, map[string]string{"Dockerfile": "v1\n", "run.sh": "#!/bin/sh\n", "docker/Dockerfile": "FROM scratch\n"})
	os.Chmod(filepath.Join(app, "run.sh"), 0o755)
	os.Symlink("run.sh", filepath.Join(app, "link"))
	runGit(t, app, "add", ".")
	runGit(t, app, "commit", "-q", "-m", "first")
	runGit(t, app, "tag", "-a", "v1", "-m", "version 1")
	f.first = runGit(t, app, "rev-parse", "HEAD")
	writeFiles(t, app, map[string]string{"Dockerfile": "v2\n"})
	runGit(t, app, "commit", "-q", "-am", "second")
	f.second = runGit(t, app, "rev-parse", "HEAD")

	runGit(t, app, "checkout", "-q", "-b", "feature")
	writeFiles(t, app, map[string]string{"feature.txt": "feature\n"})
	runGit(t, app, "add", ".")
	runGit(t, app, "commit", "-q", "-m", "feature")

	runGit(t, app, "checkout", "-q", "--detach", "main")
	writeFiles(t, app, map[string]string{"pr.txt": "pull request\n"})
	runGit(t, app, "add", ".")
	runGit(t, app, "commit", "-q", "-m", "pr")
	f.pr = runGit(t, app, "rev-parse", "HEAD")
	runGit(t, app, "tag", "pr-head") // pushed as refs/pull/7/head below

	runGit(t, app, "checkout", "-q", "-b", "with-sub", "main")
	runGit(t, app, "submodule", "add", "-q", "../lib.git", "lib")
	runGit(t, app, "commit", "-q", "-m", "submodule")

	appGit := bare("app.git")
	runGit(t, app, "push", "-q", appGit, "main", "feature", "with-sub", "v1", "pr-head^{commit}:refs/pull/7/head")
	runGit(t, appGit, "symbolic-ref", "HEAD", "refs/heads/main")
	return f
}

// mainTree is the checkout of main, in treeOf's notation.
func mainTree(dockerfile string) map[string]string {
	return map[string]string{
		"Dockerfile":        "file 0644 " + dockerfile,
		"run.sh":            "file 0755 #!/bin/sh\n",
		"link":              "symlink run.sh",
		"docker":            "dir 0755",
		"docker/Dockerfile": "file 0644 FROM scratch\n",
	}
}

func with(base map[string]string, extra map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startGitDaemon serves f.base over git:// on loopback and stops the
// daemon, by its PID, when the test ends.
func startGitDaemon(t *testing.T, f *gitFixture) string {
	t.Helper()
	port := freePort(t)
	// The daemon binary itself, not "git daemon": the git wrapper would
	// run it as a child that outlives a kill of the wrapper's PID.
	execPath := runGit(t, f.base, "--exec-path")
	cmd := exec.Command(filepath.Join(execPath, "git-daemon"), "--reuseaddr", "--export-all", "--informative-errors",
		"--base-path="+f.base, "--listen=127.0.0.1", fmt.Sprintf("--port=%d", port), f.base)
	cmd.Env = gitEnv()
	// Its own process group, so that the per-connection children it forks
	// are stopped with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting git daemon: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("git daemon did not listen on %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestGitDaemon(t *testing.T) {
	f := newGitFixture(t)
	addr := startGitDaemon(t, f)
	env := envMap(map[string]string{"GIT_PULL_METHOD": "git"})
	repo := "git://" + addr + "/app.git"

	for _, tc := range []struct {
		name    string
		url     string
		git     GitOptions
		subPath string
		want    map[string]string
		check   func(t *testing.T, dir string)
	}{
		{name: "default branch", url: repo, want: mainTree("v2\n")},
		{name: "branch by short name", url: repo + "#feature", want: with(mainTree("v2\n"), map[string]string{"feature.txt": "file 0644 feature\n"})},
		{name: "branch by full ref", url: repo + "#refs/heads/feature", want: with(mainTree("v2\n"), map[string]string{"feature.txt": "file 0644 feature\n"})},
		{name: "--git branch=", url: repo, git: GitOptions{Branch: "feature", SingleBranch: true}, want: with(mainTree("v2\n"), map[string]string{"feature.txt": "file 0644 feature\n"}),
			check: func(t *testing.T, dir string) {
				r, err := git.PlainOpen(dir)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := r.Reference(plumbing.NewRemoteReferenceName("origin", "main"), false); err == nil {
					t.Error("single-branch clone also fetched main")
				}
			}},
		{name: "annotated tag", url: repo + "#v1", want: mainTree("v1\n")},
		{name: "tag by full ref", url: repo + "#refs/tags/v1", want: mainTree("v1\n")},
		{name: "commit", url: repo + "#" + f.first, want: mainTree("v1\n")},
		{name: "short commit", url: repo + "#" + f.first[:10], want: mainTree("v1\n")},
		{name: "ref then commit", url: repo + "#refs/heads/main#" + f.first, want: mainTree("v1\n")},
		{name: "pull request ref", url: repo + "#refs/pull/7/head", want: with(mainTree("v2\n"), map[string]string{"pr.txt": "file 0644 pull request\n"})},
		{name: "ref:dir fragment", url: repo + "#main:docker", want: map[string]string{"Dockerfile": "file 0644 FROM scratch\n"}},
		{name: "sub-path", url: repo + "#v1", subPath: "docker", want: map[string]string{"Dockerfile": "file 0644 FROM scratch\n"}},
		{name: "shallow", url: repo, git: GitOptions{Depth: 1}, want: mainTree("v2\n"),
			check: func(t *testing.T, dir string) {
				r, _ := git.PlainOpen(dir)
				head, _ := r.Head()
				c, err := r.CommitObject(head.Hash())
				if err != nil {
					t.Fatal(err)
				}
				if _, err := c.Parent(0); err == nil {
					t.Error("depth=1 fetched the parent commit too")
				}
				if _, err := os.Stat(filepath.Join(dir, ".git/shallow")); err != nil {
					t.Errorf("no .git/shallow: %v", err)
				}
			}},
		{name: "shallow, older commit by hash", url: repo + "#main#" + f.first, git: GitOptions{Depth: 1}, want: mainTree("v1\n")},
		{name: "submodules not asked for", url: repo + "#with-sub", want: with(mainTree("v2\n"), map[string]string{
			".gitmodules": "file 0644 [submodule \"lib\"]\n\tpath = lib\n\turl = ../lib.git\n", "lib": "dir 0755"})},
		{name: "submodules, recursive", url: repo + "#with-sub", git: GitOptions{RecurseSubmodules: true}, want: with(mainTree("v2\n"), map[string]string{
			".gitmodules":           "file 0644 [submodule \"lib\"]\n\tpath = lib\n\turl = ../lib.git\n",
			"lib":                   "dir 0755",
			"lib/lib.txt":           "file 0644 library\n",
			"lib/.gitmodules":       "file 0644 [submodule \"nested\"]\n\tpath = nested\n\turl = ../nested.git\n",
			"lib/nested":            "dir 0755",
			"lib/nested/nested.txt": "file 0644 deep\n",
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, cleanup, err := Prepare(context.Background(), tc.url, t.TempDir(), Options{Env: env, Git: tc.git, SubPath: tc.subPath})
			if err != nil {
				t.Fatal(err)
			}
			defer cleanup()
			assertTree(t, dir, tc.want)
			if tc.check != nil {
				tc.check(t, dir)
			}
		})
	}

	for _, tc := range []struct {
		name, url string
		git       GitOptions
		max       int64
		want      error
		msg       string
	}{
		{name: "unknown branch", url: repo + "#nope", want: ErrBadRef, msg: `"nope" is not a branch, tag or ref`},
		{name: "unknown --git branch", url: repo, git: GitOptions{Branch: "nope"}, want: ErrBadRef, msg: "feature, main"},
		{name: "unknown commit", url: repo + "#main#" + strings.Repeat("ab", 20), want: ErrBadRef, msg: "commit abab"},
		{name: "unknown repository", url: "git://" + addr + "/missing.git", want: ErrNotFound, msg: "git://" + addr + "/missing.git"},
		{name: "over the size cap", url: repo, max: 1024, want: ErrTooLarge, msg: "1024-byte limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			_, _, err := Prepare(context.Background(), tc.url, work, Options{Env: env, Git: tc.git, MaxSize: tc.max})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tc.want, tc.msg)
			}
			if ents, _ := os.ReadDir(work); len(ents) != 0 {
				t.Errorf("a failed clone left %v in the work dir", ents)
			}
		})
	}
}

// startGitHTTP serves f.base with git's smart-HTTP backend over TLS,
// accepting alice:wonderland as basic auth, or the token as the user
// name (GitHub's form) or as the password of any user (GitLab's).
func startGitHTTP(t *testing.T, f *gitFixture, token string) *httptest.Server {
	t.Helper()
	execPath := strings.TrimSpace(runGit(t, f.base, "--exec-path"))
	backend := &cgi.Handler{
		Path: filepath.Join(execPath, "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + f.base, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1"},
		// "Not a git repository" for the missing-repository case.
		Stderr: io.Discard,
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || !(u == "alice" && p == "wonderland" || u == token && p == "" || p == token) {
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	// The "untrusted certificate" case makes the server log a handshake
	// error; keep the test output for real failures.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestGitSmartHTTP(t *testing.T) {
	f := newGitFixture(t)
	const token = "glpat-0123456789"
	srv := startGitHTTP(t, f, token)
	host := strings.TrimPrefix(srv.URL, "https://")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	insecure := GitOptions{InsecureSkipTLS: true}

	for _, tc := range []struct {
		name string
		url  string
		env  map[string]string
		git  GitOptions
		want error
		msg  string
	}{
		{name: "username and password", url: srv.URL + "/app.git#v1", env: map[string]string{"GIT_USERNAME": "alice", "GIT_PASSWORD": "wonderland"}, git: insecure},
		{name: "token alone", url: srv.URL + "/app.git#v1", env: map[string]string{"GIT_TOKEN": token}, git: insecure},
		{name: "token with user name", url: srv.URL + "/app.git#v1", env: map[string]string{"GIT_USERNAME": "oauth2", "GIT_TOKEN": token}, git: insecure},
		{name: "credentials in the URL", url: "https://alice:wonderland@" + host + "/app.git#v1", git: insecure},
		{name: "trusted CA, no skip", url: srv.URL + "/app.git#v1", env: map[string]string{"GIT_TOKEN": token, "GIT_SSL_CAINFO": caFile}},
		{name: "untrusted certificate", url: srv.URL + "/app.git", env: map[string]string{"GIT_TOKEN": token}, msg: "insecure-skip-tls"},
		{name: "no credentials", url: srv.URL + "/app.git", git: insecure, want: ErrAuth, msg: "GIT_TOKEN"},
		{name: "wrong password", url: srv.URL + "/app.git", env: map[string]string{"GIT_USERNAME": "alice", "GIT_PASSWORD": "queen"}, git: insecure, want: ErrAuth, msg: srv.URL + "/app.git"},
		{name: "missing repository", url: srv.URL + "/missing.git", env: map[string]string{"GIT_TOKEN": token}, git: insecure, want: ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, cleanup, err := Prepare(context.Background(), tc.url, t.TempDir(), Options{Env: envMap(tc.env), Git: tc.git})
			if tc.want != nil || tc.msg != "" {
				if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.msg) {
					t.Fatalf("err = %v, want %v mentioning %q", err, tc.want, tc.msg)
				}
				for _, secret := range []string{"wonderland", "queen", token} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error leaks a credential: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer cleanup()
			assertTree(t, dir, mainTree("v1\n"))
			cfg, err := os.ReadFile(filepath.Join(dir, ".git/config"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(cfg), "wonderland") || strings.Contains(string(cfg), token) {
				t.Errorf(".git/config in the context holds a credential:\n%s", cfg)
			}
		})
	}
}
