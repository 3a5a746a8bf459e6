// Package step runs the slipway-build binary as users do: flags in, an
// image in a real registry and digest files out.
package step

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-build/slipway/e2e/harness"
)

// binary is slipway-build; indexBinary is slipway-index.
var binary, indexBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "slipway-step-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "slipway-build")
	indexBinary = filepath.Join(dir, "slipway-index")
	for step, out := range map[string]string{"build": binary, "index": indexBinary} {
		build := exec.Command("go", "build", "-o", out, "../../steps/"+step)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building slipway-%s: %v\n%s", step, err, b)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code   int
	stderr string
}

// slipway runs the binary with args and env, in a context directory
// holding files.
func slipway(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return run(t, env, nil, args...)
}

// run is slipway with bytes on standard input.
func run(t *testing.T, env []string, stdin []byte, args ...string) result {
	t.Helper()
	return runBinary(t, binary, env, stdin, append(args, "--work-dir", t.TempDir())...)
}

func runBinary(t *testing.T, binary string, env []string, stdin []byte, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}, env...)
	var stderr bytes.Buffer
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code: code, stderr: stderr.String()}
}

func writeContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for n, c := range files {
		harness.WriteFile(t, filepath.Join(dir, n), c)
	}
	return dir
}

const dockerfile = `ARG BASE
FROM ${BASE}
ARG WHO=nobody
COPY hello.txt /hello.txt
RUN echo "built for ${WHO}" > /who
CMD ["cat", "/hello.txt"]
`

func remoteDigest(t *testing.T, reg *harness.Registry, ref string) string {
	t.Helper()
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	opts := reg.Client().RemoteOptions(r, false)
	desc, err := remote.Head(reg.Client().Reference(r, false), opts...)
	if err != nil {
		t.Fatalf("HEAD %s: %v", ref, err)
	}
	return desc.Digest.String()
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPushAndDigestFiles(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts []harness.Option
		args func(reg *harness.Registry) []string
		env  func(t *testing.T, reg *harness.Registry) []string
	}{
		{
			name: "plain HTTP",
			args: func(reg *harness.Registry) []string { return []string{"--insecure-registry", reg.Host} },
		},
		{
			name: "htpasswd through config.json",
			opts: []harness.Option{harness.WithHtpasswd("builder", "s3cret")},
			args: func(reg *harness.Registry) []string { return []string{"--insecure-registry", reg.Host} },
			env: func(t *testing.T, reg *harness.Registry) []string {
				return []string{"DOCKER_CONFIG=" + reg.DockerConfigDir(t)}
			},
		},
		{
			name: "TLS with --registry-certificate",
			opts: []harness.Option{harness.WithTLS()},
			args: func(reg *harness.Registry) []string {
				return []string{"--registry-certificate", reg.Host + "=" + reg.CAFile}
			},
		},
	} {
		t.Run(mode.name, func(t *testing.T) {
			reg := harness.StartRegistry(t, mode.opts...)
			base := harness.Busybox(t, reg)
			ctxDir := writeContext(t, map[string]string{"Dockerfile": dockerfile, "hello.txt": "hi\n"})
			out := t.TempDir()
			var env []string
			if mode.env != nil {
				env = mode.env(t, reg)
			}
			args := append(mode.args(reg),
				"--context", "dir://"+ctxDir,
				"--build-arg", "BASE="+base,
				"--build-arg", "WHO=ci",
				"--destination", reg.Host+"/team/app:1",
				"--destination", reg.Host+"/team/app:latest",
				"--digest-file", filepath.Join(out, "digest"),
				"--image-name-with-digest-file", filepath.Join(out, "names"),
				"--image-name-tag-with-digest-file", filepath.Join(out, "tags"),
				"--image-url-file", filepath.Join(out, "url"),
				"--images-file", filepath.Join(out, "images"),
			)
			res := slipway(t, env, args...)
			if res.code != 0 {
				t.Fatalf("exit %d:\n%s", res.code, res.stderr)
			}
			digest := readFile(t, filepath.Join(out, "digest"))
			if got := remoteDigest(t, reg, reg.Host+"/team/app:1"); got != digest {
				t.Errorf("digest file %q, registry has %q", digest, got)
			}
			if got := remoteDigest(t, reg, reg.Host+"/team/app:latest"); got != digest {
				t.Errorf("second destination has %q, want %q", got, digest)
			}
			wantNames := fmt.Sprintf("%[1]s/team/app@%[2]s\n%[1]s/team/app@%[2]s\n", reg.Host, digest)
			if got := readFile(t, filepath.Join(out, "names")); got != wantNames {
				t.Errorf("image-name-with-digest-file = %q, want %q", got, wantNames)
			}
			wantTags := fmt.Sprintf("%[1]s/team/app:1@%[2]s\n%[1]s/team/app:latest@%[2]s\n", reg.Host, digest)
			if got := readFile(t, filepath.Join(out, "tags")); got != wantTags {
				t.Errorf("image-name-tag-with-digest-file = %q, want %q", got, wantTags)
			}
			if got := readFile(t, filepath.Join(out, "url")); got != reg.Host+"/team/app:1" {
				t.Errorf("image-url-file = %q", got)
			}
			// Tekton's IMAGES names each repository once: two tags of
			// one repository are one entry for Chains to sign.
			wantImages := fmt.Sprintf("%s/team/app@%s", reg.Host, digest)
			if got := readFile(t, filepath.Join(out, "images")); got != wantImages {
				t.Errorf("images-file = %q, want %q", got, wantImages)
			}
			if !strings.Contains(res.stderr, "Pushed") {
				t.Errorf("the log does not say what was pushed:\n%s", res.stderr)
			}
		})
	}
}

// Every failure must exit non-zero with a message that says what to fix,
// and leave no digest file and no pushed tag.
func TestFailuresLeaveNoResult(t *testing.T) {
	reg := harness.StartRegistry(t, harness.WithHtpasswd("builder", "s3cret"))
	base := harness.Busybox(t, reg)
	good := harness.DockerConfigDir(t, reg.Host, "builder", "s3cret")
	wrong := harness.DockerConfigDir(t, reg.Host, "builder", "wrong")
	tests := []struct {
		name       string
		dockerfile string
		config     string
		extra      []string
		want       []string
	}{
		{name: "unknown instruction", dockerfile: "FROM " + base + "\nFROB x\n", config: good, want: []string{"Dockerfile:2", "unknown instruction"}},
		{name: "failing RUN", dockerfile: "FROM " + base + "\nRUN exit 7\n", config: good, want: []string{"line 2", "non-zero code: 7"}},
		// The first RUN's layer is uploaded while the second runs: a blob,
		// never a tag.
		{name: "failing RUN after a layer", dockerfile: "FROM " + base + "\nRUN echo x > /x\nRUN exit 7\n", config: good, want: []string{"line 3", "non-zero code: 7"}},
		{name: "missing COPY source", dockerfile: "FROM " + base + "\nCOPY missing.txt /\n", config: good, want: []string{"missing.txt", "not found"}},
		{name: "missing base image", dockerfile: "FROM " + reg.Host + "/nothing/here:1\n", config: good, want: []string{reg.Host + "/nothing/here:1", "manifest unknown"}},
		{name: "refused credentials", dockerfile: "FROM " + base + "\n", config: wrong, want: []string{reg.Host, "UNAUTHORIZED"}},
		{name: "unknown target", dockerfile: "FROM " + base + " AS a\n", config: good, extra: []string{"--target", "nope"}, want: []string{"nope"}},
		{name: "bad compression", dockerfile: "FROM " + base + "\nCOPY Dockerfile /\n", config: good, extra: []string{"--compression=lz4"}, want: []string{"lz4", "gzip or zstd"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctxDir := writeContext(t, map[string]string{"Dockerfile": tt.dockerfile})
			digestFile := filepath.Join(t.TempDir(), "digest")
			tag := reg.Host + "/fail/" + strings.ToLower(strings.ReplaceAll(tt.name, " ", "-")) + ":1"
			args := append([]string{"--context", ctxDir, "--destination", tag, "--digest-file", digestFile, "--insecure-registry", reg.Host}, tt.extra...)
			res := slipway(t, []string{"DOCKER_CONFIG=" + tt.config}, args...)
			if res.code == 0 {
				t.Fatalf("exit 0, want a failure:\n%s", res.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("output does not mention %q:\n%s", w, res.stderr)
				}
			}
			if _, err := os.Stat(digestFile); !os.IsNotExist(err) {
				t.Errorf("a digest file was written after a failure: %v", err)
			}
			r, err := name.ParseReference(tag)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := remote.Head(reg.Client().Reference(r, false), reg.Client().RemoteOptions(r, false)...); err == nil {
				t.Errorf("%s was pushed by a failed build", tag)
			}
		})
	}
}

// The published Tekton and Argo definitions pass list params as a tail
// after "--", since the image has no shell to prefix each element.
func TestListTailFromTaskDefinitions(t *testing.T) {
	reg := harness.StartRegistry(t)
	base := harness.Busybox(t, reg)
	ctxDir := writeContext(t, map[string]string{"Dockerfile": dockerfile, "hello.txt": "hi\n"})
	digestFile := filepath.Join(t.TempDir(), "digest")
	res := slipway(t, nil, "--context="+ctxDir, "--insecure-registry="+reg.Host, "--digest-file="+digestFile,
		"--target=", "--cache=false", "--cache-repo=",
		"--", "--build-arg", "BASE="+base, "WHO=a b,c", "--destination", reg.Host+"/tail/app:1", reg.Host+"/tail/app:2", "--args", "--reproducible")
	if res.code != 0 {
		t.Fatalf("exit %d:\n%s", res.code, res.stderr)
	}
	d := readFile(t, digestFile)
	for _, tag := range []string{"1", "2"} {
		if got := remoteDigest(t, reg, reg.Host+"/tail/app:"+tag); got != d {
			t.Errorf("tag %s = %s, want %s", tag, got, d)
		}
	}
}

// Step binaries stay small and free of cluster code: they must not link
// Tekton, Argo or Kubernetes packages.
func TestStepsLinkNoClusterPackages(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "../../steps/...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []string{"build", "warm", "index"} {
		if !strings.Contains(string(out), "/steps/"+step+"\n") {
			t.Errorf("steps/%s is not among the step packages checked", step)
		}
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"github.com/tektoncd/", "github.com/argoproj/", "k8s.io/"} {
			if strings.HasPrefix(pkg, banned) {
				t.Errorf("a step binary links %s", pkg)
			}
		}
	}
}

// slipway-warm only reads a Dockerfile and pulls images, and slipway-index
// only reads manifests and pushes one: they must not link the builder, nor
// the build-context fetchers with their git and cloud SDKs.
func TestWarmLinksNoBuilder(t *testing.T) {
	for _, step := range []string{"warm", "index"} {
		out, err := exec.Command("go", "list", "-deps", "../../steps/"+step).Output()
		if err != nil {
			t.Fatal(err)
		}
		linksNoBuilder(t, "slipway-"+step, strings.Fields(string(out)))
	}
}

func linksNoBuilder(t *testing.T, step string, deps []string) {
	t.Helper()
	for _, pkg := range deps {
		for _, banned := range []string{
			"github.com/slipway-build/slipway/engine/build",
			"github.com/slipway-build/slipway/engine/buildcontext",
			"github.com/slipway-build/slipway/engine/job",
			"github.com/go-git/",
			"github.com/aws/",
			"cloud.google.com/",
			"github.com/Azure/",
		} {
			if pkg == banned || strings.HasPrefix(pkg, banned) && strings.HasSuffix(banned, "/") {
				t.Errorf("%s links %s", step, pkg)
			}
		}
	}
}

// The push permission check runs while the build starts; a refusal stops
// the build, which would otherwise run its five-minute RUN (past the
// test's timeout), and is the error reported.
func TestRefusedPushStopsTheBuild(t *testing.T) {
	open := harness.StartRegistry(t)
	base := harness.Busybox(t, open)
	private := harness.StartRegistry(t, harness.WithHtpasswd("builder", "s3cret"))
	wrong := harness.DockerConfigDir(t, private.Host, "builder", "wrong")
	ctxDir := writeContext(t, map[string]string{"Dockerfile": "FROM " + base + "\nRUN sleep 300\n"})
	res := slipway(t, []string{"DOCKER_CONFIG=" + wrong}, "--context", ctxDir, "--destination", private.Host+"/team/app:1",
		"--insecure-registry", open.Host, "--insecure-registry", private.Host)
	if res.code == 0 {
		t.Fatalf("exit 0 with refused credentials:\n%s", res.stderr)
	}
	for _, want := range []string{private.Host, "UNAUTHORIZED"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("output does not mention %q:\n%s", want, res.stderr)
		}
	}
}
