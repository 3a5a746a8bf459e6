package registry

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// largeBlob is the size from which transfers are worth reporting; smaller
// ones finish before a person would wonder whether the build is stuck.
const largeBlob = 16 << 20

// progressInterval bounds how often progress is logged, so a slow pull
// shows it is alive without flooding CI logs.
var progressInterval = 5 * time.Second

// progressTransport reports transfers of large blobs, both ways. Pulls are
// lazy in go-containerregistry (layers are fetched when read) and a layer
// may go up while the build runs or in the push at the end, so the
// transport is the one place that sees every blob transfer, whoever
// starts it.
type progressTransport struct {
	inner http.RoundTripper
	log   *slog.Logger
}

func (p *progressTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil && req.ContentLength >= largeBlob && (req.Method == http.MethodPatch || req.Method == http.MethodPut) {
		// A RoundTripper must not change the request it is given.
		up := req.Clone(req.Context())
		up.Body = &progressBody{
			ReadCloser: req.Body,
			what:       "Uploading a blob to " + req.URL.Host + uploadRepository(req.URL.Path),
			log:        p.log,
			total:      req.ContentLength,
			last:       time.Now(),
		}
		return p.inner.RoundTrip(up)
	}
	resp, err := p.inner.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || resp.StatusCode != http.StatusOK || resp.ContentLength < largeBlob {
		return resp, err
	}
	blob := req.URL.Path
	if i := strings.LastIndex(blob, "/blobs/"); i >= 0 {
		blob = blob[i+len("/blobs/"):]
	} else {
		// A redirect to blob storage: the path names no digest.
		blob = req.URL.Host
	}
	resp.Body = &progressBody{
		ReadCloser: resp.Body,
		what:       "Downloading " + shortDigest(blob) + " from " + req.URL.Host,
		log:        p.log,
		total:      resp.ContentLength,
		last:       time.Now(),
	}
	return resp, nil
}

// uploadRepository is "/REPO" of an upload's path, /v2/REPO/blobs/uploads/…,
// or "" where the upload goes elsewhere (a redirect to blob storage).
func uploadRepository(p string) string {
	repo, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return ""
	}
	if i := strings.LastIndex(repo, "/blobs/uploads/"); i > 0 {
		return "/" + repo[:i]
	}
	return ""
}

type progressBody struct {
	io.ReadCloser
	what  string
	log   *slog.Logger
	total int64
	done  int64
	last  time.Time
}

func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.done += int64(n)
	if now := time.Now(); now.Sub(b.last) >= progressInterval {
		b.last = now
		b.log.Info(b.what, "progress", fmt.Sprintf("%s of %s", size(b.done), size(b.total)))
	}
	return n, err
}

func shortDigest(s string) string {
	if _, hex, ok := strings.Cut(s, ":"); ok && len(hex) > 12 {
		return s[:len(s)-len(hex)] + hex[:12]
	}
	return s
}

func size(n int64) string {
	const mib = 1 << 20
	if n < mib {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/mib)
}
