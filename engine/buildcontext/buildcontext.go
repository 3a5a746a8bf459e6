// Package buildcontext fetches a build context into a local directory.
//
// It accepts every --context form kaniko accepts, with kaniko's syntax:
//
//	/path, dir:///path          a local directory, used in place
//	tar:///path/ctx.tar.gz      a local tarball (tar, gzip, bzip2, xz or zstd)
//	tar://stdin                 a tarball on standard input
//	https://host/ctx.tar.gz     a tarball over http(s); basic auth from the URL's user:password
//	git://host/org/repo[#REF[#COMMIT]]
//	https://host/org/repo.git[#REF[#COMMIT]]
//	ssh://git@host/org/repo.git[#REF], git@host:org/repo.git[#REF]
//	s3://bucket/key.tar.gz      a SigV4-signed GET, aws-sdk-go-v2 credentials; S3_ENDPOINT, S3_FORCE_PATH_STYLE
//	gs://bucket/key.tar.gz      the GCS JSON API, Application Default Credentials; STORAGE_EMULATOR_HOST
//	https://ACCOUNT.blob.core.windows.net/CONTAINER/BLOB   the Blob service REST API (Shared Key, SAS, anonymous)
//
// An http(s) URL whose path ends in ".git" is a git repository; any other
// http(s) URL is a tarball, except an Azure Blob host, which is read as a
// blob. This mirrors BuildKit's rule for remote contexts; kaniko itself
// only clones git:// URLs, which still work the same way here (see GitSource).
//
// Everything that is not a local directory is fetched into a fresh directory.
// Downloads are streamed straight into extraction, never held in memory, and
// capped by Options.MaxSize. Extraction is confined to the context directory.
package buildcontext

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// Source fetches a build context into a local directory.
type Source interface {
	// Fetch writes the context into dest, which exists and is empty.
	Fetch(ctx context.Context, dest string) error
	// String is the context URL with credentials removed, for logs and errors.
	String() string
}

// DefaultMaxSize caps downloads and extracted contexts when Options.MaxSize is 0.
const DefaultMaxSize int64 = 8 << 30

// Options tune how a context is resolved and fetched.
type Options struct {
	// SubPath is kaniko's --context-sub-path: the directory inside the
	// context to build from.
	SubPath string
	// Git is kaniko's --git flag, parsed by ParseGitOptions.
	Git GitOptions
	// MaxSize caps the bytes downloaded and the bytes extracted; 0 means
	// DefaultMaxSize.
	MaxSize int64
	// Stdin is read for tar://stdin.
	Stdin io.Reader
	// Env looks up environment variables (credentials, endpoints); nil
	// means os.Getenv. The cloud SDKs' own credential chains still read
	// the process environment and their usual files.
	Env func(string) string
	// HTTPClient, if set, sends the requests for http(s) tarballs, S3, GCS
	// and Azure Blob (tests use it to reach loopback servers); nil means
	// http.DefaultClient (the AWS credential chain then uses its own).
	HTTPClient *http.Client
}

func (o Options) withDefaults() Options {
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.Env == nil {
		o.Env = os.Getenv
	}
	if o.Stdin == nil {
		o.Stdin = os.Stdin
	}
	return o
}

// httpClient is HTTPClient, else http.DefaultClient. HTTPClient itself
// stays nil by default: the AWS credential chain then keeps its own client.
func (o Options) httpClient() *http.Client {
	if o.HTTPClient != nil {
		return o.HTTPClient
	}
	return http.DefaultClient
}

// Errors a caller can test for with errors.Is. Every error returned by this
// package also names the context URL (without credentials).
var (
	// ErrAuth: the server refused the credentials, or wanted some.
	ErrAuth = errors.New("authentication failed")
	// ErrNotFound: the repository, object or file does not exist.
	ErrNotFound = errors.New("not found")
	// ErrBadRef: a git branch, tag, ref or commit does not exist.
	ErrBadRef = errors.New("bad git reference")
	// ErrNotTarball: the data is not a tar archive (plain or compressed).
	ErrNotTarball = errors.New("not a tarball")
	// ErrTooLarge: the download or the extracted tree passed Options.MaxSize.
	ErrTooLarge = errors.New("context too large")
	// ErrUnsafePath: an archive entry would land outside the context directory.
	ErrUnsafePath = errors.New("unsafe path in archive")
)

// Prepare resolves a kaniko --context value and returns the local directory
// to build from, with Options.SubPath applied and checked to stay inside the
// context, and a cleanup func that removes whatever Prepare created. A plain
// path or dir:// is used in place, not copied. Everything else is fetched
// into a new temporary directory under workDir (os.TempDir() if empty).
func Prepare(ctx context.Context, contextURL string, workDir string, opts Options) (dir string, cleanup func(), err error) {
	opts = opts.withDefaults()
	noop := func() {}
	if path, ok := localPath(contextURL); ok {
		root, err := filepath.Abs(path)
		if err != nil {
			return "", nil, fmt.Errorf("build context %s: %w", path, err)
		}
		fi, err := os.Stat(root)
		if err != nil {
			return "", nil, fmt.Errorf("build context %s: %w", root, err)
		}
		if !fi.IsDir() {
			return "", nil, fmt.Errorf("build context %s is not a directory; use tar://%s for a tarball", root, root)
		}
		dir, err := applySubPath(root, opts.SubPath)
		if err != nil {
			return "", nil, fmt.Errorf("build context %s: %w", root, err)
		}
		return dir, noop, nil
	}

	src, err := New(contextURL, opts)
	if err != nil {
		return "", nil, err
	}
	if workDir == "" {
		workDir = os.TempDir()
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return "", nil, fmt.Errorf("build context %s: making the work directory %s: %w", src, workDir, err)
	}
	tmp, err := os.MkdirTemp(workDir, "context-")
	if err != nil {
		return "", nil, fmt.Errorf("build context %s: making a directory to fetch into: %w", src, err)
	}
	cleanup = func() { _ = os.RemoveAll(tmp) }
	if err := src.Fetch(ctx, tmp); err != nil {
		cleanup()
		return "", nil, err
	}
	sub := opts.SubPath
	if s, ok := src.(interface{ subDir() string }); ok && s.subDir() != "" {
		// A git URL's "#ref:dir" fragment names a directory first; the
		// --context-sub-path applies inside it.
		sub = filepath.Join(s.subDir(), sub)
	}
	dir, err = applySubPath(tmp, sub)
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("build context %s: %w", src, err)
	}
	return dir, cleanup, nil
}

// New returns the Source for a remote or archived context. Local
// directories have no Source: Prepare uses them in place.
func New(contextURL string, opts Options) (Source, error) {
	opts = opts.withDefaults()
	if isSCPGitURL(contextURL) {
		return newGitSource(contextURL, contextURL, opts)
	}
	scheme, rest, ok := strings.Cut(contextURL, "://")
	if !ok {
		return nil, fmt.Errorf("build context %s is a local directory: use Prepare, which uses it in place", contextURL)
	}
	switch strings.ToLower(scheme) {
	case "dir":
		return nil, fmt.Errorf("build context %s is a local directory: use Prepare, which uses it in place", contextURL)
	case "tar":
		if rest == "stdin" {
			return &stdinSource{r: opts.Stdin, opts: opts}, nil
		}
		return &tarFileSource{path: rest, opts: opts}, nil
	case "git":
		return newGitSource(contextURL, pullMethod(opts.Env)+"://"+rest, opts)
	case "ssh":
		return newGitSource(contextURL, contextURL, opts)
	case "http", "https":
		u, err := url.Parse(contextURL)
		if err != nil {
			return nil, fmt.Errorf("build context %s: %w", redactURL(contextURL), err)
		}
		if isAzureBlobHost(u.Hostname()) {
			return newAzureSource(u, opts)
		}
		if strings.HasSuffix(u.Path, ".git") {
			return newGitSource(contextURL, contextURL, opts)
		}
		return &httpSource{url: u, opts: opts}, nil
	case "s3":
		return newS3Source(contextURL, opts)
	case "gs":
		return newGCSSource(contextURL, opts)
	}
	return nil, fmt.Errorf("build context %s: unknown prefix %q; use a path or one of dir://, tar://, git://, ssh://, http(s)://, s3://, gs://", redactURL(contextURL), scheme+"://")
}

// localPath reports whether a context value names a local directory.
func localPath(contextURL string) (string, bool) {
	if rest, ok := strings.CutPrefix(contextURL, "dir://"); ok {
		return rest, true
	}
	if isSCPGitURL(contextURL) || strings.Contains(contextURL, "://") {
		return "", false
	}
	return contextURL, true
}

// applySubPath joins sub to root and refuses a result that leaves root,
// also through symlinks inside the context.
func applySubPath(root, sub string) (string, error) {
	if sub == "" || sub == "." {
		return root, nil
	}
	if filepath.IsAbs(sub) {
		return "", fmt.Errorf("--context-sub-path %q must be relative to the context", sub)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(filepath.Join(root, sub))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("--context-sub-path %q does not exist in the context", sub)
		}
		return "", fmt.Errorf("--context-sub-path %q: %w", sub, err)
	}
	if !within(realRoot, real) {
		return "", fmt.Errorf("--context-sub-path %q leaves the context", sub)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("--context-sub-path %q is not a directory", sub)
	}
	return real, nil
}

func within(root, p string) bool {
	rel, err := filepath.Rel(root, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// redactURL removes credentials from a URL for logs and errors: the
// userinfo, and the values of query parameters that carry signatures or
// tokens (pre-signed S3/GCS URLs, Azure SAS).
func redactURL(raw string) string {
	// The fragment (a git ref) is kept verbatim: url.URL would re-escape
	// kaniko's second "#".
	raw, frag, hasFrag := strings.Cut(raw, "#")
	if hasFrag {
		return redactURL(raw) + "#" + frag
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		if isSCPGitURL(raw) {
			return raw
		}
		// Unparseable: drop anything that looks like userinfo.
		if i := strings.Index(raw, "@"); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				return raw[:j+3] + "REDACTED@" + raw[i+1:]
			}
		}
		return raw
	}
	if u.User != nil {
		if _, hasPassword := u.User.Password(); hasPassword || u.Scheme == "http" || u.Scheme == "https" {
			// Over http a lone user name is usually a token.
			u.User = nil
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			if isSecretParam(k) {
				q.Set(k, "REDACTED")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

func isSecretParam(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"sig", "signature", "token", "credential", "key", "password", "secret"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}
