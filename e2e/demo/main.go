// Command demo runs Slipway's main job end to end on this machine: it
// starts a distribution registry on 127.0.0.1, pushes a busybox base made
// with Slipway's own code, builds a context with the slipway-build binary
// and shows what was pushed. `make demo` runs it on examples/hello.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/slipway-build/slipway/e2e/harness"
)

func main() {
	bin := flag.String("bin", "bin/slipway-build", "the slipway-build binary")
	contextDir := flag.String("context", "examples/hello", "the build context")
	flag.Parse()
	env := newEnv()
	code := 0
	if err := demo(env, *bin, *contextDir); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		code = 1
	}
	env.close()
	os.Exit(code)
}

func demo(env *demoEnv, bin, contextDir string) error {
	reg := harness.StartRegistry(env)
	fmt.Printf("==> Registry running on %s\n", reg.Host)
	base := harness.Busybox(env, reg)
	fmt.Printf("==> Base image %s pushed (busybox from busybox-static)\n", base)

	dest := reg.Host + "/demo/hello:latest"
	digestFile := filepath.Join(env.TempDir(), "digest")
	args := []string{
		"--context", contextDir,
		"--build-arg", "BASE=" + base,
		"--destination", dest,
		"--digest-file", digestFile,
		"--insecure-registry", reg.Host,
		"--work-dir", env.TempDir(),
	}
	fmt.Printf("==> %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("slipway-build: %w", err)
	}
	digest, err := os.ReadFile(digestFile)
	if err != nil {
		return err
	}
	return show(reg, dest, string(digest))
}

// show prints the pushed image as the registry has it.
func show(reg *harness.Registry, dest, digest string) error {
	ref, err := name.ParseReference(dest, name.Insecure)
	if err != nil {
		return err
	}
	img, err := remote.Image(ref, remote.WithContext(context.Background()))
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	fmt.Printf("\n==> Pushed %s\n    digest: %s\n", dest, digest)
	fmt.Println("    layers:")
	var created []string
	for _, h := range cf.History {
		if !h.EmptyLayer {
			created = append(created, h.CreatedBy)
		}
	}
	for i, l := range layers {
		d, _ := l.Digest()
		size, _ := l.Size()
		by := ""
		if i < len(created) {
			by = created[i]
		}
		fmt.Printf("      %s %8d bytes  %s\n", d.String()[:19], size, by)
	}
	cfg, err := json.MarshalIndent(cf.Config, "    ", "  ")
	if err != nil {
		return err
	}
	fmt.Printf("    config:\n    %s\n", cfg)
	return nil
}

// demoEnv lets the test harness, written for tests, run in this program:
// it provides the few testing.TB methods the harness uses.
type demoEnv struct {
	testing.TB
	dir      string
	cleanups []func()
	failed   bool
}

func newEnv() *demoEnv {
	dir, err := os.MkdirTemp("", "slipway-demo-")
	if err != nil {
		panic(err)
	}
	return &demoEnv{dir: dir}
}

func (e *demoEnv) Helper()                 {}
func (e *demoEnv) Cleanup(f func())        { e.cleanups = append(e.cleanups, f) }
func (e *demoEnv) Failed() bool            { return e.failed }
func (e *demoEnv) Logf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...) }
func (e *demoEnv) Log(a ...any)            { fmt.Fprintln(os.Stderr, a...) }
func (e *demoEnv) Name() string            { return "demo" }

func (e *demoEnv) TempDir() string {
	d, err := os.MkdirTemp(e.dir, "")
	if err != nil {
		e.Fatal(err)
	}
	return d
}

func (e *demoEnv) Fatal(a ...any) { e.Fatalf("%s", fmt.Sprint(a...)) }

func (e *demoEnv) Fatalf(f string, a ...any) {
	e.failed = true
	fmt.Fprintf(os.Stderr, "demo failed: "+f+"\n", a...)
	e.close()
	os.Exit(1)
}

func (e *demoEnv) Errorf(f string, a ...any) {
	e.failed = true
	fmt.Fprintf(os.Stderr, f+"\n", a...)
}

func (e *demoEnv) close() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	e.cleanups = nil
	os.RemoveAll(e.dir)
}
