package podmodel

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/slipway-build/slipway/e2e/harness"
)

const (
	user, password = "builder", "s3cret-pass"
	// secretValue is what RUN --mount=type=secret reads. It must reach no
	// layer, no config and no log line.
	secretValue = "top-secret-token-5b8f0e"
)

// appDockerfile exercises what a user's build does in a pod: COPY, RUN that
// writes files, reads HOME and deletes one of the base's, and RUN with a
// secret mount.
const appDockerfile = `ARG BASE
FROM ${BASE}
COPY app/ /app/
COPY hello.txt /etc/hello.txt
RUN echo built > /built.txt && mkdir -p /data && echo one > /data/one && rm /etc/group && echo "$HOME" > /home.txt
RUN --mount=type=secret,id=x sha256sum /run/secrets/x | cut -d' ' -f1 > /secret.sha256
WORKDIR /app
ENV GREETING=hello
`

// TestInPlaceBuildPushes runs the executor image as a Tekton or Argo pod
// runs it, once per place a docker config is mounted: DOCKER_CONFIG's
// /slipway/.docker, and kaniko's /kaniko/.docker, which pipelines written
// for kaniko use.
func TestInPlaceBuildPushes(t *testing.T) {
	b := executorImages(t)
	reg := harness.StartRegistry(t, harness.WithHtpasswd(user, password))
	base := harness.Busybox(t, reg)
	config := reg.DockerConfigDir(t)

	for _, tc := range []struct{ name, configMount string }{
		{"slipway docker config", "/slipway/.docker"},
		{"kaniko docker config", "/kaniko/.docker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := writeContext(t, map[string]string{
				"Dockerfile":   appDockerfile,
				"app/a.txt":    "a\n",
				"app/sub/b.sh": "echo b\n",
				"hello.txt":    "hello\n",
				"secret.txt":   secretValue,
			})
			dest := fmt.Sprintf("%s/app:%s", reg.Host, strings.ReplaceAll(tc.name, " ", "-"))
			// Tekton mounts its results directory on its own, under a
			// /tekton that is not itself a mount.
			results := t.TempDir()
			out, code := dockerRun(t,
				"-v", ctx+":/workspace",
				"-v", config+":"+tc.configMount+":ro",
				"-v", results+":/tekton/results",
				b.executor,
				"--context", "dir:///workspace",
				"--destination", dest,
				"--digest-file", "/workspace/out/digest",
				"--image-url-file", "/tekton/results/IMAGE_URL",
				"--images-file", "/tekton/results/IMAGES",
				"--build-arg", "BASE="+base,
				"--secret", "id=x,src=/workspace/secret.txt",
				"--insecure-registry", reg.Host,
			)
			if code != 0 {
				t.Fatalf("the build exited %d:\n%s", code, out)
			}
			if strings.Contains(out, secretValue) {
				t.Errorf("the build log shows the secret:\n%s", out)
			}
			img := assertPushed(t, reg, dest, filepath.Join(ctx, "out", "digest"))
			digest, err := img.Digest()
			if err != nil {
				t.Fatal(err)
			}
			for file, want := range map[string]string{
				"IMAGE_URL": dest,
				"IMAGES":    fmt.Sprintf("%s/app@%s", reg.Host, digest),
			} {
				if got, err := os.ReadFile(filepath.Join(results, file)); err != nil || string(got) != want {
					t.Errorf("result %s = %q (%v), want %q", file, got, err, want)
				}
			}

			fs := flatten(t, img)
			sum := sha256.Sum256([]byte(secretValue))
			for p, want := range map[string]string{
				"/app/a.txt":     "a\n",
				"/app/sub/b.sh":  "echo b\n",
				"/etc/hello.txt": "hello\n",
				"/built.txt":     "built\n",
				// In place, RUN gets HOME from the image's passwd, as in
				// chroot mode, not from the executor's environment.
				"/home.txt": "/root\n",
				"/data/one": "one\n",
				// The secret was readable during RUN: its digest was
				// written, while the value itself is nowhere (below).
				"/secret.sha256": hex.EncodeToString(sum[:]) + "\n",
				"/etc/passwd":    "",
			} {
				f := fs[p]
				if f == nil || !f.mode.IsRegular() {
					t.Errorf("%s: got %v, want a regular file", p, f)
				} else if want != "" && string(f.data) != want {
					t.Errorf("%s = %q, want %q", p, f.data, want)
				}
			}
			if f := fs["/bin/sh"]; f == nil || f.link != "busybox" {
				t.Errorf("/bin/sh of the base image: got %v, want a symlink to busybox", f)
			}
			assertAbsent(t, fs,
				"/etc/group",   // removed by RUN
				"/run/secrets", // the secret's mount point
				"/slipway",     // the executor itself
				"/workspace",   // the context volume
				"/kaniko",      // parents docker made for mounts
				"/tekton",
				"/etc/resolv.conf", // docker's bind mounts
				"/etc/hosts",
				"/etc/hostname",
			)
			assertSecretNowhere(t, img)

			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cf.Config.WorkingDir != "/app" {
				t.Errorf("WorkingDir = %q, want /app", cf.Config.WorkingDir)
			}
			env := strings.Join(cf.Config.Env, "\n")
			for _, want := range []string{"GREETING=hello", "PATH=/usr/local/sbin:"} {
				if !strings.Contains(env, want) {
					t.Errorf("Env lacks %q:\n%s", want, env)
				}
			}
			// The executor's own environment configures the executor and
			// must not leak into the image it builds.
			for _, leak := range []string{"SLIPWAY_", "DOCKER_CONFIG", "SSL_CERT_"} {
				if strings.Contains(env, leak) {
					t.Errorf("Env holds the executor's %s:\n%s", leak, env)
				}
			}
		})
	}
}

// multiStageDockerfile flips /lib64 between a directory and a symlink from
// stage to stage, the situation of kaniko's "mkdir /lib64: file exists"
// (its issues #1697 and #3091): in-place mode wipes / between stages and
// must leave nothing of one stage's tree for the next stage's base to trip
// over, while COPY --from still reads what the earlier stages ran.
const multiStageDockerfile = `ARG BASE
ARG BASE_LIB64
FROM ${BASE_LIB64} AS links
RUN rm -rf /lib64 && ln -s /bin /lib64 && mkdir /out && echo from-links > /out/links.txt

FROM ${BASE} AS dirs
RUN mkdir -p /lib64 && echo dir > /lib64/marker && mkdir /out && echo from-dirs > /out/dirs.txt

FROM ${BASE_LIB64}
COPY --from=links /out/links.txt /out/
COPY --from=dirs /out/dirs.txt /out/
COPY --from=dirs /lib64/marker /marker-from-dirs
RUN test -d /lib64 && test ! -L /lib64 && cat /lib64/base-marker > /checked
`

func TestInPlaceMultiStage(t *testing.T) {
	b := executorImages(t)
	reg := harness.StartRegistry(t, harness.WithHtpasswd(user, password))
	base := harness.Busybox(t, reg)
	baseLib64 := pushLib64Base(t, reg)
	ctx := writeContext(t, map[string]string{"Dockerfile": multiStageDockerfile})
	dest := reg.Host + "/multi:1"

	out, code := dockerRun(t,
		"-v", ctx+":/workspace",
		"-v", reg.DockerConfigDir(t)+":/slipway/.docker:ro",
		b.executor,
		"--context", "dir:///workspace",
		"--destination", dest,
		"--digest-file", "/workspace/out/digest",
		"--build-arg", "BASE="+base,
		"--build-arg", "BASE_LIB64="+baseLib64,
		"--insecure-registry", reg.Host,
	)
	if code != 0 {
		t.Fatalf("the multi-stage build exited %d:\n%s", code, out)
	}
	if strings.Contains(out, "file exists") {
		t.Errorf("the build log reports an existing file:\n%s", out)
	}
	fs := flatten(t, assertPushed(t, reg, dest, filepath.Join(ctx, "out", "digest")))
	for p, want := range map[string]string{
		"/out/links.txt":     "from-links\n",
		"/out/dirs.txt":      "from-dirs\n",
		"/marker-from-dirs":  "dir\n",
		"/lib64/base-marker": "base\n",
		"/checked":           "base\n",
	} {
		if f := fs[p]; f == nil || string(f.data) != want {
			t.Errorf("%s: got %v, want a file holding %q", p, f, want)
		}
	}
	if f := fs["/lib64"]; f == nil || !f.mode.IsDir() {
		t.Errorf("/lib64: got %v, want the final base's directory", f)
	}
	// Had a stage's /lib64 symlink survived the wipe, "dirs" would have
	// written its marker through it into /bin.
	assertAbsent(t, fs, "/bin/marker", "/lib64/marker", "/slipway", "/workspace")
}

// TestFailingBuild: a build that fails, in the Dockerfile or in a RUN,
// exits non-zero, says where, and publishes nothing.
func TestFailingBuild(t *testing.T) {
	b := executorImages(t)
	reg := harness.StartRegistry(t, harness.WithHtpasswd(user, password))
	base := harness.Busybox(t, reg)
	config := reg.DockerConfigDir(t)

	for _, tc := range []struct {
		name, dockerfile string
		want             []string
	}{
		{
			name:       "unknown instruction",
			dockerfile: "ARG BASE\nFROM ${BASE}\nRUN echo ok\nFROMM scratch\n",
			want:       []string{"Dockerfile:4: unknown instruction: FROMM"},
		},
		{
			name:       "failing RUN",
			dockerfile: "ARG BASE\nFROM ${BASE}\nRUN echo ok\nRUN echo failing-step && exit 7\n",
			want:       []string{"Dockerfile line 4", "echo failing-step && exit 7", "non-zero code: 7"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := writeContext(t, map[string]string{"Dockerfile": tc.dockerfile})
			dest := reg.Host + "/failing:" + strings.ReplaceAll(tc.name, " ", "-")
			out, code := dockerRun(t,
				"-v", ctx+":/workspace",
				"-v", config+":/slipway/.docker:ro",
				b.executor,
				"--context", "dir:///workspace",
				"--destination", dest,
				"--digest-file", "/workspace/out/digest",
				"--build-arg", "BASE="+base,
				"--insecure-registry", reg.Host,
			)
			if code == 0 {
				t.Fatalf("the build succeeded; want a failure:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("the output lacks %q:\n%s", w, out)
				}
			}
			if _, err := os.Stat(filepath.Join(ctx, "out", "digest")); !os.IsNotExist(err) {
				t.Errorf("a failed build left a digest file (stat: %v)", err)
			}
			ref, err := name.ParseReference(dest, name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := remote.Head(ref, remote.WithAuthFromKeychain(reg.Keychain())); err == nil {
				t.Errorf("a failed build pushed %s", dest)
			}
		})
	}
}

// TestDebugImageInScript runs a build from the debug image's shell, as a
// GitLab CI job or a Tekton script step does with kaniko's :debug image.
// The shell must still be there after the build, and not in the image.
func TestDebugImageInScript(t *testing.T) {
	b := executorImages(t)
	reg := harness.StartRegistry(t, harness.WithHtpasswd(user, password))
	base := harness.Busybox(t, reg)
	ctx := writeContext(t, map[string]string{
		"Dockerfile": "ARG BASE\nFROM ${BASE}\nRUN echo from-debug > /debug.txt\n",
	})
	dest := reg.Host + "/debug:1"
	script := fmt.Sprintf(`set -e
slipway-build --context dir:///workspace --destination %s --digest-file /workspace/out/digest --build-arg BASE=%s --insecure-registry %s
/busybox/test -x /busybox/sh
echo shell-survived`, dest, base, reg.Host)
	out, code := dockerRun(t,
		"-v", ctx+":/workspace",
		"-v", reg.DockerConfigDir(t)+":/slipway/.docker:ro",
		"--entrypoint", "/busybox/sh",
		b.debug, "-c", script,
	)
	if code != 0 || !strings.Contains(out, "shell-survived") {
		t.Fatalf("the script exited %d:\n%s", code, out)
	}
	fs := flatten(t, assertPushed(t, reg, dest, filepath.Join(ctx, "out", "digest")))
	if f := fs["/debug.txt"]; f == nil || string(f.data) != "from-debug\n" {
		t.Errorf("/debug.txt: got %v", f)
	}
	assertAbsent(t, fs, "/busybox", "/slipway", "/workspace")
}

// pushLib64Base pushes the busybox base with a real /lib64 directory, as
// glibc-based images have.
func pushLib64Base(t *testing.T, reg *harness.Registry) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	data := []byte("base\n")
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeDir, Name: "lib64/", Mode: 0o755},
		{Typeflag: tar.TypeReg, Name: "lib64/base-marker", Mode: 0o644, Size: int64(len(data))},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(buf.Bytes())), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(harness.BusyboxImage(t), layer)
	if err != nil {
		t.Fatal(err)
	}
	refStr := reg.Host + "/slipway-test/busybox-lib64:latest"
	ref, err := name.ParseReference(refStr, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuthFromKeychain(reg.Keychain())); err != nil {
		t.Fatalf("pushing %s: %v", refStr, err)
	}
	return refStr
}

// writeContext writes files into a fresh build context directory.
func writeContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		harness.WriteFile(t, filepath.Join(dir, p), content)
	}
	return dir
}

// assertPushed checks that digestFile holds exactly the digest the
// registry serves for dest, and returns that image.
func assertPushed(t *testing.T, reg *harness.Registry, dest, digestFile string) v1.Image {
	t.Helper()
	ref, err := name.ParseReference(dest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref, remote.WithAuthFromKeychain(reg.Keychain()))
	if err != nil {
		t.Fatalf("fetching %s from the registry: %v", dest, err)
	}
	got, err := os.ReadFile(digestFile)
	if err != nil {
		t.Fatalf("the digest file: %v", err)
	}
	if string(got) != desc.Digest.String() {
		t.Errorf("the digest file holds %q; the registry serves %s for %s", got, desc.Digest, dest)
	}
	img, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// file is one entry of a flattened image.
type file struct {
	mode     os.FileMode
	link     string
	uid, gid int
	data     []byte
}

func (f *file) String() string {
	if f == nil {
		return "nothing"
	}
	s := fmt.Sprintf("%v %d:%d", f.mode, f.uid, f.gid)
	if f.link != "" {
		s += " -> " + f.link
	}
	if f.mode.IsRegular() {
		s += fmt.Sprintf(" %d bytes", len(f.data))
	}
	return s
}

// flatten reads img's filesystem as its layers stack up, whiteouts
// applied, keyed by absolute path.
func flatten(t *testing.T, img v1.Image) map[string]*file {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	fs := map[string]*file{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return fs
		}
		if err != nil {
			t.Fatalf("reading the flattened image: %v", err)
		}
		f := &file{mode: h.FileInfo().Mode(), link: h.Linkname, uid: h.Uid, gid: h.Gid}
		if h.Typeflag == tar.TypeReg {
			if f.data, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		}
		fs[path.Clean("/"+h.Name)] = f
	}
}

// assertAbsent fails for each path that is in fs, itself or below it.
func assertAbsent(t *testing.T, fs map[string]*file, paths ...string) {
	t.Helper()
	for _, p := range paths {
		var found []string
		for q := range fs {
			if q == p || strings.HasPrefix(q, p+"/") {
				found = append(found, q)
			}
		}
		sort.Strings(found)
		if len(found) > 0 {
			more := ""
			if len(found) > 5 {
				found, more = found[:5], fmt.Sprintf(" and %d more", len(found)-5)
			}
			t.Errorf("the image holds %s: %q%s", p, found, more)
		}
	}
}

// assertSecretNowhere scans every layer and the config for the secret.
func assertSecretNowhere(t *testing.T, img v1.Image) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte(secretValue)) {
			t.Errorf("layer %d holds the secret", i)
		}
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secretValue)) {
		t.Errorf("the image config holds the secret")
	}
}
