package build

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/slipway-build/slipway/engine/cache"
	"github.com/slipway-build/slipway/engine/run"
)

// These tests build with images held in memory (memImages), a recording
// Executor and a Store in memory: they need no registry, no Debian package
// and no chroot, so they run under -short. Steps that write files set
// owners with lchown, so those need root (needsRoot says so).

// memImages is an ImageSource of images made in memory with ggcr's
// empty.Image and mutate.
type memImages map[string]v1.Image

func (m memImages) Pull(_ context.Context, ref string, _ v1.Platform) (v1.Image, error) {
	if img, ok := m[ref]; ok {
		return img, nil
	}
	return nil, fmt.Errorf("pulling %s: manifest unknown", ref)
}

// memBase is a small base image: /etc/passwd with root and app (1000),
// /etc/group, /bin and /tmp, PATH and Cmd ["sh"].
func memBase(t *testing.T) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1600000000, 0)
	for _, d := range []string{"bin/", "etc/", "tmp/"} {
		must(t, tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime}))
	}
	// In a fixed order, so that every build sees the same digest.
	for _, f := range [][2]string{
		{"etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"},
		{"etc/group", "root:x:0:\napp:x:1000:\n"},
	} {
		must(t, tw.WriteHeader(&tar.Header{Name: f[0], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(f[1])), ModTime: mtime}))
		tw.Write([]byte(f[1]))
	}
	must(t, tw.Close())
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	must(t, err)
	img, err := mutate.AppendLayers(empty.Image, l)
	must(t, err)
	cf, err := img.ConfigFile()
	must(t, err)
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.Cmd = []string{"sh"}
	img, err = mutate.ConfigFile(img, cf)
	must(t, err)
	return img
}

// recordingExecutor records every RUN instead of running it; effect, when
// set, stands in for the command, e.g. by writing under spec.Root.
type recordingExecutor struct {
	mu     sync.Mutex
	specs  []run.Spec
	effect func(run.Spec) error
}

func (r *recordingExecutor) Run(_ context.Context, spec run.Spec) error {
	r.mu.Lock()
	r.specs = append(r.specs, spec)
	r.mu.Unlock()
	if r.effect != nil {
		return r.effect(spec)
	}
	return nil
}

func (r *recordingExecutor) ran() []run.Spec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]run.Spec(nil), r.specs...)
}

// memStore is a cache.Store in memory.
type memStore struct {
	mu      sync.Mutex
	entries map[cache.Key]*cache.Entry
}

func (m *memStore) Get(_ context.Context, k cache.Key) (*cache.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.entries[k], nil
}

func (m *memStore) Put(_ context.Context, k cache.Key, e *cache.Entry) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.entries == nil {
		m.entries = map[cache.Key]*cache.Entry{}
	}
	m.entries[k] = e
	return nil
}

// memBuild builds files (a context with a Dockerfile) against memBase,
// named "base", with exec for RUN.
func memBuild(t *testing.T, exec run.Executor, files map[string]string, more ...func(*Options)) (v1.Image, error) {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(content), 0o644))
	}
	opts := Options{
		Inputs: Inputs{ContextDir: dir},
		Collaborators: Collaborators{
			WorkDir:  t.TempDir(),
			Images:   memImages{"base": memBase(t)},
			Executor: exec,
			Output:   io.Discard,
			Log:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		},
	}
	for _, m := range more {
		m(&opts)
	}
	return Build(context.Background(), opts)
}

func needsRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("writes files with their image owners (lchown), which needs root")
	}
}

// Metadata instructions only edit the config and history: no root, no
// unpacked filesystem, no RUN.
func TestMetadataInMemory(t *testing.T) {
	img, err := memBuild(t, nil, map[string]string{"Dockerfile": `FROM base AS parent
ENV A=1 B="two words"
ARG V=default
LABEL from.parent=yes
FROM parent
ENV C=${A}-x
LABEL org.example.a="b" other=c
USER app:app
EXPOSE 80 53/udp
STOPSIGNAL SIGTERM
ENTRYPOINT ["/bin/app"]
CMD ["--serve"]
ONBUILD RUN echo later
VOLUME /data
WORKDIR /
`}, func(o *Options) {
		o.BuildArgs = map[string]string{"V": "given"}
		o.Labels = map[string]string{"added": "by flag"}
	})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	must(t, err)
	c := cf.Config
	wantEnv := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "A=1", "B=two words", "C=1-x"}
	if !reflect.DeepEqual(c.Env, wantEnv) {
		t.Errorf("Env = %q, want %q", c.Env, wantEnv)
	}
	wantLabels := map[string]string{"from.parent": "yes", "org.example.a": "b", "other": "c", "added": "by flag"}
	if !reflect.DeepEqual(c.Labels, wantLabels) {
		t.Errorf("Labels = %v, want %v", c.Labels, wantLabels)
	}
	if c.User != "app:app" || c.StopSignal != "SIGTERM" || c.WorkingDir != "/" {
		t.Errorf("User %q StopSignal %q WorkingDir %q", c.User, c.StopSignal, c.WorkingDir)
	}
	if !reflect.DeepEqual(c.Entrypoint, []string{"/bin/app"}) || !reflect.DeepEqual(c.Cmd, []string{"--serve"}) {
		t.Errorf("Entrypoint %q Cmd %q", c.Entrypoint, c.Cmd)
	}
	if _, ok := c.ExposedPorts["53/udp"]; !ok || len(c.ExposedPorts) != 2 {
		t.Errorf("ExposedPorts = %v", c.ExposedPorts)
	}
	if _, ok := c.Volumes["/data"]; !ok {
		t.Errorf("Volumes = %v", c.Volumes)
	}
	if !reflect.DeepEqual(c.OnBuild, []string{"RUN echo later"}) {
		t.Errorf("OnBuild = %q", c.OnBuild)
	}
	layers, err := img.Layers()
	must(t, err)
	if len(layers) != 1 {
		t.Errorf("%d layers; metadata instructions must add none", len(layers))
	}
	for _, h := range cf.History {
		if !h.EmptyLayer && h.Comment == "slipway" {
			t.Errorf("history %q is not marked empty", h.CreatedBy)
		}
	}
	if got := cf.History[len(cf.History)-2].CreatedBy; got != "VOLUME [/data]" {
		t.Errorf("history of VOLUME = %q", got)
	}
}

// The Dockerfile's and the plan's warnings reach the build's logger at warn
// level: a mistyped --build-arg is otherwise silently ignored.
func TestWarningsAreLogged(t *testing.T) {
	var logs syncBuffer
	_, err := memBuild(t, nil, map[string]string{
		"Dockerfile": "FROM base\nARG VERSION\nENV A=a \\\n\n  B=b\n",
	}, func(o *Options) {
		o.Log = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		o.BuildArgs = map[string]string{"VERSION": "1", "TYPO": "x"}
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"build-args [TYPO] were not consumed", "Empty continuation line"} {
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), w) {
			t.Errorf("no warning mentions %q; warnings:\n%s", w, logs.String())
		}
	}
	if strings.Contains(logs.String(), "VERSION") {
		t.Errorf("the consumed build arg VERSION is warned about:\n%s", logs.String())
	}
}

// COPY and RUN against the in-memory base: the recording executor stands
// in for the command and sees its user, environment and working
// directory; the snapshot finds what it wrote.
func TestCopyAndRunInMemory(t *testing.T) {
	needsRoot(t)
	exec := &recordingExecutor{effect: func(s run.Spec) error {
		return os.WriteFile(filepath.Join(s.Root, "tmp", "ran"), []byte(strings.Join(s.Args, " ")), 0o644)
	}}
	img, err := memBuild(t, exec, map[string]string{
		"Dockerfile": `FROM base AS a
COPY first.txt /which
FROM base AS a
COPY second.txt /which
FROM base
ENV GREETING=hi
COPY --chown=app a.txt /app/
COPY --from=a /which /copied
USER app
WORKDIR /app
RUN echo $GREETING
`,
		"a.txt": "A", "first.txt": "first", "second.txt": "second",
	}, func(o *Options) { no := false; o.SkipUnusedStages = &no })
	if err != nil {
		t.Fatal(err)
	}
	fs := flatten(t, img)
	hasFile("/app/a.txt", "A", 0o644, 1000, 1000)(t, fs, nil)
	hasFile("/copied", "second", 0o644, 0, 0)(t, fs, nil)
	hasFile("/tmp/ran", "/bin/sh -c echo $GREETING", 0o644, 0, 0)(t, fs, nil)
	specs := exec.ran()
	if len(specs) != 1 {
		t.Fatalf("%d RUNs recorded, want 1", len(specs))
	}
	s := specs[0]
	if s.UID != 1000 || s.GID != 1000 || s.Dir != "/app" || !contains(s.Env, "GREETING=hi") {
		t.Errorf("RUN spec: uid %d gid %d dir %q env %q", s.UID, s.GID, s.Dir, s.Env)
	}
}

// The cache keys: a second build of the same context runs nothing; a
// changed build arg misses from the first step that reads it on.
func TestCacheKeysInMemory(t *testing.T) {
	needsRoot(t)
	store := &memStore{}
	exec := &recordingExecutor{}
	files := map[string]string{"Dockerfile": `FROM base
RUN echo deps
COPY code.txt /code.txt
ARG VERSION=1
RUN echo $VERSION
`, "code.txt": "code"}
	build := func(args map[string]string) int {
		t.Helper()
		before := len(exec.ran())
		_, err := memBuild(t, exec, files, func(o *Options) {
			o.LayerCache, o.CacheRunLayers, o.CacheCopyLayers = store, true, true
			o.BuildArgs = args
		})
		if err != nil {
			t.Fatal(err)
		}
		return len(exec.ran()) - before
	}
	if n := build(nil); n != 2 {
		t.Errorf("first build ran %d RUNs, want 2", n)
	}
	if n := build(nil); n != 0 {
		t.Errorf("the same build again ran %d RUNs, want 0", n)
	}
	if n := build(map[string]string{"VERSION": "2"}); n != 1 {
		t.Errorf("a new VERSION ran %d RUNs, want only the one that reads it", n)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
