package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/slipway-build/slipway/engine/layer"
)

// check inspects a built image.
type check func(t *testing.T, fs map[string]fsEntry, cf *v1.ConfigFile)

func hasFile(p, content string, mode int64, uid, gid int) check {
	return func(t *testing.T, fs map[string]fsEntry, _ *v1.ConfigFile) {
		t.Helper()
		e, ok := fs[p]
		if !ok {
			t.Errorf("%s missing", p)
			return
		}
		if e.typ != tar.TypeReg || e.content != content || e.mode != mode || e.uid != uid || e.gid != gid {
			t.Errorf("%s = type %c content %q mode %o owner %d:%d; want file %q mode %o owner %d:%d", p, e.typ, e.content, e.mode, e.uid, e.gid, content, mode, uid, gid)
		}
	}
}

func hasDir(p string, mode int64, uid, gid int) check {
	return func(t *testing.T, fs map[string]fsEntry, _ *v1.ConfigFile) {
		t.Helper()
		e, ok := fs[p]
		if !ok || e.typ != tar.TypeDir || e.mode != mode || e.uid != uid || e.gid != gid {
			t.Errorf("%s = %+v (present %v); want dir mode %o owner %d:%d", p, e, ok, mode, uid, gid)
		}
	}
}

func hasSymlink(p, target string) check {
	return func(t *testing.T, fs map[string]fsEntry, _ *v1.ConfigFile) {
		t.Helper()
		if e := fs[p]; e.typ != tar.TypeSymlink || e.link != target {
			t.Errorf("%s = %+v; want symlink to %q", p, e, target)
		}
	}
}

func absent(paths ...string) check {
	return func(t *testing.T, fs map[string]fsEntry, _ *v1.ConfigFile) {
		t.Helper()
		for _, p := range paths {
			if _, ok := fs[p]; ok {
				t.Errorf("%s is in the image but should not be", p)
			}
		}
	}
}

func config(f func(t *testing.T, c *v1.ConfigFile)) check {
	return func(t *testing.T, _ map[string]fsEntry, cf *v1.ConfigFile) { t.Helper(); f(t, cf) }
}

func TestBuildSemantics(t *testing.T) {
	f := newFixture(t)
	tarball := tarGz(t, map[string]string{"pkg/readme": "from the archive"})
	payload := []byte("downloaded payload")
	sum := sha256.Sum256(payload)
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC).Format(http.TimeFormat))
		w.Write(payload)
	}))
	defer server.Close()

	tests := []struct {
		name   string
		files  map[string]string
		opts   func(*Options)
		checks []check
	}{
		{
			name: "copy destination rules",
			files: map[string]string{
				"Dockerfile": `FROM $BASE
WORKDIR /work
COPY a.txt /dst/file
COPY a.txt /dstdir/
COPY dir /copied
COPY *.txt /glob/
COPY a.txt rel
COPY a.txt /etc
COPY dir/ /work/
`,
				"a.txt": "A", "b.txt": "B", "dir/x": "X", "dir/sub/y": "Y",
			},
			checks: []check{
				hasFile("/dst/file", "A", 0o644, 0, 0),
				hasFile("/dstdir/a.txt", "A", 0o644, 0, 0),
				hasFile("/copied/x", "X", 0o644, 0, 0),
				hasFile("/copied/sub/y", "Y", 0o644, 0, 0),
				hasFile("/glob/a.txt", "A", 0o644, 0, 0),
				hasFile("/glob/b.txt", "B", 0o644, 0, 0),
				hasFile("/work/rel", "A", 0o644, 0, 0),
				hasFile("/etc/a.txt", "A", 0o644, 0, 0),
				hasFile("/work/x", "X", 0o644, 0, 0),
				absent("/copied/dir", "/glob/dir"),
			},
		},
		{
			name: "ownership and modes",
			files: map[string]string{
				"Dockerfile": `FROM $BASE
COPY --chown=app a.txt /o/byname
COPY --chown=app:nogroup a.txt /o/bygroup
COPY --chown=7:8 a.txt /o/numeric
COPY --chmod=0640 a.txt /m/file
COPY --chmod=0700 dir /m2/
COPY --chown=app dir /owned/deep/
`,
				"a.txt": "A", "dir/x": "X", "dir/sub/y": "Y",
			},
			checks: []check{
				hasFile("/o/byname", "A", 0o644, 1000, 1000),
				hasFile("/o/bygroup", "A", 0o644, 1000, 65534),
				hasFile("/o/numeric", "A", 0o644, 7, 8),
				hasFile("/m/file", "A", 0o640, 0, 0),
				hasDir("/m", 0o640, 0, 0),
				hasDir("/m2", 0o700, 0, 0), // BuildKit v0.34: the created destination takes --chmod
				hasFile("/m2/x", "X", 0o700, 0, 0),
				hasDir("/m2/sub", 0o700, 0, 0),
				hasDir("/owned", 0o755, 1000, 1000),
				hasFile("/owned/deep/sub/y", "Y", 0o644, 1000, 1000),
			},
		},
		{
			name: "symlinks are kept",
			files: map[string]string{
				"Dockerfile": "FROM $BASE\nCOPY tree /tree\nCOPY tolink /followed\n",
				"tree/real":  "R", "tolink-target": "T",
			},
			opts: func(o *Options) {
				must(t, os.Symlink("real", filepath.Join(o.ContextDir, "tree/rel")))
				must(t, os.Symlink("/etc/passwd", filepath.Join(o.ContextDir, "tree/abs")))
				must(t, os.Symlink("nowhere", filepath.Join(o.ContextDir, "tree/dangling")))
				must(t, os.Symlink("tolink-target", filepath.Join(o.ContextDir, "tolink")))
			},
			checks: []check{
				hasSymlink("/tree/rel", "real"),
				hasSymlink("/tree/abs", "/etc/passwd"),
				hasSymlink("/tree/dangling", "nowhere"),
				hasFile("/followed", "T", 0o644, 0, 0),
			},
		},
		{
			name: "dockerignore with exceptions",
			files: map[string]string{
				"Dockerfile":    "FROM $BASE\nCOPY . /ctx/\n",
				".dockerignore": "*.log\n!keep.log\nsecret/**\n**/*.tmp\n",
				"a.log":         "no", "keep.log": "yes", "secret/key": "no", "deep/x.tmp": "no", "deep/ok": "ok",
			},
			checks: []check{
				hasFile("/ctx/keep.log", "yes", 0o644, 0, 0),
				hasFile("/ctx/deep/ok", "ok", 0o644, 0, 0),
				absent("/ctx/a.log", "/ctx/secret/key", "/ctx/deep/x.tmp"),
			},
		},
		{
			name: "ADD unpacks local archives and fetches URLs",
			files: map[string]string{
				"Dockerfile":  fmt.Sprintf("FROM $BASE\nADD pkg.tar.gz /opt/\nADD pkg.tar.zst pkg.tar.xz /zx/\nADD --checksum=sha256:%s %s/dl/file.bin /downloads/\nCOPY pkg.tar.gz /kept/\n", hex.EncodeToString(sum[:]), server.URL),
				"pkg.tar.gz":  tarball,
				"pkg.tar.zst": compressTar(t, "zstd", map[string]string{"z/readme": "zstd"}),
				"pkg.tar.xz":  compressTar(t, "xz", map[string]string{"x/readme": "xz"}),
			},
			checks: []check{
				hasFile("/opt/pkg/readme", "from the archive", 0o644, 0, 0),
				hasFile("/zx/z/readme", "zstd", 0o644, 0, 0),
				hasFile("/zx/x/readme", "xz", 0o644, 0, 0),
				hasFile("/downloads/file.bin", string(payload), 0o600, 0, 0),
				hasFile("/kept/pkg.tar.gz", tarball, 0o644, 0, 0),
			},
		},
		{
			name: "metadata instructions",
			files: map[string]string{
				"Dockerfile": `FROM $BASE
MAINTAINER someone@example.com
ENV A=1 B="two words"
ENV C=${A}-x
LABEL org.example.a="b" other=c
EXPOSE 80 53/udp 8000-8001
VOLUME ["/data", "/logs"]
USER app
STOPSIGNAL SIGTERM
SHELL ["/bin/sh", "-ec"]
HEALTHCHECK --interval=5s --retries=2 CMD true
ONBUILD RUN echo child
ENTRYPOINT echo hi
`,
			},
			opts: func(o *Options) { o.Labels = map[string]string{"from-flag": "yes"} },
			checks: []check{config(func(t *testing.T, cf *v1.ConfigFile) {
				c := cf.Config
				env := strings.Join(c.Env, "|")
				if !strings.Contains(env, "A=1|B=two words|C=1-x") {
					t.Errorf("Env = %q", c.Env)
				}
				wantLabels := map[string]string{"org.example.a": "b", "other": "c", "from-flag": "yes"}
				if !reflect.DeepEqual(c.Labels, wantLabels) {
					t.Errorf("Labels = %v", c.Labels)
				}
				ports := keys(c.ExposedPorts)
				if !reflect.DeepEqual(ports, []string{"53/udp", "80/tcp", "8000/tcp", "8001/tcp"}) {
					t.Errorf("ExposedPorts = %v", ports)
				}
				if !reflect.DeepEqual(keys(c.Volumes), []string{"/data", "/logs"}) {
					t.Errorf("Volumes = %v", c.Volumes)
				}
				if c.User != "app" || c.StopSignal != "SIGTERM" || cf.Author != "someone@example.com" {
					t.Errorf("User %q StopSignal %q Author %q", c.User, c.StopSignal, cf.Author)
				}
				if !reflect.DeepEqual(c.Entrypoint, []string{"/bin/sh", "-ec", "echo hi"}) {
					t.Errorf("Entrypoint = %q: SHELL must apply to the shell form", c.Entrypoint)
				}
				if c.Cmd != nil {
					t.Errorf("Cmd = %q: ENTRYPOINT must clear the base's CMD", c.Cmd)
				}
				if c.Healthcheck == nil || c.Healthcheck.Interval != 5*time.Second || c.Healthcheck.Retries != 2 {
					t.Errorf("Healthcheck = %+v", c.Healthcheck)
				}
				if !reflect.DeepEqual(c.OnBuild, []string{"RUN echo child"}) {
					t.Errorf("OnBuild = %q", c.OnBuild)
				}
			})},
		},
		{
			name: "multi-stage with COPY --from stage, index and image",
			files: map[string]string{
				"Dockerfile": `FROM $BASE AS one
RUN mkdir -p /out && echo one > /out/one && ln -s one /out/link
FROM $BASE AS two
RUN echo two > /two
FROM $BASE AS unused
RUN exit 1
FROM scratch
COPY --from=one /out /from-one
COPY --from=1 /two /from-two
COPY --from=$BASE /bin/busybox /bin/busybox
`,
			},
			checks: []check{
				hasFile("/from-one/one", "one\n", 0o644, 0, 0),
				hasSymlink("/from-one/link", "one"),
				hasFile("/from-two", "two\n", 0o644, 0, 0),
				absent("/etc/passwd"),
				func(t *testing.T, fs map[string]fsEntry, _ *v1.ConfigFile) {
					if fs["/bin/busybox"].typ != tar.TypeReg {
						t.Error("COPY --from an image lost /bin/busybox")
					}
				},
			},
		},
		{
			name: "ONBUILD triggers run in the child",
			files: map[string]string{
				"Dockerfile": "FROM $BASE AS parent\nONBUILD COPY a.txt /from-trigger\nONBUILD RUN echo ran > /trigger-ran\nFROM parent\nRUN test -f /from-trigger\n",
				"a.txt":      "A",
			},
			checks: []check{
				hasFile("/from-trigger", "A", 0o644, 0, 0),
				hasFile("/trigger-ran", "ran\n", 0o644, 0, 0),
				config(func(t *testing.T, cf *v1.ConfigFile) {
					if len(cf.Config.OnBuild) != 0 {
						t.Errorf("the child kept its parent's triggers: %q", cf.Config.OnBuild)
					}
				}),
			},
		},
		{
			name: "RUN as a user, with heredocs, mounts and whiteouts",
			files: map[string]string{
				"Dockerfile": `FROM $BASE
RUN mkdir -p /home/app && chown app /home/app && rm /etc/group && mkdir /gone && touch /gone/x
RUN rm -rf /gone
USER app
WORKDIR /home/app
RUN id -u > uid && id -g > gid
USER root
RUN --mount=type=secret,id=token cat /run/secrets/token > /secret-len-proof && wc -c < /run/secrets/token > /secret-size
RUN --mount=type=bind,source=a.txt,target=/mnt/a.txt cp /mnt/a.txt /bound
RUN --mount=type=tmpfs,target=/scratch touch /scratch/nothing
RUN <<EOF
echo heredoc > /heredoc
EOF
RUN <<EOF
#!/bin/sh
echo shebang > /shebang
EOF
ENV WHO=world
COPY <<EOF /inline.txt
inline $WHO
EOF
`,
				"a.txt": "A",
			},
			opts: func(o *Options) {
				p := filepath.Join(t.TempDir(), "token")
				must(t, os.WriteFile(p, []byte("s3cr3t"), 0o600))
				o.Secrets = map[string]Secret{"token": {File: p}}
			},
			checks: []check{
				hasFile("/home/app/uid", "1000\n", 0o644, 1000, 1000),
				hasFile("/home/app/gid", "1000\n", 0o644, 1000, 1000),
				hasFile("/secret-size", "6\n", 0o644, 0, 0),
				hasFile("/bound", "A", 0o644, 0, 0),
				hasFile("/heredoc", "heredoc\n", 0o644, 0, 0),
				hasFile("/shebang", "shebang\n", 0o644, 0, 0),
				hasFile("/inline.txt", "inline world\n", 0o644, 0, 0),
				absent("/etc/group", "/gone", "/run/secrets/token", "/mnt/a.txt", "/scratch/nothing", "/dev/pipes"),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.buildAndCheck(t, tt.files, tt.opts, tt.checks)
		})
	}
}

func TestBuildErrors(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name       string
		dockerfile string
		opts       func(*Options)
		want       []string
	}{
		{name: "syntax", dockerfile: "FROM $BASE\nFOO bar\n", want: []string{"2", "unknown instruction"}},
		{name: "missing source", dockerfile: "FROM $BASE\nCOPY nothere.txt /x\n", want: []string{"line 2", "nothere.txt", "not found"}},
		{name: "escape", dockerfile: "FROM $BASE\nCOPY ../outside /x\n", want: []string{"line 2", "outside the build context"}},
		{name: "unknown user", dockerfile: "FROM $BASE\nCOPY --chown=ghost Dockerfile /x\n", want: []string{"line 2", "ghost"}},
		{name: "missing base", dockerfile: "FROM $BASE-nope\n", want: []string{"latest-nope", "manifest unknown"}},
		{name: "unknown target", dockerfile: "FROM $BASE AS a\n", opts: func(o *Options) { o.Target = "b" }, want: []string{"b", "a"}},
		{name: "failing RUN", dockerfile: "FROM $BASE\nRUN echo x && exit 3\n", want: []string{"line 2", "exit 3", "non-zero code: 3"}},
		{name: "missing secret", dockerfile: "FROM $BASE\nRUN --mount=type=secret,id=t,required cat /run/secrets/t\n", want: []string{"secret t is required"}},
		{name: "bind mount through a context symlink", dockerfile: "FROM $BASE\nRUN --mount=type=bind,source=hostetc/hostname,target=/x cat /x\n",
			opts: func(o *Options) { must(t, os.Symlink("/etc", filepath.Join(o.ContextDir, "hostetc"))) }, want: []string{"line 2", "hostetc/hostname"}},
		{name: "bad checksum", dockerfile: "FROM $BASE\nADD --checksum=sha256:0000 http://127.0.0.1:1/x /x\n", want: []string{"line 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.build(t, map[string]string{"Dockerfile": tt.dockerfile}, tt.opts)
			if err == nil {
				t.Fatal("the build succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestReproducibleAndZstd(t *testing.T) {
	f := newFixture(t)
	epoch := time.Unix(1700000000, 0).UTC()
	files := map[string]string{"Dockerfile": "FROM $BASE\nCOPY a.txt /a\nRUN echo x > /b\n", "a.txt": "A"}
	digest := func(compression string) (v1.Hash, v1.Image) {
		img, err := f.build(t, files, func(o *Options) { o.Epoch = &epoch; o.Compression = layer.Compression(compression) })
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d, img
	}
	a, _ := digest("")
	time.Sleep(1100 * time.Millisecond)
	b, img := digest("")
	if a != b {
		t.Errorf("two reproducible builds differ: %s vs %s", a, b)
	}
	cf, _ := img.ConfigFile()
	if !cf.Created.Time.Equal(epoch) {
		t.Errorf("created = %s, want %s", cf.Created.Time, epoch)
	}
	_, zimg := digest("zstd")
	layers, _ := zimg.Layers()
	mt, _ := layers[len(layers)-1].MediaType()
	if mt != types.OCILayerZStd {
		t.Errorf("zstd build's new layer has media type %s", mt)
	}
	if m, _ := zimg.MediaType(); m != types.OCIManifestSchema1 {
		t.Errorf("zstd build's manifest has media type %s", m)
	}
}

func TestSingleSnapshot(t *testing.T) {
	f := newFixture(t)
	img, err := f.build(t, map[string]string{
		"Dockerfile": "FROM $BASE\nCOPY a.txt /a\nRUN echo b > /b && rm /etc/group\nWORKDIR /w\nRUN touch /w/c\n",
		"a.txt":      "A",
	}, func(o *Options) { o.SingleSnapshot = true })
	if err != nil {
		t.Fatal(err)
	}
	base, _ := f.reg.Client().Pull(context.Background(), f.base, v1.Platform{})
	baseLayers, _ := base.Layers()
	layers, _ := img.Layers()
	if len(layers) != len(baseLayers)+1 {
		t.Errorf("%d layers on a %d-layer base, want exactly one more", len(layers), len(baseLayers))
	}
	fs := flatten(t, img)
	hasFile("/a", "A", 0o644, 0, 0)(t, fs, nil)
	hasFile("/b", "b\n", 0o644, 0, 0)(t, fs, nil)
	hasFile("/w/c", "", 0o644, 0, 0)(t, fs, nil)
	absent("/etc/group")(t, fs, nil)
}

func TestCacheMountPersists(t *testing.T) {
	f := newFixture(t)
	cache := t.TempDir()
	files := map[string]string{"Dockerfile": "FROM $BASE\nRUN --mount=type=cache,target=/var/cache/app sh -c 'echo x >> /var/cache/app/count; wc -l < /var/cache/app/count > /runs'\n"}
	for i := 1; i <= 2; i++ {
		img, err := f.build(t, files, func(o *Options) { o.CacheMountDir = cache })
		if err != nil {
			t.Fatal(err)
		}
		fs := flatten(t, img)
		if got := strings.TrimSpace(fs["/runs"].content); got != fmt.Sprint(i) {
			t.Errorf("build %d saw %s runs in the cache mount", i, got)
		}
		absent("/var/cache/app/count")(t, fs, nil)
	}
}

func TestParallelStagesRunConcurrently(t *testing.T) {
	f := newFixture(t)
	// Each stage waits until the other has started, through a shared cache
	// mount: only a concurrent build finishes; one stage after the other
	// gives up after 20 seconds and fails its test.
	img, err := f.build(t, map[string]string{
		"Dockerfile": `FROM $BASE AS a
RUN --mount=type=cache,id=sync,target=/sync touch /sync/a-started && for i in $(seq 200); do test -f /sync/b-started && break; sleep 0.1; done && test -f /sync/b-started && echo a > /a
FROM $BASE AS b
RUN --mount=type=cache,id=sync,target=/sync touch /sync/b-started && for i in $(seq 200); do test -f /sync/a-started && break; sleep 0.1; done && test -f /sync/a-started && echo b > /b
FROM $BASE
COPY --from=a /a /a
COPY --from=b /b /b
`,
	}, func(o *Options) { o.CacheMountDir = t.TempDir() })
	if err != nil {
		t.Fatal(err)
	}
	fs := flatten(t, img)
	hasFile("/a", "a\n", 0o644, 0, 0)(t, fs, nil)
	hasFile("/b", "b\n", 0o644, 0, 0)(t, fs, nil)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func tarGz(t *testing.T, files map[string]string) string {
	t.Helper()
	return compressTar(t, "gzip", files)
}

// compressTar makes a tar of files, compressed with gzip, xz or zstd.
func compressTar(t *testing.T, format string, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	var zw io.WriteCloser
	var err error
	switch format {
	case "gzip":
		zw = gzip.NewWriter(&buf)
	case "xz":
		zw, err = xz.NewWriter(&buf)
	case "zstd":
		zw, err = zstd.NewWriter(&buf)
	}
	must(t, err)
	tw := tar.NewWriter(zw)
	for name, content := range files {
		must(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg, ModTime: time.Unix(1600000000, 0)}))
		tw.Write([]byte(content))
	}
	must(t, tw.Close())
	must(t, zw.Close())
	return buf.String()
}

// The two snapshotters must give the same layers on the same build: the
// same entries, and the same filesystem after each layer. How a deletion is
// spelled may differ in one case: a directory removed and recreated whose
// inode number the kernel reused looks to the walker like its old entries
// were deleted (explicit whiteouts), while overlayfs marks it opaque. Both
// remove exactly the same paths, which the per-layer state comparison checks.
// Writing in place to a file with several hardlinks is left out: overlayfs
// (mounted without its inode index) breaks the link on copy-up, which is
// why the overlay snapshotter is opt-in (see Options.Snapshotter).
func TestOverlayAndWalkerGiveTheSameLayers(t *testing.T) {
	f := newFixture(t)
	files := map[string]string{"Dockerfile": `FROM $BASE
RUN mkdir -p /d/sub /e && echo 1 > /d/f && echo x > /d/sub/g && echo keep > /e/k && ln -s f /d/link && ln /d/f /d/hard
RUN echo 2 > /d/link2 && rm /d/sub/g && chmod 0700 /d/sub && rm /etc/group && ln /d/link2 /d/hard2
RUN rm -rf /e && mkdir /e && echo new > /e/n && rm -rf /d/sub && echo file > /d/sub
RUN rm /d/sub && mkdir /d/sub && touch /d/sub/again
`}
	type result struct{ entries, states []string }
	layersOf := func(snapshotter Snapshotter) result {
		img, err := f.build(t, files, func(o *Options) { o.Snapshotter = snapshotter; o.Epoch = &time.Time{} })
		if err != nil {
			t.Fatalf("%s: %v", snapshotter, err)
		}
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		var r result
		state := map[string]string{}
		for i, l := range layers {
			entries := applyLayer(t, l, state)
			if i == 0 {
				continue // the base
			}
			r.entries = append(r.entries, strings.Join(entries, "\n"))
			r.states = append(r.states, describeState(state))
		}
		return r
	}
	walk, overlay := layersOf(SnapshotWalk), layersOf(SnapshotOverlay)
	if !reflect.DeepEqual(walk.entries, overlay.entries) {
		t.Errorf("the snapshotters wrote different entries:\nwalk:\n%s\noverlay:\n%s", strings.Join(walk.entries, "\n--\n"), strings.Join(overlay.entries, "\n--\n"))
	}
	if !reflect.DeepEqual(walk.states, overlay.states) {
		t.Errorf("the snapshotters' layers give different filesystems")
	}
}

// applyLayer applies a layer to state (path → description) as an image
// extractor does, and returns its entries other than whiteout markers.
func applyLayer(t *testing.T, l v1.Layer, state map[string]string) []string {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	removeTree := func(p string) {
		for k := range state {
			if k == p || strings.HasPrefix(k, p+"/") {
				delete(state, k)
			}
		}
	}
	var entries []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		name := "/" + strings.TrimSuffix(h.Name, "/")
		dir, base := filepath.Split(name)
		switch {
		case base == ".wh..wh..opq":
			for k := range state {
				if strings.HasPrefix(k, dir) && k != strings.TrimSuffix(dir, "/") {
					delete(state, k)
				}
			}
			continue
		case strings.HasPrefix(base, ".wh."):
			removeTree(dir + strings.TrimPrefix(base, ".wh."))
			continue
		}
		sum := sha256.New()
		io.Copy(sum, tr)
		desc := fmt.Sprintf("%c %o %d:%d %s %x", h.Typeflag, h.Mode, h.Uid, h.Gid, h.Linkname, sum.Sum(nil)[:6])
		if h.Typeflag != tar.TypeDir {
			removeTree(name)
		}
		state[name] = desc
		entries = append(entries, name+" "+desc)
	}
	sort.Strings(entries)
	return entries
}

func describeState(state map[string]string) string {
	lines := make([]string, 0, len(state))
	for k, v := range state {
		lines = append(lines, k+" "+v)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// Two stages named alike: BuildKit registers names in order, so the later
// stage wins every --from, whether or not unused stages are built, and the
// stage that reads it waits for that one.
func TestDuplicateStageNamesResolveToTheLast(t *testing.T) {
	f := newFixture(t)
	files := map[string]string{
		"Dockerfile": `FROM $BASE AS a
COPY first.txt /which
FROM $BASE AS a
RUN sleep 1
COPY second.txt /which
FROM $BASE
COPY --from=a /which /copied
RUN --mount=type=bind,from=a,source=/which,target=/m cp /m /mounted
`,
		"first.txt": "first", "second.txt": "second",
	}
	no := false
	for _, tt := range []struct {
		name string
		skip *bool
	}{{"skip unused stages", nil}, {"build every stage", &no}} {
		t.Run(tt.name, func(t *testing.T) {
			img, err := f.build(t, files, func(o *Options) { o.SkipUnusedStages = tt.skip })
			if err != nil {
				t.Fatal(err)
			}
			fs := flatten(t, img)
			hasFile("/copied", "second", 0o644, 0, 0)(t, fs, nil)
			hasFile("/mounted", "second", 0o644, 0, 0)(t, fs, nil)
		})
	}
}
