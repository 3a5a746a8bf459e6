package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-build/slipway/e2e/harness"
	"github.com/slipway-build/slipway/engine/cache"
)

// The test binary doubles as slipway-warm, so that the tests run the real
// command line, in separate processes, without a separate go build.
func TestMain(m *testing.M) {
	if os.Getenv("SLIPWAY_WARM_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runWarm(args ...string) (string, error) {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "SLIPWAY_WARM_AS_MAIN=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestCommandLine(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the distribution registry; run without -short")
	}
	reg := harness.StartRegistry(t)
	base := harness.Busybox(t, reg)
	index := harness.BusyboxIndex(t, reg)
	dir := t.TempDir()
	// As the Tekton Task passes it: an empty DOCKERFILE param, and the
	// IMAGES and BUILD_ARGS arrays as a list tail. Two processes at once
	// share the directory.
	args := []string{"--cache-dir=" + dir, "--dockerfile=", "--insecure-registry=" + reg.Host, "-f",
		"--", "--image", base, index, "--build-arg"}
	var wg sync.WaitGroup
	outs := make([]string, 2)
	errs := make([]error, 2)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = runWarm(args...)
		}()
	}
	wg.Wait()
	for i := range outs {
		if errs[i] != nil {
			t.Fatalf("slipway-warm %d: %v\n%s", i, errs[i], outs[i])
		}
		for _, ref := range []string{base, index} {
			if !strings.Contains(outs[i], "Cached image "+ref) {
				t.Errorf("slipway-warm %d did not cache %s:\n%s", i, ref, outs[i])
			}
		}
	}
	c := cache.NewLayoutCache(dir, 0)
	if err := c.Validate(); err != nil {
		t.Errorf("layout does not validate after two concurrent warmers: %v", err)
	}
	for _, ref := range []string{base, index} {
		img, ok, err := c.Get(ref, v1.Platform{})
		if !ok || err != nil {
			t.Fatalf("%s not cached: %v", ref, err)
		}
		pulled, err := reg.Client().Pull(context.Background(), ref, v1.Platform{})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := img.Digest()
		want, _ := pulled.Digest()
		if got != want {
			t.Errorf("%s cached as %s, registry has %s", ref, got, want)
		}
	}

	out, err := runWarm("--cache-dir="+dir, "--insecure-registry="+reg.Host, "--image", base)
	if err != nil || !strings.Contains(out, "already cached") {
		t.Errorf("a second run was not a no-op (%v):\n%s", err, out)
	}
	// kaniko's warmer spells plain-HTTP pulls --insecure.
	out, err = runWarm("--cache-dir="+dir, "--insecure", "--force", "--image="+base)
	if err != nil || !strings.Contains(out, "Cached image "+base) {
		t.Errorf("--insecure did not pull over plain HTTP (%v):\n%s", err, out)
	}
}

func TestCommandLineErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"nothing to warm", []string{"--cache-dir=" + t.TempDir(), "--dockerfile="}, "nothing to warm"},
		{"bad certificate pair", []string{"--image=a", "--registry-certificate=nohost"}, "want host=value"},
		{"bad TTL", []string{"--image=a", "--cache-ttl=soon"}, "cache-ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runWarm(tt.args...)
			if err == nil {
				t.Fatalf("slipway-warm succeeded:\n%s", out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("output does not mention %q:\n%s", tt.want, out)
			}
		})
	}
}
