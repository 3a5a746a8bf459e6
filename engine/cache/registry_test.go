package cache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/logs"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway-build/slipway/e2e/harness"
	"github.com/slipway-build/slipway/engine/registry"
)

func startRegistry(t *testing.T) *harness.Registry {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the distribution registry; run without -short")
	}
	return harness.StartRegistry(t)
}

func testKey(s string) Key {
	return BaseKey(v1.Hash{}, v1.Platform{OS: "linux", Architecture: "amd64"}).Next(StepInput{Instruction: s})
}

func newLayer(t *testing.T) v1.Layer {
	t.Helper()
	l, err := random.Layer(4096, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func readAll(t *testing.T, l v1.Layer) []byte {
	t.Helper()
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// blobData is where the distribution registry keeps a blob's bytes.
func blobData(reg *harness.Registry, h v1.Hash) string {
	return filepath.Join(reg.Dir, "storage", "docker", "registry", "v2", "blobs", h.Algorithm, h.Hex[:2], h.Hex, "data")
}

func TestRegistryStoreRoundTrip(t *testing.T) {
	reg := startRegistry(t)
	ctx := context.Background()
	store := NewRegistryStore(reg.Host+"/app/cache", reg.Client(), time.Hour)
	layer := newLayer(t)
	tests := []struct {
		name  string
		entry *Entry
	}{
		{"with a layer", &Entry{Layer: layer, CreatedBy: "RUN make", Created: time.Now().Truncate(time.Second)}},
		{"without a layer", &Entry{CreatedBy: "RUN true", Created: time.Now().Truncate(time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := testKey(tt.name)
			if e, err := store.Get(ctx, k); err != nil || e != nil {
				t.Fatalf("before Put: Get = %v, %v; want a miss", e, err)
			}
			if err := store.Put(ctx, k, tt.entry); err != nil {
				t.Fatal(err)
			}
			got, err := store.Get(ctx, k)
			if err != nil || got == nil {
				t.Fatalf("after Put: Get = %v, %v; want a hit", got, err)
			}
			if got.CreatedBy != tt.entry.CreatedBy || !got.Created.Equal(tt.entry.Created) {
				t.Errorf("got CreatedBy %q Created %v, want %q %v", got.CreatedBy, got.Created, tt.entry.CreatedBy, tt.entry.Created)
			}
			if tt.entry.Layer == nil {
				if got.Layer != nil {
					t.Errorf("got a layer for an entry without one")
				}
				return
			}
			for _, f := range []func(v1.Layer) (v1.Hash, error){v1.Layer.Digest, v1.Layer.DiffID} {
				want, _ := f(tt.entry.Layer)
				if have, err := f(got.Layer); err != nil || have != want {
					t.Errorf("got %v (%v), want %v", have, err, want)
				}
			}
			if !bytes.Equal(readAll(t, got.Layer), readAll(t, tt.entry.Layer)) {
				t.Error("cached layer content differs from the stored one")
			}
		})
	}
}

func TestRegistryStoreTTL(t *testing.T) {
	reg := startRegistry(t)
	ctx := context.Background()
	repo := reg.Host + "/app/cache"
	k := testKey("RUN ttl")
	put := NewRegistryStore(repo, reg.Client(), time.Hour)
	// A reproducible build's history time is the epoch; the TTL still
	// counts from when the entry was written.
	if err := put.Put(ctx, k, &Entry{Layer: newLayer(t), Created: time.Unix(0, 0)}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		later time.Duration
		ttl   time.Duration
		hit   bool
	}{
		{"fresh", 30 * time.Minute, time.Hour, true},
		{"expired", 2 * time.Hour, time.Hour, false},
		{"no TTL never expires", 1000 * time.Hour, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logBuf bytes.Buffer
			store := NewRegistryStore(repo, reg.Client(), tt.ttl,
				WithClock(func() time.Time { return time.Now().Add(tt.later) }),
				WithLogger(slogTo(&logBuf)))
			e, err := store.Get(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if (e != nil) != tt.hit {
				t.Errorf("hit = %v, want %v", e != nil, tt.hit)
			}
			if !tt.hit && !strings.Contains(logBuf.String(), "expired") {
				t.Errorf("an expired entry was not logged at debug level; log: %s", logBuf.String())
			}
		})
	}
}

// A cache blob that vanished (garbage collection, a half-finished
// cleanup) must not fail a build: the entry misses or its layer fails
// with an error the builder recognises as the cache's.
func TestRegistryStoreMissingBlob(t *testing.T) {
	reg := startRegistry(t)
	ctx := context.Background()
	store := NewRegistryStore(reg.Host+"/app/cache", reg.Client(), 0)
	layer := newLayer(t)
	k := testKey("RUN missing blob")
	if err := store.Put(ctx, k, &Entry{Layer: layer, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	digest, _ := layer.Digest()
	if err := os.Remove(blobData(reg, digest)); err != nil {
		t.Fatal(err)
	}
	e, err := store.Get(ctx, k)
	if err != nil {
		if !IsCacheError(err) {
			t.Fatalf("Get error %v is not a cache error", err)
		}
		return
	}
	if e == nil {
		return
	}
	rc, err := e.Layer.Compressed()
	if err == nil {
		_, err = io.ReadAll(rc)
		rc.Close()
	}
	if err == nil {
		t.Fatal("reading a layer whose blob was deleted succeeded")
	}
	if !IsCacheError(err) {
		t.Errorf("error %v is not recognised by IsCacheError", err)
	}
	if !strings.Contains(err.Error(), digest.String()) {
		t.Errorf("error %q does not name the blob", err)
	}
}

// A damaged config is found by Get itself, which reports a cache error;
// Lookup turns it into a miss.
func TestRegistryStoreCorruptConfig(t *testing.T) {
	reg := startRegistry(t)
	ctx := context.Background()
	store := NewRegistryStore(reg.Host+"/app/cache", reg.Client(), 0)
	k := testKey("RUN corrupt config")
	if err := store.Put(ctx, k, &Entry{Layer: newLayer(t), CreatedBy: "RUN corrupt config", Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(reg.Host + "/app/cache:" + string(k))
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(reg.Client().Reference(ref, false), reg.Client().RemoteOptions(ref, false)...)
	if err != nil {
		t.Fatal(err)
	}
	cfgName, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	path := blobData(reg, cfgName)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.Replace(data, []byte("corrupt config"), []byte("CORRUPT CONFIG"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := store.Get(ctx, k)
	if err == nil || !IsCacheError(err) || e != nil {
		t.Fatalf("Get = %v, %v; want a cache error", e, err)
	}
	if got := Lookup(ctx, slog.Default(), store, []Key{k, testKey("never stored")}); got[0] != nil || got[1] != nil {
		t.Errorf("Lookup = %v, want two misses", got)
	}
}

func TestLookupKeepsOrder(t *testing.T) {
	reg := startRegistry(t)
	ctx := context.Background()
	store := NewRegistryStore(reg.Host+"/app/cache", reg.Client(), 0)
	var keys []Key
	for i := 0; i < 6; i++ {
		k := testKey(fmt.Sprintf("RUN step %d", i))
		keys = append(keys, k)
		// Every other step is cached: a miss must not stop later lookups.
		if i%2 == 1 {
			if err := store.Put(ctx, k, &Entry{CreatedBy: fmt.Sprintf("step %d", i), Created: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := Lookup(ctx, slog.Default(), store, keys)
	for i, e := range got {
		if hit := e != nil; hit != (i%2 == 1) {
			t.Errorf("step %d: hit = %v", i, hit)
		} else if hit && e.CreatedBy != fmt.Sprintf("step %d", i) {
			t.Errorf("step %d: got entry %q", i, e.CreatedBy)
		}
	}
}

func TestRegistryStoreConcurrentPuts(t *testing.T) {
	reg := startRegistry(t)
	ctx := context.Background()
	// Two stores stand for two builds sharing the cache repository.
	stores := []Store{
		NewRegistryStore(reg.Host+"/app/cache", reg.Client(), 0),
		NewRegistryStore(reg.Host+"/app/cache", reg.Client(), 0),
	}
	store := stores[0]
	shared := newLayer(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half write the same key, all share one layer: the registry
			// sees concurrent uploads of one blob and of one tag.
			k := testKey(fmt.Sprintf("RUN %d", i%4))
			errs[i] = stores[i%2].Put(ctx, k, &Entry{Layer: shared, CreatedBy: "same", Created: time.Now()})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Put %d: %v", i, err)
		}
	}
	want, _ := shared.Digest()
	for i := 0; i < 4; i++ {
		e, err := store.Get(ctx, testKey(fmt.Sprintf("RUN %d", i)))
		if err != nil || e == nil {
			t.Fatalf("Get %d = %v, %v", i, e, err)
		}
		if got, _ := e.Layer.Digest(); got != want {
			t.Errorf("entry %d holds %s, want %s", i, got, want)
		}
	}
}

// Put mounts blobs the registry already has instead of uploading them:
// a layer from another cache entry, or one in the WithMountFrom repo.
func TestRegistryStorePutMounts(t *testing.T) {
	reg := startRegistry(t)
	ctx := context.Background()
	var progress bytes.Buffer
	var mu sync.Mutex
	logs.Progress = log.New(lockedWriter{&mu, &progress}, "", 0)
	t.Cleanup(func() { logs.Progress = log.New(io.Discard, "", 0) })

	first := NewRegistryStore(reg.Host+"/one/cache", reg.Client(), 0)
	layer := newLayer(t)
	digest, _ := layer.Digest()
	if err := first.Put(ctx, testKey("a"), &Entry{Layer: layer, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	hit, err := first.Get(ctx, testKey("a"))
	if err != nil || hit == nil {
		t.Fatalf("Get = %v, %v", hit, err)
	}
	mu.Lock()
	progress.Reset()
	mu.Unlock()
	second := NewRegistryStore(reg.Host+"/two/cache", reg.Client(), 0)
	if err := second.Put(ctx, testKey("a"), hit); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	out := progress.String()
	mu.Unlock()
	if !strings.Contains(out, "mounted blob: "+digest.String()) {
		t.Errorf("the cached layer was not mounted into the second repository; progress log:\n%s", out)
	}

	// A layer the builder made itself (not a remote layer) is mounted from
	// the destination repository, which the main push already filled.
	base := harness.Busybox(t, reg)
	baseImg, err := reg.Client().Pull(ctx, base, v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	layers, err := baseImg.Layers()
	if err != nil {
		t.Fatal(err)
	}
	local := struct{ v1.Layer }{layers[0]} // hides that it is remote
	baseDigest, _ := local.Digest()
	mu.Lock()
	progress.Reset()
	mu.Unlock()
	baseRef, err := name.ParseReference(base)
	if err != nil {
		t.Fatal(err)
	}
	third := NewRegistryStore(reg.Host+"/three/cache", reg.Client(), 0, WithMountFrom(baseRef.Context().Name()))
	if err := third.Put(ctx, testKey("b"), &Entry{Layer: local, Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	out = progress.String()
	mu.Unlock()
	if !strings.Contains(out, "mounted blob: "+baseDigest.String()) {
		t.Errorf("the layer was not mounted from the WithMountFrom repository; progress log:\n%s", out)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestDefaultRepo(t *testing.T) {
	tests := []struct {
		dest, want string
		err        bool
	}{
		{"127.0.0.1:5000/app:v1", "127.0.0.1:5000/app/cache", false},
		{"127.0.0.1:5000/team/app@sha256:" + strings.Repeat("a", 64), "127.0.0.1:5000/team/app/cache", false},
		{"registry.example/app", "registry.example/app/cache", false},
		{"app:v1", "index.docker.io/library/app/cache", false},
		{"UPPER/app", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.dest, func(t *testing.T) {
			got, err := DefaultRepo(tt.dest)
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("DefaultRepo(%q) = %q, %v; want %q, error %v", tt.dest, got, err, tt.want, tt.err)
			}
		})
	}
}

// requestLog is a loopback reverse proxy in front of a registry that
// records every request, to count what a lookup costs.
type requestLog struct {
	mu   sync.Mutex
	reqs []string
	host string
}

func (l *requestLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.reqs
	l.reqs = nil
	return out
}

func countingProxy(t *testing.T, reg *harness.Registry) *requestLog {
	t.Helper()
	target, err := url.Parse("http://" + reg.Host)
	if err != nil {
		t.Fatal(err)
	}
	l := &requestLog{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.reqs = append(l.reqs, r.Method+" "+r.URL.Path)
		l.mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	l.host = strings.TrimPrefix(srv.URL, "http://")
	return l
}

// A lookup is one manifest and one config request: the layer is not
// fetched, and the connection and token are reused across lookups.
func TestRegistryStoreGetIsCheap(t *testing.T) {
	reg := startRegistry(t)
	ctx := context.Background()
	requests := countingProxy(t, reg)
	client := registry.New(registry.Options{InsecureRegistries: []string{requests.host}})
	store := NewRegistryStore(requests.host+"/app/cache", client, time.Hour)
	hitKey, missKey := testKey("RUN hit"), testKey("RUN miss")
	if err := store.Put(ctx, hitKey, &Entry{Layer: newLayer(t), Created: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(ctx, hitKey); err != nil { // the first one also pings /v2/
		t.Fatal(err)
	}
	requests.take()
	for i := 0; i < 2; i++ {
		e, err := store.Get(ctx, hitKey)
		if err != nil || e == nil {
			t.Fatalf("Get = %v, %v", e, err)
		}
		got := requests.take()
		if len(got) != 2 || !strings.HasPrefix(got[0], "GET /v2/app/cache/manifests/"+string(hitKey)) || !strings.HasPrefix(got[1], "GET /v2/app/cache/blobs/sha256:") {
			t.Errorf("a hit made requests %q, want the manifest GET and the config GET", got)
		}
	}
	if e, err := store.Get(ctx, missKey); err != nil || e != nil {
		t.Fatalf("Get = %v, %v; want a miss", e, err)
	}
	if got := requests.take(); len(got) != 1 {
		t.Errorf("a miss made requests %q, want the manifest GET only", got)
	}
}
