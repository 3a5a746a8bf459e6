package steptest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/strategicpatch"

	"github.com/slipway-build/slipway/tasks"
)

func str(v string) pipelinev1.ParamValue { return *pipelinev1.NewStructuredValues(v) }
func arr(v ...string) pipelinev1.ParamValue {
	return pipelinev1.ParamValue{Type: pipelinev1.ParamTypeArray, ArrayVal: v}
}

func taskRun(params pipelinev1.Params, ws ...pipelinev1.WorkspaceBinding) *pipelinev1.TaskRun {
	return &pipelinev1.TaskRun{
		ObjectMeta: metav1.ObjectMeta{Name: "run-1", Namespace: "ci"},
		Spec:       pipelinev1.TaskRunSpec{Params: params, Workspaces: ws},
	}
}

var (
	sourcePVC    = pipelinev1.WorkspaceBinding{Name: "source", PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "src"}}
	dockerSecret = pipelinev1.WorkspaceBinding{Name: "dockerconfig", Secret: &corev1.SecretVolumeSource{SecretName: "regcred"}}
	cachePVC     = pipelinev1.WorkspaceBinding{Name: "cache", PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "cache"}}
	sslCertDir   = pipelinev1.WorkspaceBinding{Name: "sslcertdir", ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "trusted-ca"}}}
)

func onlyStep(t *testing.T, cs []Container) Container {
	t.Helper()
	if len(cs) != 1 {
		t.Fatalf("got %d steps, want 1", len(cs))
	}
	return cs[0]
}

func mountAt(c Container, path string) *corev1.VolumeMount {
	for i := range c.VolumeMounts {
		if c.VolumeMounts[i].MountPath == path {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

func env(c Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

func TestBuildTaskResolvesToExecutorFlags(t *testing.T) {
	tests := []struct {
		name       string
		run        *pipelinev1.TaskRun
		want       buildFlags
		wantMounts map[string]bool // mount path -> read only
		// wantCertDir is SSL_CERT_DIR: the image's directories, and the
		// sslcertdir workspace when bound (Go skips the empty entry).
		wantCertDir string
	}{{
		name: "defaults",
		run:  taskRun(pipelinev1.Params{{Name: "IMAGE", Value: str("127.0.0.1:5000/app:1")}}, sourcePVC),
		want: buildFlags{
			dockerfile: "./Dockerfile", context: "/workspace/source/./",
			digestFile: "/tekton/results/IMAGE_DIGEST", urlFile: "/tekton/results/IMAGE_URL", imagesFile: "/tekton/results/IMAGES",
			sbom: true, provenance: true, attestationsFile: "/tekton/results/ATTESTATIONS",
			artifactOutputsFile: "/tekton/results/ARTIFACT_OUTPUTS", tlsVerify: true,
			cacheDir: "/cache", destinations: list{"127.0.0.1:5000/app:1"},
		},
		wantMounts:  map[string]bool{"/workspace/source": false},
		wantCertDir: "/slipway/certs:/kaniko/ssl/certs:",
	}, {
		name: "every param and workspace",
		run: taskRun(pipelinev1.Params{
			{Name: "IMAGE", Value: str("127.0.0.1:5000/app:1")},
			{Name: "DOCKERFILE", Value: str("build/Containerfile")},
			{Name: "CONTEXT", Value: str("app")},
			{Name: "BUILD_ARGS", Value: arr("VERSION=1", "NOTE=a b,c")},
			{Name: "EXTRA_ARGS", Value: arr("--reproducible")},
			{Name: "ADDITIONAL_TAGS", Value: arr("127.0.0.1:5000/app:latest", "127.0.0.1:5000/other:1")},
			{Name: "TARGET", Value: str("runtime")},
			{Name: "CACHE", Value: str("true")},
			{Name: "CACHE_REPO", Value: str("127.0.0.1:5000/cache")},
			{Name: "PLATFORM", Value: str("linux/arm64")},
			{Name: "TLSVERIFY", Value: str("false")},
			{Name: "SKIP_PUSH", Value: str("true")},
		}, sourcePVC, dockerSecret, cachePVC, sslCertDir),
		want: buildFlags{
			dockerfile: "build/Containerfile", context: "/workspace/source/app",
			digestFile: "/tekton/results/IMAGE_DIGEST", urlFile: "/tekton/results/IMAGE_URL", imagesFile: "/tekton/results/IMAGES",
			sbom: true, provenance: true, attestationsFile: "/tekton/results/ATTESTATIONS",
			target: "runtime", cache: true, cacheRepo: "127.0.0.1:5000/cache", platform: "linux/arm64", cacheDir: "/cache",
			reproducible: true, artifactOutputsFile: "/tekton/results/ARTIFACT_OUTPUTS", noPush: true,
			destinations: list{"127.0.0.1:5000/app:1", "127.0.0.1:5000/app:latest", "127.0.0.1:5000/other:1"},
			buildArgs:    list{"VERSION=1", "NOTE=a b,c"},
		},
		wantMounts:  map[string]bool{"/workspace/source": false, "/slipway/.docker": true, "/cache": false, "/slipway/ssl/workspace": true},
		wantCertDir: "/slipway/certs:/kaniko/ssl/certs:/slipway/ssl/workspace",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs, err := ResolveTektonSteps(t.Context(), tasks.BuildTask(), tt.run)
			if err != nil {
				t.Fatal(err)
			}
			c := onlyStep(t, cs)
			if c.Image != tasks.BuilderImage {
				t.Errorf("image = %q, want the pinned default %q", c.Image, tasks.BuilderImage)
			}
			if want := []string{"/slipway/bin/slipway-build"}; !reflect.DeepEqual(c.Command, want) {
				t.Errorf("command = %q, want %q", c.Command, want)
			}
			if c.WorkingDir != "/workspace/source" {
				t.Errorf("workingDir = %q, want /workspace/source", c.WorkingDir)
			}
			if v, _ := env(c, "DOCKER_CONFIG"); v != "/slipway/.docker" {
				t.Errorf("DOCKER_CONFIG = %q, want /slipway/.docker", v)
			}
			if v, _ := env(c, "SSL_CERT_DIR"); v != tt.wantCertDir {
				t.Errorf("SSL_CERT_DIR = %q, want %q", v, tt.wantCertDir)
			}
			for _, a := range append(c.Args, c.WorkingDir) {
				if strings.Contains(a, "$(") {
					t.Errorf("unresolved variable left in %q", a)
				}
			}
			got, err := parseBuild(c.Args)
			if err != nil {
				t.Fatalf("slipway-build would reject %q: %v", c.Args, err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("flags from %q\n got %+v\nwant %+v", c.Args, *got, tt.want)
			}
			if len(c.VolumeMounts) != len(tt.wantMounts) {
				t.Errorf("mounts = %+v, want %v", c.VolumeMounts, tt.wantMounts)
			}
			for path, ro := range tt.wantMounts {
				m := mountAt(c, path)
				if m == nil {
					t.Errorf("no volume mounted at %s; mounts: %+v", path, c.VolumeMounts)
					continue
				}
				if m.ReadOnly != ro {
					t.Errorf("mount %s readOnly = %t, want %t", path, m.ReadOnly, ro)
				}
			}
		})
	}
}

func TestBuildTaskRejectsIncompleteRuns(t *testing.T) {
	tests := []struct {
		name    string
		run     *pipelinev1.TaskRun
		wantErr string
	}{
		{"no IMAGE", taskRun(nil, sourcePVC), "IMAGE"},
		{"no source workspace", taskRun(pipelinev1.Params{{Name: "IMAGE", Value: str("r/a")}}), `workspace "source"`},
		{"array given as string", taskRun(pipelinev1.Params{{Name: "IMAGE", Value: str("r/a")}, {Name: "BUILD_ARGS", Value: str("A=1")}}, sourcePVC), "BUILD_ARGS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ResolveTektonSteps(t.Context(), tasks.BuildTask(), tt.run)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one naming %s", err, tt.wantErr)
			}
		})
	}
}

func TestWarmTaskResolvesToWarmerFlags(t *testing.T) {
	run := taskRun(pipelinev1.Params{
		{Name: "IMAGES", Value: arr("127.0.0.1:5000/debian:bookworm", "127.0.0.1:5000/busybox:1")},
		{Name: "EXTRA_ARGS", Value: arr("--cache-ttl=24h")},
	}, pipelinev1.WorkspaceBinding{Name: "cache", EmptyDir: &corev1.EmptyDirVolumeSource{}})
	cs, err := ResolveTektonSteps(t.Context(), tasks.WarmTask(), run)
	if err != nil {
		t.Fatal(err)
	}
	c := onlyStep(t, cs)
	if want := []string{"/slipway/bin/slipway-warm"}; !reflect.DeepEqual(c.Command, want) {
		t.Errorf("command = %q, want %q", c.Command, want)
	}
	got, err := parseWarm(c.Args)
	if err != nil {
		t.Fatalf("slipway-warm would reject %q: %v", c.Args, err)
	}
	want := warmFlags{cacheDir: "/cache", images: list{"127.0.0.1:5000/debian:bookworm", "127.0.0.1:5000/busybox:1"}, cacheTTL: "24h"}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("flags from %q\n got %+v\nwant %+v", c.Args, *got, want)
	}
	if mountAt(c, "/cache") == nil {
		t.Errorf("cache workspace not mounted at /cache: %+v", c.VolumeMounts)
	}
	// With the source workspace unbound, Tekton leaves workingDir empty and
	// the image's own working directory applies.
	if c.WorkingDir != "" {
		t.Errorf("workingDir = %q, want empty with no source workspace", c.WorkingDir)
	}
}

func TestStepActionInUserTask(t *testing.T) {
	user := tasks.StepActionTaskSample()
	run := taskRun(pipelinev1.Params{{Name: "IMAGE", Value: str("127.0.0.1:5000/app:2")}}, sourcePVC, dockerSecret)
	inlined, err := InlineStepActions(t.Context(), user, run, tasks.BuildStepAction())
	if err != nil {
		t.Fatal(err)
	}
	cs, err := ResolveTektonSteps(t.Context(), inlined, run)
	if err != nil {
		t.Fatal(err)
	}
	c := onlyStep(t, cs)
	got, err := parseBuild(c.Args)
	if err != nil {
		t.Fatalf("slipway-build would reject %q: %v", c.Args, err)
	}
	want := buildFlags{
		dockerfile: "./Dockerfile", context: "/workspace/source/./", cacheDir: "/cache",
		digestFile: "/tekton/steps/step-build/results/IMAGE_DIGEST",
		urlFile:    "/tekton/steps/step-build/results/IMAGE_URL",
		imagesFile: "/tekton/steps/step-build/results/IMAGES",
		sbom:       true, provenance: true, attestationsFile: "/tekton/steps/step-build/results/ATTESTATIONS",
		artifactOutputsFile: "/tekton/steps/step-build/results/ARTIFACT_OUTPUTS", tlsVerify: true,
		destinations: list{"127.0.0.1:5000/app:2"},
	}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("flags from %q\n got %+v\nwant %+v", c.Args, *got, want)
	}
	if v, _ := env(c, "DOCKER_CONFIG"); v != "/workspace/dockerconfig" {
		t.Errorf("DOCKER_CONFIG = %q, want the dockerconfig workspace /workspace/dockerconfig", v)
	}
	if c.WorkingDir != "/workspace/source" {
		t.Errorf("workingDir = %q, want /workspace/source", c.WorkingDir)
	}
}

func argoArgs(kv ...string) wfv1.Arguments {
	var a wfv1.Arguments
	for i := 0; i < len(kv); i += 2 {
		a.Parameters = append(a.Parameters, wfv1.Parameter{Name: kv[i], Value: wfv1.AnyStringPtr(kv[i+1])})
	}
	return a
}

func TestArgoTemplatesResolveToExecutorFlags(t *testing.T) {
	tests := []struct {
		name     string
		template string
		args     wfv1.Arguments
		want     buildFlags
		volume   func(*testing.T, *wfv1.Template)
	}{{
		name:     "pvc source with defaults",
		template: tasks.ArgoTemplateBuild,
		args:     argoArgs("image", "127.0.0.1:5000/app:1", "source-pvc", "src"),
		want: buildFlags{
			dockerfile: "./Dockerfile", context: "/workspace/source/./", cacheDir: "/cache",
			digestFile: "/slipway/results/image-digest", urlFile: "/slipway/results/image-url", imagesFile: "/slipway/results/images",
			sbom: true, provenance: true, attestationsFile: "/slipway/results/attestations",
			tlsVerify: true, destinations: list{"127.0.0.1:5000/app:1"},
		},
		volume: func(t *testing.T, tm *wfv1.Template) {
			if tm.PodSpecPatch != "{}" {
				t.Errorf("podSpecPatch without cache-pvc = %q, want {}", tm.PodSpecPatch)
			}
			for _, v := range tm.Volumes {
				if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "src" {
					return
				}
			}
			t.Errorf("no volume for PVC src in %+v", tm.Volumes)
		},
	}, {
		name:     "git source with list inputs one per line",
		template: tasks.ArgoTemplateBuildGit,
		args: argoArgs("image", "127.0.0.1:5000/app:1", "git-repo", "http://10.0.0.2/app.git",
			"build-args", "VERSION=1\nNOTE=a b\n", "additional-tags", "127.0.0.1:5000/app:latest",
			"extra-args", "--reproducible", "cache", "true", "target", "runtime", "docker-config-secret", "regcred",
			"tlsverify", "false", "skip-push", "true", "git-credentials-secret", "gitcred", "context", "app",
			"cache-pvc", "buildcache"),
		want: buildFlags{
			dockerfile: "./Dockerfile", context: "http://10.0.0.2/app.git#HEAD", contextSubPath: "app", cacheDir: "/cache",
			digestFile: "/slipway/results/image-digest", urlFile: "/slipway/results/image-url", imagesFile: "/slipway/results/images",
			sbom: true, provenance: true, attestationsFile: "/slipway/results/attestations",
			target: "runtime", cache: true, reproducible: true, noPush: true,
			destinations: list{"127.0.0.1:5000/app:1", "127.0.0.1:5000/app:latest"},
			buildArgs:    list{"VERSION=1", "NOTE=a b"},
		},
		volume: func(t *testing.T, tm *wfv1.Template) {
			// The cache claim is patched into the pod as Argo's controller
			// patches it.
			pod, _ := json.Marshal(corev1.PodSpec{Containers: []corev1.Container{{Name: "main"}}})
			merged, err := strategicpatch.StrategicMergePatch(pod, []byte(tm.PodSpecPatch), corev1.PodSpec{})
			if err != nil {
				t.Fatalf("podSpecPatch %q: %v", tm.PodSpecPatch, err)
			}
			var patched corev1.PodSpec
			if err := json.Unmarshal(merged, &patched); err != nil {
				t.Fatal(err)
			}
			if v := patched.Volumes; len(v) != 1 || v[0].PersistentVolumeClaim == nil || v[0].PersistentVolumeClaim.ClaimName != "buildcache" ||
				len(patched.Containers[0].VolumeMounts) != 1 || patched.Containers[0].VolumeMounts[0].MountPath != "/cache" {
				t.Errorf("patched pod: volumes %+v, mounts %+v; want claim buildcache at /cache", v, patched.Containers[0].VolumeMounts)
			}
			// slipway-build clones; the git Secrets are optional.
			if len(tm.Inputs.Artifacts) != 0 {
				t.Errorf("input artifacts %+v, want none", tm.Inputs.Artifacts)
			}
			for _, e := range tm.Container.Env {
				if e.Name == "GIT_PASSWORD" {
					if r := e.ValueFrom.SecretKeyRef; r.Name != "gitcred" || r.Key != "password" || r.Optional == nil || !*r.Optional {
						t.Errorf("GIT_PASSWORD from %+v, want the optional key password of gitcred", r)
					}
				}
			}
			var ssh bool
			for _, v := range tm.Volumes {
				if v.Secret != nil && v.Secret.SecretName == "git-ssh-key" && v.Secret.Optional != nil && *v.Secret.Optional {
					ssh = true
				}
			}
			if !ssh {
				t.Errorf("no optional Secret volume git-ssh-key among %+v", tm.Volumes)
			}
			for _, v := range tm.Volumes {
				if v.Secret != nil && v.Secret.SecretName == "regcred" {
					return
				}
			}
			t.Errorf("docker config Secret regcred not among volumes %+v", tm.Volumes)
		},
	}}
	for _, tt := range tests {
		for _, scope := range []struct {
			name string
			spec *wfv1.WorkflowSpec
		}{
			{"WorkflowTemplate", &tasks.BuildWorkflowTemplate().Spec},
			{"ClusterWorkflowTemplate", &tasks.BuildClusterWorkflowTemplate().Spec},
		} {
			t.Run(tt.name+"/"+scope.name, func(t *testing.T) {
				c, resolved, err := ResolveArgoTemplate(scope.spec, tt.template, tt.args)
				if err != nil {
					t.Fatal(err)
				}
				if c.Image != tasks.BuilderImage {
					t.Errorf("image = %q, want %q", c.Image, tasks.BuilderImage)
				}
				if len(c.Command) != 1 || c.Command[0] != "/slipway/bin/slipway-build" {
					t.Errorf("command = %q, want the explicit /slipway/bin/slipway-build", c.Command)
				}
				got, err := parseBuild(c.Args)
				if err != nil {
					t.Fatalf("slipway-build would reject %q: %v", c.Args, err)
				}
				if !reflect.DeepEqual(*got, tt.want) {
					t.Errorf("flags from %q\n got %+v\nwant %+v", c.Args, *got, tt.want)
				}
				if c.ResultsDir == "" || mountAt(c, c.ResultsDir) == nil {
					t.Errorf("output directory %q is not a mounted volume: %+v", c.ResultsDir, c.VolumeMounts)
				}
				for _, o := range resolved.Outputs.Parameters {
					if o.ValueFrom == nil || !strings.HasPrefix(o.ValueFrom.Path, c.ResultsDir+"/") {
						t.Errorf("output %s is not read from a file under %s", o.Name, c.ResultsDir)
					}
				}
				tt.volume(t, resolved)
			})
		}
	}
}

func TestArgoTemplateRequiresImage(t *testing.T) {
	_, _, err := ResolveArgoTemplate(&tasks.BuildWorkflowTemplate().Spec, tasks.ArgoTemplateBuild, argoArgs("source-pvc", "src"))
	if err == nil || !strings.Contains(err.Error(), "image") {
		t.Fatalf("error = %v, want one naming the missing image input", err)
	}
}

func TestDockerRunArgs(t *testing.T) {
	run := taskRun(pipelinev1.Params{{Name: "IMAGE", Value: str("127.0.0.1:5000/app:1")}}, sourcePVC, dockerSecret)
	cs, err := ResolveTektonSteps(t.Context(), tasks.BuildTask(), run)
	if err != nil {
		t.Fatal(err)
	}
	c := onlyStep(t, cs)
	binds := map[string]string{"/workspace/source": "/tmp/src", "/slipway/.docker": "/tmp/secret", c.ResultsDir: "/tmp/results"}
	got, err := DockerRunArgs(c, binds)
	if err != nil {
		t.Fatal(err)
	}
	head := []string{"run", "--rm", "--entrypoint", "/slipway/bin/slipway-build", "--user", "0", "--workdir", "/workspace/source", "--env", "DOCKER_CONFIG=/slipway/.docker"}
	if !reflect.DeepEqual(got[:len(head)], head) {
		t.Errorf("docker run starts %q, want %q", got[:len(head)], head)
	}
	joined := strings.Join(got, " ")
	for _, want := range []string{
		"--volume /tmp/src:/workspace/source ",
		"--volume /tmp/secret:/slipway/.docker:ro ",
		"--volume /tmp/results:/tekton/results ",
		" " + tasks.BuilderImage + " --dockerfile=./Dockerfile ",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("docker run %s\nlacks %q", joined, want)
		}
	}
	if strings.Contains(joined, "--privileged") || strings.Contains(joined, "--cap-add") {
		t.Errorf("docker run asks for privileges: %s", joined)
	}

	delete(binds, "/slipway/.docker")
	if _, err := DockerRunArgs(c, binds); err == nil || !strings.Contains(err.Error(), "/slipway/.docker") {
		t.Errorf("error = %v, want one naming the unbound mount /slipway/.docker", err)
	}
}

// TestIndexDefinitionsResolveToIndexFlags resolves the slipway-index Task
// and the Argo index template as Tekton and Argo would, and parses the
// command line with slipway-index's flags: the list params reach it one
// flag per element, and the result files are where the results are read.
func TestIndexDefinitionsResolveToIndexFlags(t *testing.T) {
	images := list{"127.0.0.1:5000/app@sha256:" + strings.Repeat("a", 64), "127.0.0.1:5000/app@sha256:" + strings.Repeat("b", 64)}
	t.Run("Tekton Task", func(t *testing.T) {
		run := taskRun(pipelinev1.Params{
			{Name: "IMAGE", Value: str("127.0.0.1:5000/app:1")},
			{Name: "IMAGES", Value: arr(images...)},
			{Name: "PLATFORMS", Value: arr("linux/amd64", "linux/arm64")},
			{Name: "ADDITIONAL_TAGS", Value: arr("127.0.0.1:5000/app:latest")},
			{Name: "EXTRA_ARGS", Value: arr("--insecure-registry=127.0.0.1:5000")},
		})
		cs, err := ResolveTektonSteps(t.Context(), tasks.IndexTask(), run)
		if err != nil {
			t.Fatal(err)
		}
		c := onlyStep(t, cs)
		got, err := parseIndex(c.Args)
		if err != nil {
			t.Fatalf("slipway-index would reject %q: %v", c.Args, err)
		}
		want := indexFlags{
			destinations: list{"127.0.0.1:5000/app:1", "127.0.0.1:5000/app:latest"}, images: images,
			platforms: list{"linux/amd64", "linux/arm64"}, insecureRegistries: list{"127.0.0.1:5000"}, format: "oci",
			digestFile: "/tekton/results/IMAGE_DIGEST", urlFile: "/tekton/results/IMAGE_URL", imagesFile: "/tekton/results/IMAGES",
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("flags from %q\n got %+v\nwant %+v", c.Args, *got, want)
		}
	})
	t.Run("Argo template", func(t *testing.T) {
		c, _, err := ResolveArgoTemplate(&tasks.MultiArchWorkflowTemplate().Spec, tasks.ArgoTemplateIndex, argoArgs(
			"image", "127.0.0.1:5000/app:1", "images", strings.Join(images, "\n"), "platforms", "linux/amd64\nlinux/arm64\n",
			"format", "docker", "extra-args", "--insecure-registry=127.0.0.1:5000"))
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseIndex(c.Args)
		if err != nil {
			t.Fatalf("slipway-index would reject %q: %v", c.Args, err)
		}
		want := indexFlags{
			destinations: list{"127.0.0.1:5000/app:1"}, images: images,
			platforms: list{"linux/amd64", "linux/arm64"}, insecureRegistries: list{"127.0.0.1:5000"}, format: "docker",
			digestFile: "/slipway/results/image-digest", urlFile: "/slipway/results/image-url", imagesFile: "/slipway/results/images",
		}
		if !reflect.DeepEqual(*got, want) {
			t.Errorf("flags from %q\n got %+v\nwant %+v", c.Args, *got, want)
		}
	})
}
