package podmodel

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/slipway-build/slipway/e2e/harness"
	"github.com/slipway-build/slipway/tasks"
	"github.com/slipway-build/slipway/tasks/steptest"
)

// The published Task's step, turned into a concrete container by Tekton's
// own substitution code and run as the executor image under docker with
// the workspaces and the docker-config Secret mounted as Tekton mounts
// them. Its result files are what Tekton Chains reads.
func TestTektonTaskStepRunsTheExecutor(t *testing.T) {
	b := executorImages(t)
	reg := harness.StartRegistry(t, harness.WithHtpasswd(user, password))
	base := harness.Busybox(t, reg)

	source := writeContext(t, map[string]string{
		"app/Dockerfile": "ARG BASE\nFROM ${BASE}\nARG WHO\nCOPY hello.txt /hello.txt\nRUN echo \"for ${WHO}\" > /who\n",
		"app/hello.txt":  "hello\n",
	})
	// `kubectl create secret docker-registry` stores the config under the
	// key .dockerconfigjson, and a Secret workspace mounts each key as a file.
	secret := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(reg.DockerConfigDir(t), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	harness.WriteFile(t, filepath.Join(secret, ".dockerconfigjson"), string(cfg))
	results := t.TempDir()

	image := reg.Host + "/tekton/app:1"
	run := &pipelinev1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: "build-1", Namespace: "ci"},
		Spec: pipelinev1.TaskRunSpec{
			Params: pipelinev1.Params{
				{Name: "IMAGE", Value: *pipelinev1.NewStructuredValues(image)},
				{Name: "CONTEXT", Value: *pipelinev1.NewStructuredValues("app")},
				{Name: "BUILD_ARGS", Value: pipelinev1.ParamValue{Type: pipelinev1.ParamTypeArray, ArrayVal: []string{"BASE=" + base, "WHO=tekton users"}}},
				{Name: "ADDITIONAL_TAGS", Value: pipelinev1.ParamValue{Type: pipelinev1.ParamTypeArray, ArrayVal: []string{reg.Host + "/tekton/app:latest"}}},
				{Name: "EXTRA_ARGS", Value: pipelinev1.ParamValue{Type: pipelinev1.ParamTypeArray, ArrayVal: []string{"--insecure-registry=" + reg.Host}}},
			},
			Workspaces: []pipelinev1.WorkspaceBinding{
				{Name: "source", PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "src"}},
				{Name: "dockerconfig", Secret: &corev1.SecretVolumeSource{SecretName: "regcred"}},
			},
		},
	}
	steps, err := steptest.ResolveTektonSteps(context.Background(), tasks.BuildTask(), run)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 1 {
		t.Fatalf("the Task has %d steps, want 1", len(steps))
	}
	step := steps[0]
	// The published Task pins the released image; here it is the one just
	// built and loaded into docker.
	step.Image = b.executor
	binds := map[string]string{"/workspace/source": source, "/slipway/.docker": secret, step.ResultsDir: results}
	args, err := steptest.DockerRunArgs(step, binds)
	if err != nil {
		t.Fatal(err)
	}
	out, code := dockerRun(t, args[2:]...) // dockerRun adds "run --rm"
	if code != 0 {
		t.Fatalf("the step exited %d:\n%s", code, out)
	}

	img := assertPushed(t, reg, image, filepath.Join(results, "IMAGE_DIGEST"))
	digest, _ := img.Digest()
	if got := readResult(t, results, "IMAGE_URL"); got != image {
		t.Errorf("IMAGE_URL = %q, want %q", got, image)
	}
	// IMAGE and ADDITIONAL_TAGS share a repository: IMAGES names it once.
	wantImages := reg.Host + "/tekton/app@" + digest.String()
	if got := readResult(t, results, "IMAGES"); got != wantImages {
		t.Errorf("IMAGES = %q, want %q", got, wantImages)
	}
	wantArtifact := `{"digest":"` + digest.String() + `","isBuildArtifact":"true","uri":"` + image + `"}`
	if got := readResult(t, results, "ARTIFACT_OUTPUTS"); got != wantArtifact {
		t.Errorf("ARTIFACT_OUTPUTS = %q, want %q", got, wantArtifact)
	}
	fs := flatten(t, img)
	if f := fs["/who"]; f == nil || string(f.data) != "for tekton users\n" {
		t.Errorf("/who = %v: BUILD_ARGS did not reach the build", f)
	}
}

// The Argo WorkflowTemplate's step, substituted by Argo's own code, run the
// same way; its output parameters come from files.
func TestArgoTemplateStepRunsTheExecutor(t *testing.T) {
	b := executorImages(t)
	reg := harness.StartRegistry(t, harness.WithHtpasswd(user, password))
	base := harness.Busybox(t, reg)
	source := writeContext(t, map[string]string{
		"Dockerfile": "ARG BASE\nFROM ${BASE}\nCOPY hello.txt /hello.txt\n",
		"hello.txt":  "hello from argo\n",
	})
	secret := t.TempDir()
	cfg, err := os.ReadFile(filepath.Join(reg.DockerConfigDir(t), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	harness.WriteFile(t, filepath.Join(secret, ".dockerconfigjson"), string(cfg))

	image := reg.Host + "/argo/app:1"
	wt := tasks.BuildWorkflowTemplate()
	args := wfv1.Arguments{Parameters: []wfv1.Parameter{
		{Name: "image", Value: wfv1.AnyStringPtr(image)},
		{Name: "source-pvc", Value: wfv1.AnyStringPtr("src")},
		{Name: "build-args", Value: wfv1.AnyStringPtr("BASE=" + base)},
		{Name: "extra-args", Value: wfv1.AnyStringPtr("--insecure-registry=" + reg.Host)},
	}}
	step, _, err := steptest.ResolveArgoTemplate(&wt.Spec, tasks.ArgoTemplateBuild, args)
	if err != nil {
		t.Fatal(err)
	}
	step.Image = b.executor
	results := t.TempDir()
	hostDirs := map[string]string{"docker-config": secret, "source": source, "results": results}
	binds := map[string]string{}
	for _, m := range step.VolumeMounts {
		dir, ok := hostDirs[m.Name]
		if !ok {
			t.Fatalf("the template mounts a volume %q the test does not know", m.Name)
		}
		binds[m.MountPath] = dir
	}
	if binds[step.ResultsDir] != results {
		t.Fatalf("the output parameters are read from %s, which is not the results volume", step.ResultsDir)
	}
	dargs, err := steptest.DockerRunArgs(step, binds)
	if err != nil {
		t.Fatal(err)
	}
	out, code := dockerRun(t, dargs[2:]...)
	if code != 0 {
		t.Fatalf("the step exited %d:\n%s", code, out)
	}
	img := assertPushed(t, reg, image, filepath.Join(results, "image-digest"))
	if fs := flatten(t, img); fs["/hello.txt"] == nil {
		t.Error("the context did not reach the build")
	}
	if got := readResult(t, results, "image-url"); got != image {
		t.Errorf("image-url = %q, want %q", got, image)
	}
}

func readResult(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("result %s: %v", name, err)
	}
	if strings.HasSuffix(string(b), "\n") {
		t.Errorf("result %s ends in a newline; Tekton Chains reads it verbatim", name)
	}
	return string(b)
}

// The Task's sslcertdir workspace: a registry whose certificate only the
// CA in the workspace vouches for is trusted, with no --registry-certificate
// (and is not without the workspace). Under SKIP_PUSH the build succeeds,
// IMAGES is empty, ARTIFACT_OUTPUTS is not written and nothing is pushed.
func TestTektonTaskSSLCertDirAndSkipPush(t *testing.T) {
	b := executorImages(t)
	reg := harness.StartRegistry(t, harness.WithTLS())
	base := harness.Busybox(t, reg)
	source := writeContext(t, map[string]string{"Dockerfile": "FROM " + base + "\nCOPY hello.txt /\n", "hello.txt": "hello\n"})
	certs := t.TempDir()
	ca, err := os.ReadFile(reg.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	harness.WriteFile(t, filepath.Join(certs, "ca-bundle.crt"), string(ca))

	run := func(t *testing.T, image string, withCerts bool, params ...pipelinev1.Param) (string, int, string) {
		t.Helper()
		ws := []pipelinev1.WorkspaceBinding{{Name: "source", PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "src"}}}
		if withCerts {
			ws = append(ws, pipelinev1.WorkspaceBinding{Name: "sslcertdir", ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "trusted-ca"}}})
		}
		tr := &pipelinev1.TaskRun{
			ObjectMeta: metav1.ObjectMeta{Name: "tls-1", Namespace: "ci"},
			Spec: pipelinev1.TaskRunSpec{
				Params:     append(pipelinev1.Params{{Name: "IMAGE", Value: *pipelinev1.NewStructuredValues(image)}}, params...),
				Workspaces: ws,
			},
		}
		steps, err := steptest.ResolveTektonSteps(context.Background(), tasks.BuildTask(), tr)
		if err != nil {
			t.Fatal(err)
		}
		step := steps[0]
		step.Image = b.executor
		results := t.TempDir()
		binds := map[string]string{"/workspace/source": source, step.ResultsDir: results}
		if withCerts {
			binds["/slipway/ssl/workspace"] = certs
		}
		args, err := steptest.DockerRunArgs(step, binds)
		if err != nil {
			t.Fatal(err)
		}
		out, code := dockerRun(t, args[2:]...)
		return out, code, results
	}

	t.Run("sslcertdir", func(t *testing.T) {
		image := reg.Host + "/tls/app:1"
		out, code, results := run(t, image, true)
		if code != 0 {
			t.Fatalf("the step exited %d:\n%s", code, out)
		}
		c := reg.Client()
		ref, _ := name.ParseReference(image)
		desc, err := remote.Get(c.Reference(ref, false), c.RemoteOptions(ref, false)...)
		if err != nil {
			t.Fatalf("%s: %v", image, err)
		}
		if got := readResult(t, results, "IMAGE_DIGEST"); got != desc.Digest.String() {
			t.Errorf("IMAGE_DIGEST = %s, registry has %s", got, desc.Digest)
		}
	})
	t.Run("without sslcertdir", func(t *testing.T) {
		out, code, _ := run(t, reg.Host+"/tls/app:2", false)
		if code == 0 || !strings.Contains(out, "certificate") {
			t.Fatalf("exit %d without the CA, want a certificate error:\n%s", code, out)
		}
	})
	t.Run("SKIP_PUSH", func(t *testing.T) {
		image := reg.Host + "/tls/app:skipped"
		out, code, results := run(t, image, true, pipelinev1.Param{Name: "SKIP_PUSH", Value: *pipelinev1.NewStructuredValues("true")})
		if code != 0 {
			t.Fatalf("the step exited %d:\n%s", code, out)
		}
		if got := readResult(t, results, "IMAGES"); got != "" {
			t.Errorf("IMAGES = %q under SKIP_PUSH, want empty", got)
		}
		if _, err := os.Stat(filepath.Join(results, "ARTIFACT_OUTPUTS")); !os.IsNotExist(err) {
			t.Errorf("ARTIFACT_OUTPUTS written under SKIP_PUSH (%v)", err)
		}
		c := reg.Client()
		ref, _ := name.ParseReference(image)
		if _, err := remote.Get(c.Reference(ref, false), c.RemoteOptions(ref, false)...); err == nil {
			t.Errorf("%s was pushed under SKIP_PUSH", image)
		}
	})
}
