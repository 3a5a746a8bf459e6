package parity

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-build/slipway/e2e/harness"
)

// buildkitVersion is the reference builder: Slipway follows BuildKit's
// Dockerfile frontend of this version where builders disagree.
const buildkitVersion = "v0.34.2"

// buildkitd is the reference daemon TestMain made sure of: its address
// and the buildctl of the same version.
var buildkitd struct{ addr, buildctl string }

// startBuildKit runs buildkit.sh, which builds buildkitd and buildctl once
// per machine and starts the daemon when none answers.
func startBuildKit() error {
	cmd := exec.Command("./buildkit.sh")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("e2e/parity/buildkit.sh: %w\n%s", err, stderr.String())
	}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "SLIPWAY_BUILDKIT_ADDR":
			buildkitd.addr = v
		case "SLIPWAY_BUILDCTL":
			buildkitd.buildctl = v
		}
	}
	if buildkitd.addr == "" || buildkitd.buildctl == "" {
		return fmt.Errorf("e2e/parity/buildkit.sh printed no address: %q", stdout.String())
	}
	return nil
}

var unsafeTagChars = regexp.MustCompile(`[^a-z0-9._-]+`)

// buildkitBuild builds b with BuildKit's Dockerfile frontend, pushes the
// image to reg and pulls it back for comparison. A failed build returns
// buildctl's output in the error.
func buildkitBuild(t *testing.T, reg *harness.Registry, b buildSpec) (v1.Image, error) {
	t.Helper()
	ref := buildkitRef(reg, b.name)
	argv := []string{"--addr", buildkitd.addr, "build", "--progress=plain",
		"--frontend", "dockerfile.v0",
		"--local", "context=" + b.dir, "--local", "dockerfile=" + b.dir,
		"--output", "type=image,name=" + ref + ",push=true,registry.insecure=true"}
	if b.target != "" {
		argv = append(argv, "--opt", "target="+b.target)
	}
	args := map[string]string{}
	for k, v := range b.args {
		args[k] = v
	}
	for k, v := range b.buildkitArgs {
		args[k] = v
	}
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		argv = append(argv, "--opt", "build-arg:"+k+"="+args[k])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, buildkitd.buildctl, argv...)
	cmd.Env = os.Environ()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, &buildkitError{err: err, output: out.String()}
	}
	// The image's layers are fetched lazily, after this function returns:
	// not with the build's context, which is cancelled by then.
	img, err := reg.Client().Pull(context.Background(), ref, v1.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		return nil, fmt.Errorf("pulling BuildKit's image %s: %w", ref, err)
	}
	return img, nil
}

// buildkitRef is where BuildKit's image of the case caseName is pushed.
func buildkitRef(reg *harness.Registry, caseName string) string {
	return fmt.Sprintf("%s/slipway-parity/buildkit-%s:%s", reg.Host, unsafeTagChars.ReplaceAllString(strings.ToLower(caseName), "-"), runID)
}

// buildkitError is a failed BuildKit build, with buildctl's output.
type buildkitError struct {
	err    error
	output string
}

func (e *buildkitError) Error() string {
	return fmt.Sprintf("buildctl build: %v\n%s", e.err, e.output)
}

// buildWithReference builds b with BuildKit and with Slipway at the same time.
func buildWithReference(t *testing.T, reg *harness.Registry, b buildSpec) (ref, slipway v1.Image, refErr, slipErr error) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		ref, refErr = buildkitBuild(t, reg, b)
	}()
	slipway, slipErr = slipwayBuild(t, reg, b)
	<-done
	return ref, slipway, refErr, slipErr
}
