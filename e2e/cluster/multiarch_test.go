//go:build cluster

package cluster

import (
	"archive/tar"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// multiPlatforms are the platforms the multi-platform tests build: the
// node's own and arm64, whose RUN goes through the node's QEMU handler.
var multiPlatforms = []string{"linux/amd64", "linux/arm64"}

// archContext is a build context whose image records the machine its RUN
// ran on, and prints it.
func archContext() map[string]string {
	return map[string]string{
		"Dockerfile": fmt.Sprintf("FROM %s\nARG TARGETARCH\nRUN echo \"$TARGETARCH $(uname -m)\" > /arch\nCMD [\"cat\", \"/arch\"]\n", cl.busyboxMulti),
	}
}

// wantArch is what /arch holds in each platform's image.
var wantArch = map[string]string{"linux/amd64": "amd64 x86_64", "linux/arm64": "arm64 aarch64"}

func TestTektonMultiArchPipeline(t *testing.T) {
	if cl.busyboxMulti == "" {
		t.Fatal("cluster.sh wrote no SLIPWAY_CLUSTER_BUSYBOX_MULTI: restart the cluster with this cluster.sh")
	}
	sourceVolume(t, "multiarch-source", archContext())
	image := fmt.Sprintf("%s/e2e/tekton-multiarch:%s", cl.registry, runID)
	pr := "multiarch-" + runID
	mustApply(t, fmt.Sprintf(`
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: %s}
spec:
  pipelineRef: {name: slipway-multiarch}
  params:
  - {name: IMAGE, value: %q}
  - {name: PLATFORMS, value: %s}
  - {name: EXTRA_ARGS, value: %s}
  taskRunTemplate:
    podTemplate:
      securityContext: {seccompProfile: {type: RuntimeDefault}}
  workspaces:
  - {name: source, persistentVolumeClaim: {claimName: multiarch-source}}
  - {name: dockerconfig, secret: {secretName: regcred}}
`, pr, image, yamlList(multiPlatforms), yamlList(insecure)))
	start := time.Now()
	o, ok := waitTekton(t, "pipelinerun", pr, start)
	if !ok {
		for _, c := range o.Status.ChildReferences {
			describe(t, "taskrun", c.Name)
		}
		t.Fatal("pipelinerun failed")
	}
	// One TaskRun per platform, then the index.
	if len(o.Status.ChildReferences) != len(multiPlatforms)+1 {
		t.Errorf("pipelinerun ran %d TaskRuns, want %d builds and the index", len(o.Status.ChildReferences), len(multiPlatforms))
	}
	digest, _ := result(o, "IMAGE_DIGEST")
	url, _ := result(o, "IMAGE_URL")
	if url != image {
		t.Errorf("IMAGE_URL = %q, want %q", url, image)
	}
	checkIndex(t, image, digest)
}

func TestArgoMultiArch(t *testing.T) {
	if cl.busyboxMulti == "" {
		t.Fatal("cluster.sh wrote no SLIPWAY_CLUSTER_BUSYBOX_MULTI: restart the cluster with this cluster.sh")
	}
	claim := "argo-multiarch"
	sourceVolume(t, claim, archContext())
	image := fmt.Sprintf("%s/e2e/argo-multiarch:%s", cl.registry, runID)
	wf := "argo-multiarch-" + runID
	mustApply(t, fmt.Sprintf(`
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: %s}
spec:
  entrypoint: main
  securityContext: {seccompProfile: {type: RuntimeDefault}}
  templates:
  - name: main
    steps:
    - - name: multiarch
        templateRef: {name: slipway-multiarch, template: multiarch}
        arguments:
          parameters:
          - {name: image, value: %q}
          - {name: source-pvc, value: %s}
          - {name: platforms, value: %q}
          - {name: docker-config-secret, value: regcred}
          - {name: extra-args, value: %q}
`, wf, image, claim, yamlList(multiPlatforms), strings.Join(insecure, "\n")))
	o := waitArgo(t, wf, time.Now())
	var digest, url string
	builds := 0
	for _, n := range o.Status.Nodes {
		if n.Type != "Pod" {
			continue
		}
		if strings.HasPrefix(n.DisplayName, "build(") {
			builds++
		}
		if n.DisplayName != "index" {
			continue
		}
		for _, p := range n.Outputs.Parameters {
			switch p.Name {
			case "image-digest":
				digest = p.Value
			case "image-url":
				url = p.Value
			}
		}
	}
	if builds != len(multiPlatforms) {
		t.Errorf("the workflow ran %d build pods, want one per platform (%d)", builds, len(multiPlatforms))
	}
	if url != image {
		t.Errorf("image-url output = %q, want %q", url, image)
	}
	checkIndex(t, image, digest)
}

// checkIndex asserts that the registry serves digest for url, an index of
// one image per platform of multiPlatforms whose RUN ran on that
// platform's machine, and that the node runs its own platform's image
// from it.
func checkIndex(t *testing.T, url, digest string) {
	t.Helper()
	ref, err := name.NewDigest(url[:strings.LastIndex(url, ":")]+"@"+digest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	auth := remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: cl.user, Password: cl.pw}))
	idx, err := remote.Index(ref, auth)
	if err != nil {
		t.Fatalf("%s is not an index: %v", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, d := range im.Manifests {
		if d.Platform == nil {
			t.Errorf("manifest %s names no platform", d.Digest)
			continue
		}
		p := d.Platform.String()
		platforms = append(platforms, p)
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(fileIn(t, img, "arch")); got != wantArch[p] {
			t.Errorf("%s image's /arch = %q, want %q", p, got, wantArch[p])
		}
	}
	sort.Strings(platforms)
	if strings.Join(platforms, ",") != strings.Join(multiPlatforms, ",") {
		t.Errorf("the index holds %v, want %v", platforms, multiPlatforms)
	}
	// The registry serves digest for url, and the node, linux/amd64, runs
	// that image from the index.
	checkPushed(t, url, digest, wantArch["linux/amd64"])
}

// fileIn reads the regular file path (relative, as in a layer) from img's
// flattened filesystem.
func fileIn(t *testing.T, img v1.Image, path string) string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatalf("the image has no /%s", path)
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "./") == path {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(b)
		}
	}
}
