package parity

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// runID keeps this run's docker tags apart from those of other runs and
// other test binaries sharing the same dockerd.
var runID = fmt.Sprintf("%d-%d", time.Now().Unix(), os.Getpid())

// docker runs the docker CLI; the output is returned in the error so that a
// failing build shows docker's own message.
func docker(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	// The reference is the legacy builder of Docker 20.10: the client would
	// otherwise look for buildx, which is not installed.
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.Bytes(), nil
}

// dockerPull makes ref (in the loopback test registry, which dockerd treats
// as insecure) available to dockerd once per test binary, and removes it
// when owner ends. owner must outlive every build FROM ref: the legacy
// builder would pull a removed base again by itself and leave it behind.
func dockerPull(owner *testing.T, ref string) error {
	pullMu.Lock()
	defer pullMu.Unlock()
	if pulled[ref] {
		return nil
	}
	if _, err := docker(context.Background(), "pull", "-q", ref); err != nil {
		return fmt.Errorf("making the base image available to dockerd: %w", err)
	}
	pulled[ref] = true
	owner.Cleanup(func() { dockerRemove(owner, ref) })
	return nil
}

var (
	pullMu sync.Mutex
	pulled = map[string]bool{}
)

// dockerBuild builds dir with the legacy builder and returns the image as
// `docker save` wrote it. The image stays in dockerd (a later case may
// build FROM it) until t ends.
func dockerBuild(t *testing.T, b buildSpec) (v1.Image, error) {
	t.Helper()
	tag := dockerTag(b.name)
	argv := []string{"build", "--network", "host", "--no-cache", "--force-rm", "-t", tag}
	if b.target != "" {
		argv = append(argv, "--target", b.target)
	}
	args := b.args
	keys := make([]string, 0, len(args))
	for k := range args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		argv = append(argv, "--build-arg", k+"="+args[k])
	}
	argv = append(argv, b.dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := docker(ctx, argv...)
	// Removing the tag prunes its own parents, but not the images of the
	// other stages of a multi-stage build: remove those by ID, newest first.
	ids := intermediateImages(out)
	t.Cleanup(func() {
		if err == nil {
			dockerRemove(t, tag)
		}
		for i := len(ids) - 1; i >= 0; i-- {
			// Most are gone already, pruned with the tag.
			_, _ = docker(context.Background(), "rmi", ids[i])
		}
	})
	if err != nil {
		return nil, err
	}
	return dockerSave(t, tag)
}

// dockerTag is the tag under which dockerd keeps this run's image of a case.
func dockerTag(caseName string) string {
	return fmt.Sprintf("slipway-parity-%s:%s", caseName, runID)
}

// stepImage is the legacy builder's " ---> 1234abcd5678" line: the image a
// step produced, or for FROM, the base image.
var stepImage = regexp.MustCompile(`^ ---> ([0-9a-f]{12})$`)

// intermediateImages lists the images a legacy build created, from its
// output; the image after a FROM step is a base, which is not ours.
func intermediateImages(out []byte) []string {
	var ids []string
	afterFrom := false
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.HasPrefix(line, "Step ") {
			_, instr, _ := strings.Cut(line, " : ")
			afterFrom = strings.HasPrefix(strings.ToUpper(instr), "FROM ")
			continue
		}
		if m := stepImage.FindStringSubmatch(line); m != nil && !afterFrom {
			ids = append(ids, m[1])
		}
	}
	return ids
}

func dockerSave(t *testing.T, tag string) (v1.Image, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "docker-save.tar")
	if _, err := docker(context.Background(), "save", "-o", path, tag); err != nil {
		return nil, err
	}
	ref, err := name.NewTag(tag)
	if err != nil {
		return nil, err
	}
	img, err := tarball.ImageFromPath(path, &ref)
	if err != nil {
		return nil, fmt.Errorf("reading docker save output %s: %w", path, err)
	}
	return img, nil
}

func dockerRemove(t testing.TB, ref string) {
	if out, err := docker(context.Background(), "rmi", "-f", ref); err != nil {
		t.Logf("removing %s from dockerd: %v: %s", ref, err, out)
	}
}
