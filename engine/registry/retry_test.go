package registry

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
)

// flakyRegistry is go-containerregistry's in-process registry behind a
// handler that answers the first failures manifest PUTs with status.
func flakyRegistry(t *testing.T, failures int32, status int) (host string, manifestPuts *atomic.Int32) {
	t.Helper()
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	var puts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
			if n := puts.Add(1); n <= failures {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				code := "UNAVAILABLE"
				if status < 500 {
					code = "DENIED"
				}
				_, _ = w.Write([]byte(`{"errors":[{"code":"` + code + `","message":"injected failure"}]}`))
				return
			}
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), &puts
}

func TestPushRetry(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	img, err := random.Image(1024, 1)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		failures  int32
		status    int
		pushRetry int
		wantErr   bool
		wantPuts  int32
	}{
		// go-containerregistry makes 3 attempts per push for 5xx; each
		// --push-retry adds a whole push.
		{"transient absorbed by transport retry", 2, http.StatusServiceUnavailable, 0, false, 3},
		{"transient beyond transport retry fails without push-retry", 4, http.StatusServiceUnavailable, 0, true, 3},
		{"push-retry recovers", 4, http.StatusServiceUnavailable, 2, false, 5},
		{"permanent error is not retried", 100, http.StatusForbidden, 5, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, puts := flakyRegistry(t, tt.failures, tt.status)
			c := New(Options{InsecureRegistries: []string{host}, PushRetry: tt.pushRetry, RetryDelay: time.Millisecond})
			ref, err := name.NewTag(host + "/retry/app:v1")
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Push(context.Background(), img, ref)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Push error = %v, wantErr %v", err, tt.wantErr)
			}
			if got := puts.Load(); got != tt.wantPuts {
				t.Errorf("manifest PUTs = %d, want %d", got, tt.wantPuts)
			}
		})
	}
}

func TestImageDownloadRetry(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	var gets atomic.Int32
	var failing atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/") && failing.Load() {
			if gets.Add(1) <= 4 {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
		}
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	img, _ := random.Image(1024, 1)
	c := New(Options{InsecureRegistries: []string{host}, ImageDownloadRetry: 2, RetryDelay: time.Millisecond})
	ref, _ := name.NewTag(host + "/dl/app:v1")
	if _, err := c.Push(context.Background(), img, ref); err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	if _, err := c.Pull(context.Background(), ref.String(), v1.Platform{}); err != nil {
		t.Fatalf("Pull with --image-download-retry 2 after 4 failures: %v", err)
	}
	if got := gets.Load(); got != 5 {
		t.Errorf("manifest GETs = %d, want 5", got)
	}
}

// syncBuffer is a log sink shared by the transfer goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestProgressLogging(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	var logs syncBuffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(old)
	oldInterval := progressInterval
	progressInterval = 0
	defer func() { progressInterval = oldInterval }()

	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	// Random bytes do not compress: the blob stays above the threshold.
	img, err := random.Image(largeBlob+(1<<20), 1)
	if err != nil {
		t.Fatal(err)
	}
	c := New(Options{InsecureRegistries: []string{host}})
	ref, _ := name.NewTag(host + "/big/app:v1")
	if _, err := c.Push(context.Background(), img, ref); err != nil {
		t.Fatal(err)
	}
	pulled, err := c.Pull(context.Background(), ref.String(), v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := pulled.Layers()
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	var sink bytes.Buffer
	if _, err := sink.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	out := logs.String()
	for _, want := range []string{`msg="Uploading a blob to ` + ref.Context().Name() + `" progress=`, `msg="Downloading sha256:`, "MiB of 17.0 MiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
}
