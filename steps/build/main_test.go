package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/urfave/cli/v2"
)

// The test binary doubles as slipway-build, so that the tests run the real
// command line in a separate process.
func TestMain(m *testing.M) {
	if os.Getenv("SLIPWAY_BUILD_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runBuild(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "SLIPWAY_BUILD_AS_MAIN=1"), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// kanikoV124Flags is every flag of kaniko v1.24.0's executor
// (cmd/executor/cmd/root.go), legacy spellings included.
var kanikoV124Flags = []string{
	"verbosity", "v", "log-format", "log-timestamp",
	"dockerfile", "f", "context", "c", "context-sub-path", "bucket", "b", "destination", "d",
	"snapshot-mode", "custom-platform", "build-arg", "insecure", "skip-tls-verify", "insecure-pull",
	"skip-tls-verify-pull", "push-retry", "push-ignore-immutable-tag-errors", "image-fs-extract-retry",
	"image-download-retry", "kaniko-dir", "tar-path", "single-snapshot", "reproducible", "target",
	"no-push", "no-push-cache", "cache-repo", "cache-dir", "digest-file", "image-name-with-digest-file",
	"image-name-tag-with-digest-file", "oci-layout-path", "compression", "compression-level", "cache",
	"compressed-caching", "cleanup", "cache-ttl", "insecure-registry", "skip-tls-verify-registry",
	"registry-certificate", "registry-client-cert", "registry-map", "registry-mirror",
	"skip-default-registry-fallback", "ignore-var-run", "label", "skip-unused-stages", "use-new-run",
	"git", "cache-copy-layers", "cache-run-layers", "ignore-path", "force-build-metadata", "force",
	"skip-push-permission-check", "whitelist-var-run", "snapshotMode", "customPlatform", "tarPath",
	// The osscontainertools fork (v1.28).
	"annotation", "credential-helpers", "dryrun", "image-format", "preserve-context", "pre-cleanup", "secret",
}

func TestEveryKanikoFlag(t *testing.T) {
	names := map[string]bool{}
	for _, f := range flags() {
		for _, n := range f.Names() {
			names[n] = true
		}
	}
	for _, n := range kanikoV124Flags {
		if !names[n] {
			t.Errorf("kaniko's --%s is not accepted", n)
		}
	}
}

// Compatibility-only flags say so in their help.
func TestCompatFlagsSaySo(t *testing.T) {
	for _, f := range flags() {
		if _, ok := compat[f.Names()[0]]; !ok {
			continue
		}
		if u := f.(cli.DocGenerationFlag).GetUsage(); !strings.Contains(u, "no effect") {
			t.Errorf("--%s: help %q does not say it has no effect", f.Names()[0], u)
		}
	}
}

func writeContext(t *testing.T, dockerfile string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCommandLineErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--destnation=r/app"}, "unknown flag --destnation: did you mean --destination? (see slipway-build --help)"},
		{"positional", []string{"--no-push", "Dockerfile"}, `unexpected argument "Dockerfile"`},
		{"compression", []string{"--no-push", "--compression=brotli"}, `--compression "brotli": use gzip or zstd`},
		{"log format", []string{"--no-push", "--log-format=yaml"}, `--log-format "yaml"`},
		{"verbosity", []string{"--no-push", "--verbosity=loud"}, `unknown --verbosity "loud"`},
		{"snapshot mode", []string{"--no-push", "--snapshotMode=fast"}, `--snapshot-mode "fast"`},
		{"image format", []string{"--no-push", "--image-format=v1"}, `--image-format "v1": use , oci or docker`},
		{"credential source", []string{"--no-push", "--credential-helpers=vault"}, `--credential-helpers "vault"`},
		{"gzip level", []string{"--no-push", "--compression-level=12"}, `gzip levels are 1 to 9`},
		{"bad env bool", []string{"--no-push"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.want == "" {
				out, err := runBuild(t, []string{"KANIKO_CLEANUP=maybe"}, tt.args...)
				if err == nil || !strings.Contains(out, "KANIKO_CLEANUP") {
					t.Fatalf("KANIKO_CLEANUP=maybe: err %v, output:\n%s", err, out)
				}
				return
			}
			out, err := runBuild(t, nil, tt.args...)
			if err == nil {
				t.Fatalf("exit 0, want an error; output:\n%s", out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("output %q does not contain %q", out, tt.want)
			}
			if n := strings.Count(strings.TrimSpace(out), "\n"); n > 0 {
				t.Errorf("%d lines, want one:\n%s", n+1, out)
			}
		})
	}
}

func TestJSONError(t *testing.T) {
	out, err := runBuild(t, nil, "--log-format", "json", "--no-push", "--context", "/nonexistent/ctx")
	if err == nil {
		t.Fatalf("exit 0; output:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil {
		t.Fatalf("the final error is not JSON: %q", lines[len(lines)-1])
	}
	if rec["level"] != "ERROR" || !strings.Contains(rec["msg"].(string), "/nonexistent/ctx") {
		t.Errorf("final error record = %v", rec)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, err := runBuild(t, nil, args...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		if !strings.HasPrefix(out, "slipway-build version ") || !strings.Contains(out, runtime.Version()) || !strings.Contains(out, "commit ") {
			t.Errorf("%v printed %q", args, out)
		}
	}
}

// kaniko command lines, legacy spellings and fork flags included, run as
// they are; --dryrun prints the plan and builds nothing.
func TestDryRunWithKanikoFlags(t *testing.T) {
	ctx := writeContext(t, "FROM scratch AS base\nCOPY hello.txt /\nFROM base AS app\nLABEL a=b\n")
	out, err := runBuild(t, []string{"KANIKO_PRESERVE_CONTEXT=true", "KANIKO_PRE_CLEANUP=1", "KANIKO_DIR=/kaniko-elsewhere"},
		"--dryrun", "--context", "dir://"+ctx, "--snapshotMode=redo", "--customPlatform=linux/amd64",
		"--tarPath", filepath.Join(t.TempDir(), "never.tar"), "--whitelist-var-run=false", "-b", "some-bucket",
		"--push-ignore-immutable-tag-errors", "--image-fs-extract-retry=2", "--force-build-metadata",
		"--annotation", "org.example=1", "--credential-helpers=", "--image-format=oci", "--target", "app", "--target", "base",
		"-v", "debug")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"stage 0 (base): FROM scratch", "stage 1 (app), the target: FROM base", "COPY hello.txt /",
		"--snapshot-mode is accepted for kaniko compatibility and has no effect", "--preserve-context is accepted"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// KANIKO_NO_PUSH stands for --no-push; --image-format and --annotation
// shape the manifest written.
func TestNoPushFromEnvironment(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("builds need root")
	}
	ctx := writeContext(t, "FROM scratch\nCOPY hello.txt /\n")
	oci := filepath.Join(t.TempDir(), "layout")
	out, err := runBuild(t, []string{"KANIKO_NO_PUSH=true"}, "--context", ctx, "--oci-layout-path", oci,
		"--image-format=docker", "--annotation", "org.example.team=builders", "--work-dir", t.TempDir(), "--cache-dir", t.TempDir())
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	p, err := layout.FromPath(oci)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.DockerManifestSchema2 || m.Config.MediaType != types.DockerConfigJSON || m.Layers[0].MediaType != types.DockerLayer {
		t.Errorf("media types %s, %s, %s: want docker's", m.MediaType, m.Config.MediaType, m.Layers[0].MediaType)
	}
	if m.Annotations["org.example.team"] != "builders" {
		t.Errorf("annotations = %v", m.Annotations)
	}
}
