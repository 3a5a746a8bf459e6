package podmodel

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"sigs.k8s.io/yaml"

	"github.com/slipway-build/slipway/e2e/harness"
)

// gitlabScript is the build job's script from examples/gitlab, as the
// runner executes it: each entry a command, stopping at the first failure.
func gitlabScript(t *testing.T) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "examples", "gitlab", ".gitlab-ci.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var ci map[string]struct {
		Script []string `json:"script"`
	}
	if err := yaml.Unmarshal(b, &ci); err != nil {
		t.Fatal(err)
	}
	if len(ci["build"].Script) == 0 {
		t.Fatal("examples/gitlab/.gitlab-ci.yml has no build script")
	}
	return "set -e\n" + strings.Join(ci["build"].Script, "\n")
}

// TestGitLabKanikoJob runs GitLab's documented kaniko job (examples/gitlab,
// unchanged but for the image) under the -debug image, with the CI_*
// variables a runner sets pointing at a registry with basic auth.
func TestGitLabKanikoJob(t *testing.T) {
	b := executorImages(t)
	reg := harness.StartRegistry(t, harness.WithHtpasswd(user, password))
	base := harness.Busybox(t, reg)
	project := writeContext(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nRUN echo from-gitlab > /gitlab.txt\n",
	})
	out, code := dockerRun(t,
		"-v", project+":/builds/group/project",
		"-e", "CI_PROJECT_DIR=/builds/group/project",
		"-e", "CI_REGISTRY="+reg.Host,
		"-e", "CI_REGISTRY_IMAGE="+reg.Host+"/group/project",
		"-e", "CI_REGISTRY_USER="+user,
		"-e", "CI_REGISTRY_PASSWORD="+password,
		"-e", "CI_COMMIT_TAG=v1.0.0",
		"--entrypoint", "/busybox/sh",
		b.debug, "-c", gitlabScript(t),
	)
	if code != 0 {
		t.Fatalf("the GitLab job exited %d:\n%s", code, out)
	}
	img := pulled(t, reg, reg.Host+"/group/project:v1.0.0")
	fs := flatten(t, img)
	if f := fs["/gitlab.txt"]; f == nil || string(f.data) != "from-gitlab\n" {
		t.Errorf("/gitlab.txt: got %v", f)
	}
	assertAbsent(t, fs, "/busybox", "/slipway", "/kaniko", "/builds")
}

func pulled(t *testing.T, reg *harness.Registry, dest string) v1.Image {
	t.Helper()
	ref, err := name.ParseReference(dest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref, remote.WithAuthFromKeychain(reg.Keychain()))
	if err != nil {
		t.Fatalf("fetching %s from the registry: %v", dest, err)
	}
	return img
}
