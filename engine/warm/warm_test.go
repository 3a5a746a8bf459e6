package warm

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/slipway-build/slipway/e2e/harness"
	"github.com/slipway-build/slipway/engine/build"
	"github.com/slipway-build/slipway/engine/cache"
	"github.com/slipway-build/slipway/engine/run"
)

func TestDockerfileImages(t *testing.T) {
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := v1.Platform{OS: "linux", Architecture: "arm64"}
	tests := []struct {
		name       string
		dockerfile string
		args       map[string]string
		target     string
		platform   v1.Platform
		want       []Image
	}{
		{
			name:       "single stage",
			dockerfile: "FROM r.example/base:1\nRUN true\n",
			platform:   amd64,
			want:       []Image{{"r.example/base:1", amd64}},
		},
		{
			name: "build args in FROM, scratch and stage references skipped",
			dockerfile: "ARG TAG=1\nFROM r.example/golang:${TAG} AS build\nRUN make\n" +
				"FROM build AS test\nRUN make test\n" +
				"FROM scratch\nCOPY --from=build /out /out\nCOPY --from=r.example/certs:2 /etc/ssl /etc/ssl\n",
			args:     map[string]string{"TAG": "1.22"},
			platform: amd64,
			want:     []Image{{"r.example/golang:1.22", amd64}, {"r.example/certs:2", amd64}},
		},
		{
			name:       "unused stages are not warmed",
			dockerfile: "FROM r.example/unused:1 AS unused\nFROM r.example/base:1 AS final\n",
			platform:   amd64,
			want:       []Image{{"r.example/base:1", amd64}},
		},
		{
			name:       "target picks the stages",
			dockerfile: "FROM r.example/a:1 AS a\nFROM r.example/b:1 AS b\n",
			target:     "a",
			platform:   amd64,
			want:       []Image{{"r.example/a:1", amd64}},
		},
		{
			name:       "FROM --platform wins over the target platform",
			dockerfile: "FROM --platform=linux/arm64 r.example/tool:1 AS tool\nFROM r.example/base:1\nCOPY --from=tool /t /t\n",
			platform:   amd64,
			want:       []Image{{"r.example/tool:1", arm64}, {"r.example/base:1", amd64}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "Dockerfile")
			if err := os.WriteFile(path, []byte(tt.dockerfile), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := DockerfileImages(path, tt.args, tt.target, tt.platform)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWarmErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(bad, []byte("FROM a\nNOTANINSTRUCTION x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"nothing to warm", Options{CacheDir: dir}, "give --image or --dockerfile"},
		{"no cache dir", Options{Images: []string{"a"}}, "--cache-dir"},
		{"missing Dockerfile", Options{CacheDir: dir, Dockerfile: filepath.Join(dir, "nope")}, "reading --dockerfile"},
		{"bad Dockerfile", Options{CacheDir: dir, Dockerfile: bad}, "Dockerfile:2"},
		{"bad platform", Options{CacheDir: dir, Images: []string{"a"}, Platform: "linux"}, "--custom-platform"},
		{"bad build arg", Options{CacheDir: dir, Dockerfile: bad, BuildArgs: []string{"=x"}}, "build-arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Warm(context.Background(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

type fixture struct {
	reg  *harness.Registry
	base string
	dir  string
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the distribution registry; run without -short")
	}
	reg := harness.StartRegistry(t)
	return fixture{reg: reg, base: harness.Busybox(t, reg), dir: t.TempDir()}
}

// warm runs the warmer and returns its log.
func (f fixture) warm(t *testing.T, opts Options) string {
	t.Helper()
	var buf bytes.Buffer
	opts.Log = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Registry = f.reg.ClientOptions()
	if opts.CacheDir == "" {
		opts.CacheDir = f.dir
	}
	if err := Warm(context.Background(), opts); err != nil {
		t.Fatalf("Warm: %v\nlog:\n%s", err, buf.String())
	}
	return buf.String()
}

func cachedAt(t *testing.T, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	index, err := v1.ParseIndexManifest(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range index.Manifests {
		out = append(out, d.Annotations[cache.AnnotationCachedAt])
	}
	return strings.Join(out, ",")
}

func TestWarmTwiceIsANoOp(t *testing.T) {
	f := newFixture(t)
	first := f.warm(t, Options{Images: []string{f.base}, CacheTTL: time.Hour})
	if !strings.Contains(first, "Cached image "+f.base) {
		t.Fatalf("first warm did not cache the image; log:\n%s", first)
	}
	stamp := cachedAt(t, f.dir)
	second := f.warm(t, Options{Images: []string{f.base}, CacheTTL: time.Hour})
	if !strings.Contains(second, "already cached") || strings.Contains(second, "Cached image") {
		t.Errorf("second warm was not a no-op; log:\n%s", second)
	}
	if cachedAt(t, f.dir) != stamp {
		t.Error("second warm rewrote the index entry")
	}
	forced := f.warm(t, Options{Images: []string{f.base}, CacheTTL: time.Hour, Force: true})
	if !strings.Contains(forced, "Cached image "+f.base) {
		t.Errorf("--force did not pull again; log:\n%s", forced)
	}
	if err := cache.NewLayoutCache(f.dir, 0).Validate(); err != nil {
		t.Error(err)
	}
}

func TestWarmTTLExpires(t *testing.T) {
	f := newFixture(t)
	f.warm(t, Options{Images: []string{f.base}, CacheTTL: time.Nanosecond})
	stamp := cachedAt(t, f.dir)
	time.Sleep(time.Millisecond)
	second := f.warm(t, Options{Images: []string{f.base}, CacheTTL: time.Nanosecond})
	if !strings.Contains(second, "expired") || !strings.Contains(second, "Cached image "+f.base) {
		t.Errorf("an expired image was not pulled again; log:\n%s", second)
	}
	if cachedAt(t, f.dir) == stamp {
		t.Error("the index entry of an expired image was not renewed")
	}
}

func TestWarmRepairsCorruptBlob(t *testing.T) {
	f := newFixture(t)
	f.warm(t, Options{Images: []string{f.base}})
	img, err := f.reg.Client().Pull(context.Background(), f.base, v1.Platform{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(f.dir, "blobs", "sha256", m.Layers[0].Digest.Hex)
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cache.NewLayoutCache(f.dir, 0).Validate(); err == nil {
		t.Fatal("the corruption went unnoticed by Validate")
	}
	out := f.warm(t, Options{Images: []string{f.base}})
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "corrupt") || !strings.Contains(out, "Cached image "+f.base) {
		t.Errorf("a corrupt blob was not re-pulled with a warning; log:\n%s", out)
	}
	if err := cache.NewLayoutCache(f.dir, 0).Validate(); err != nil {
		t.Errorf("layout still corrupt: %v", err)
	}
}

func TestWarmDockerfileAndPlatform(t *testing.T) {
	f := newFixture(t)
	index := harness.BusyboxIndex(t, f.reg)
	repo := strings.TrimSuffix(index, ":latest")
	df := filepath.Join(t.TempDir(), "Dockerfile")
	content := "ARG BASE\nFROM ${BASE}\nFROM --platform=linux/arm64/v8 " + repo + ":latest AS arm\nFROM " + repo + ":latest\nCOPY --from=arm /ARCH /ARCH\n"
	if err := os.WriteFile(df, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	// The first stage is unused: only the index is needed, for two
	// platforms.
	f.warm(t, Options{Dockerfile: df, BuildArgs: []string{"BASE=" + f.base}, Platform: "linux/amd64"})
	c := cache.NewLayoutCache(f.dir, 0)
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64", Variant: "v8"}} {
		if _, ok, err := c.Get(index, p); !ok || err != nil {
			t.Errorf("%s for %s not cached: %v", index, p.String(), err)
		}
	}
	if _, ok, _ := c.Get(f.base, v1.Platform{}); ok {
		t.Error("the image of an unused stage was warmed")
	}
}

// TestConcurrentWarmersAndReaders runs warmers that rewrite the same
// entries and readers that use them at once, on one cache directory, then
// checks that every reader got a correct image and the layout validates.
// Builds (slipway-build --cache-dir) join by adding workers.
// 2 warmers, 2 readers and 4 builds share one cache directory and one
// cache repository at once.
func TestConcurrentWarmersAndReaders(t *testing.T) {
	f := newFixture(t)
	index := harness.BusyboxIndex(t, f.reg)
	images := []string{f.base, index}
	// Seed one image so that readers hit while warmers rewrite it.
	f.warm(t, Options{Images: images[:1]})
	want := map[string]v1.Hash{}
	for _, ref := range images {
		img, err := f.reg.Client().Pull(context.Background(), ref, v1.Platform{})
		if err != nil {
			t.Fatal(err)
		}
		want[ref], _ = img.Digest()
	}
	ctx := context.Background()
	const rounds = 3
	warmer := func(i int) func() error {
		return func() error {
			for r := 0; r < rounds; r++ {
				err := Warm(ctx, Options{Images: images, CacheDir: f.dir, Force: true, Registry: f.reg.ClientOptions(),
					Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
				if err != nil {
					return fmt.Errorf("warmer %d: %w", i, err)
				}
			}
			return nil
		}
	}
	reader := func(i int) func() error {
		return func() error {
			src := cache.CachedSource{Cache: cache.NewLayoutCache(f.dir, time.Hour), Upstream: f.reg.Client()}
			for r := 0; r < rounds*2; r++ {
				ref := images[(i+r)%len(images)]
				img, err := src.Pull(ctx, ref, v1.Platform{})
				if err != nil {
					return fmt.Errorf("reader %d: %w", i, err)
				}
				if got, _ := img.Digest(); got != want[ref] {
					return fmt.Errorf("reader %d: %s is %s, want %s", i, ref, got, want[ref])
				}
				if err := cache.Verify(img); err != nil {
					return fmt.Errorf("reader %d: %s: %w", i, ref, err)
				}
			}
			return nil
		}
	}
	// Builds read their base through the layout and share one cache
	// repository; the RUN step has the same key in all four, so they also
	// race to write the same cache entry.
	store := cache.NewRegistryStore(f.reg.Host+"/concurrent/cache", f.reg.Client(), time.Hour)
	builder := func(i int) func() error {
		return func() error {
			dir := t.TempDir()
			files := map[string]string{
				"Dockerfile": "FROM " + f.base + "\nRUN echo shared > /shared\nCOPY id.txt /id.txt\n",
				"id.txt":     fmt.Sprint(i),
			}
			for n, c := range files {
				if err := os.WriteFile(filepath.Join(dir, n), []byte(c), 0o644); err != nil {
					return err
				}
			}
			exec, err := run.New(run.Chroot)
			if err != nil {
				return err
			}
			img, err := build.Build(ctx, build.Options{
				Inputs: build.Inputs{ContextDir: dir},
				Collaborators: build.Collaborators{
					WorkDir: t.TempDir(), Output: io.Discard,
					Images:   cache.CachedSource{Cache: cache.NewLayoutCache(f.dir, time.Hour), Upstream: f.reg.Client()},
					Executor: exec, LayerCache: store,
					Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
				},
				Policy: build.Policy{CacheRunLayers: true, CacheCopyLayers: true},
			})
			if err != nil {
				return fmt.Errorf("build %d: %w", i, err)
			}
			got := map[string]string{"shared": "shared\n", "id.txt": fmt.Sprint(i)}
			rc := mutate.Extract(img)
			defer rc.Close()
			tr := tar.NewReader(rc)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					return fmt.Errorf("build %d: reading its image: %w", i, err)
				}
				if want, ok := got[h.Name]; ok {
					b, _ := io.ReadAll(tr)
					if string(b) != want {
						return fmt.Errorf("build %d: /%s is %q, want %q", i, h.Name, b, want)
					}
					delete(got, h.Name)
				}
			}
			if len(got) > 0 {
				return fmt.Errorf("build %d: missing %v", i, got)
			}
			return nil
		}
	}
	workers := []func() error{warmer(0), warmer(1), reader(0), reader(1), builder(0), builder(1), builder(2), builder(3)}
	errs := make([]error, len(workers))
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	c := cache.NewLayoutCache(f.dir, 0)
	if err := c.Validate(); err != nil {
		t.Errorf("layout does not validate after concurrent use: %v", err)
	}
	for _, ref := range images {
		if _, ok, err := c.Get(ref, v1.Platform{}); !ok || err != nil {
			t.Errorf("%s missing from the index after concurrent use: %v", ref, err)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(f.dir, "blobs", "sha256", ".tmp-*"))
	if more, _ := filepath.Glob(filepath.Join(f.dir, ".tmp-*")); len(more) > 0 {
		leftovers = append(leftovers, more...)
	}
	if len(leftovers) > 0 {
		t.Errorf("temp files left behind: %v", leftovers)
	}
}

// An image that cannot be pulled fails the step but does not keep the
// others out of the cache.
func TestWarmPartialFailure(t *testing.T) {
	f := newFixture(t)
	missing := f.reg.Host + "/no/such:image"
	var buf bytes.Buffer
	err := Warm(context.Background(), Options{
		Images: []string{missing, f.base}, CacheDir: f.dir, Registry: f.reg.ClientOptions(),
		Log: slog.New(slog.NewTextHandler(&buf, nil)),
	})
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("error = %v, want one naming %s", err, missing)
	}
	if _, ok, _ := cache.NewLayoutCache(f.dir, 0).Get(f.base, v1.Platform{}); !ok {
		t.Errorf("the good image was not cached after another failed; log:\n%s", buf.String())
	}
}
