package registry

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// largeBlob is the size from which transfers are worth reporting; smaller
// ones finish before a person would wonder whether the build is stuck.
const largeBlob = 16 << 20

// progressInterval bounds how often progress is logged, so a slow pull
// shows it is alive without flooding CI logs.
var progressInterval = 5 * time.Second

// progressTransport reports downloads of large blobs. Pulls are lazy in
// go-containerregistry (layers are fetched when read), so the transport is
// the one place that sees every blob download, whoever triggers it.
type progressTransport struct {
	inner http.RoundTripper
	log   *slog.Logger
}

func (p *progressTransport) RoundTrip(req *http.Request) (*http.Response, error) {
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

// logPushProgress drains go-containerregistry's progress updates for one
// push and logs them at most every progressInterval, only for large pushes.
// The returned stop must be called once the push returned: the channel is
// closed by go-containerregistry only if it got as far as using it.
func logPushProgress(log *slog.Logger, dest string, updates <-chan v1.Update) (stop func()) {
	var wg sync.WaitGroup
	quit := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := time.Now()
		for {
			var u v1.Update
			var ok bool
			select {
			case u, ok = <-updates:
			case <-quit:
				return
			}
			if !ok {
				return
			}
			if u.Error != nil || u.Total < largeBlob {
				continue
			}
			if now := time.Now(); now.Sub(last) >= progressInterval {
				last = now
				log.Info("Pushing "+dest, "progress", fmt.Sprintf("%s of %s", size(u.Complete), size(u.Total)))
			}
		}
	}()
	return func() { close(quit); wg.Wait() }
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
