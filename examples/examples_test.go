package examples

import (
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	argofake "github.com/argoproj/argo-workflows/v3/pkg/client/clientset/versioned/fake"
	"github.com/argoproj/argo-workflows/v3/workflow/templateresolution"
	"github.com/argoproj/argo-workflows/v3/workflow/validate"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/slipway-build/slipway/tasks"
)

func yamlFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// argoGetters serve the generated templates, so that templateRefs in the
// examples are checked against what the catalog publishes.
func argoGetters(t *testing.T) (templateresolution.WorkflowTemplateNamespacedGetter, templateresolution.ClusterWorkflowTemplateGetter) {
	t.Helper()
	wt := tasks.BuildWorkflowTemplate()
	wt.Namespace = metav1.NamespaceDefault
	multi := tasks.MultiArchWorkflowTemplate()
	multi.Namespace = metav1.NamespaceDefault
	client := argofake.NewSimpleClientset(wt, multi, tasks.BuildClusterWorkflowTemplate())
	return templateresolution.WrapWorkflowTemplateInterface(client.ArgoprojV1alpha1().WorkflowTemplates(metav1.NamespaceDefault)),
		templateresolution.WrapClusterWorkflowTemplateInterface(client.ArgoprojV1alpha1().ClusterWorkflowTemplates())
}

func TestExamplesParseAndValidate(t *testing.T) {
	files := yamlFiles(t)
	if len(files) == 0 {
		t.Fatal("no example YAML found")
	}
	wtGetter, cwtGetter := argoGetters(t)
	seen := map[string]int{}
	for _, path := range files {
		t.Run(path, func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Base(path) == ".gitlab-ci.yml" {
				checkGitLab(t, b)
				seen["GitLab CI"]++
				return
			}
			if ci, ok := pluginCIs[filepath.Base(path)]; ok {
				checkPluginStep(t, b)
				seen[ci]++
				return
			}
			var head metav1.TypeMeta
			if err := yaml.Unmarshal(b, &head); err != nil {
				t.Fatal(err)
			}
			strict := func(into any) {
				t.Helper()
				if err := yaml.UnmarshalStrict(b, into); err != nil {
					t.Fatalf("not a valid %s: %v", head.Kind, err)
				}
			}
			seen[head.Kind]++
			switch head.APIVersion + " " + head.Kind {
			case "tekton.dev/v1 Pipeline":
				var p pipelinev1.Pipeline
				strict(&p)
				if err := p.Validate(t.Context()); err != nil {
					t.Error(err)
				}
			case "tekton.dev/v1 PipelineRun":
				var pr pipelinev1.PipelineRun
				strict(&pr)
				// The API server names it from generateName before
				// Tekton's admission webhook validates it.
				pr.Name = pr.GenerateName + "x7k2p"
				if err := pr.Validate(t.Context()); err != nil {
					t.Error(err)
				}
			case "argoproj.io/v1alpha1 Workflow":
				var wf wfv1.Workflow
				strict(&wf)
				wf.Namespace = metav1.NamespaceDefault
				if err := validate.ValidateWorkflow(wtGetter, cwtGetter, &wf, nil, validate.ValidateOpts{}); err != nil {
					t.Error(err)
				}
			case "batch/v1 Job":
				var job batchv1.Job
				strict(&job)
				checkKanikoJob(t, &job, b)
			case "v1 Secret":
				var s corev1.Secret
				strict(&s)
				checkDockerSecret(t, &s)
			default:
				t.Fatalf("no check for %s %s; add one", head.APIVersion, head.Kind)
			}
		})
	}
	for _, kind := range []string{"Pipeline", "PipelineRun", "Workflow", "Secret", "Job", "GitLab CI", "Drone", "Woodpecker"} {
		if seen[kind] == 0 {
			t.Errorf("no %s example", kind)
		}
	}
}

// checkDockerSecret checks the shape `kubectl create secret docker-registry`
// makes, which is what Slipway has to read.
func checkDockerSecret(t *testing.T, s *corev1.Secret) {
	t.Helper()
	if s.Type != corev1.SecretTypeDockerConfigJson {
		t.Errorf("type = %q, want %q", s.Type, corev1.SecretTypeDockerConfigJson)
	}
	raw, ok := s.Data[corev1.DockerConfigJsonKey]
	if !ok {
		t.Fatalf("no %s key in %v", corev1.DockerConfigJsonKey, s.Data)
	}
	var cfg struct {
		Auths map[string]struct {
			Username, Password, Auth string
		} `json:"auths"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatalf("%s is not a docker config: %v", corev1.DockerConfigJsonKey, err)
	}
	if len(cfg.Auths) == 0 {
		t.Fatal("docker config has no auths")
	}
	for host, a := range cfg.Auths {
		dec, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil || string(dec) != a.Username+":"+a.Password {
			t.Errorf("auth for %s is not base64(username:password): %q", host, a.Auth)
		}
	}
}

// kanikoFlags are the executor flags the GitLab job may use; Slipway takes
// them unchanged.
var kanikoFlags = map[string]bool{
	"--context": true, "--dockerfile": true, "--destination": true, "--cache": true,
	"--cache-repo": true, "--digest-file": true, "--build-arg": true, "--target": true,
}

func checkGitLab(t *testing.T, b []byte) {
	t.Helper()
	var ci map[string]struct {
		Image struct {
			Name       string   `json:"name"`
			Entrypoint []string `json:"entrypoint"`
		} `json:"image"`
		Script []string `json:"script"`
	}
	if err := yaml.Unmarshal(b, &ci); err != nil {
		t.Fatalf("not valid GitLab CI YAML: %v", err)
	}
	job, ok := ci["build"]
	if !ok {
		t.Fatal("no build job")
	}
	if !strings.HasSuffix(job.Image.Name, "-debug") || len(job.Image.Entrypoint) != 1 || job.Image.Entrypoint[0] != "" {
		t.Errorf("image = %+v, want the -debug image with entrypoint [\"\"]", job.Image)
	}
	var build string
	for _, line := range job.Script {
		if strings.HasPrefix(line, "/kaniko/executor ") {
			build = line
		}
	}
	if build == "" {
		t.Fatalf("no /kaniko/executor in script %q", job.Script)
	}
	for _, word := range strings.Fields(build)[1:] {
		if !strings.HasPrefix(word, "--") {
			continue
		}
		name, _, _ := strings.Cut(word, "=")
		if !kanikoFlags[name] {
			t.Errorf("flag %s is not one of kaniko's executor flags", name)
		}
	}
	if !strings.Contains(strings.Join(job.Script, "\n"), "/kaniko/.docker/config.json") {
		t.Error("the job does not write /kaniko/.docker/config.json, as GitLab's kaniko job does")
	}
}

// pluginCIs are the CI files whose publish step runs Slipway's plugin mode
// (steps/internal/plugin); e2e/podmodel runs their settings for real.
var pluginCIs = map[string]string{".drone.yml": "Drone", ".woodpecker.yml": "Woodpecker"}

// pluginSettings are the kaniko plugins' settings the examples may use.
var pluginSettings = map[string]bool{
	"registry": true, "repo": true, "tags": true, "auto_tag": true, "dockerfile": true, "context": true,
	"build_args": true, "target": true, "cache": true, "enable_cache": true, "cache_repo": true,
	"username": true, "password": true, "insecure": true, "skip_tls_verify": true, "mirror": true,
}

func checkPluginStep(t *testing.T, b []byte) {
	t.Helper()
	var pipeline struct {
		Steps []struct {
			Name     string         `json:"name"`
			Image    string         `json:"image"`
			Commands []string       `json:"commands"`
			Settings map[string]any `json:"settings"`
		} `json:"steps"`
	}
	if err := yaml.Unmarshal(b, &pipeline); err != nil {
		t.Fatalf("not valid YAML: %v", err)
	}
	for _, s := range pipeline.Steps {
		if s.Name != "publish" {
			continue
		}
		if !strings.HasPrefix(s.Image, "ghcr.io/slipway-build/slipway:") || strings.HasSuffix(s.Image, "-debug") {
			t.Errorf("image %q: want the executor image", s.Image)
		}
		if len(s.Commands) > 0 {
			t.Error("a plugin step has settings, not commands")
		}
		for k := range s.Settings {
			if !pluginSettings[k] {
				t.Errorf("setting %q is not one of the kaniko plugins' that the examples use", k)
			}
		}
		return
	}
	t.Fatal("no publish step")
}

// checkKanikoJob checks the plain Job's shape (e2e/cluster runs it): the
// Secret `kubectl create secret docker-registry` makes, mounted where
// kaniko's image reads it with its key renamed config.json, a git context
// and the registry cache; and that the README's quick start is this file.
func checkKanikoJob(t *testing.T, job *batchv1.Job, raw []byte) {
	t.Helper()
	spec := job.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	c := spec.Containers[0]
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"--context=git://", "--destination=", "--cache=true", "--cache-repo="} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %s", c.Args, want)
		}
	}
	var mounted string
	for _, m := range c.VolumeMounts {
		if m.MountPath == "/kaniko/.docker" {
			mounted = m.Name
		}
	}
	var ok bool
	for _, v := range spec.Volumes {
		if v.Name == mounted && v.Secret != nil && len(v.Secret.Items) == 1 &&
			v.Secret.Items[0].Key == corev1.DockerConfigJsonKey && v.Secret.Items[0].Path == "config.json" {
			ok = true
		}
	}
	if !ok {
		t.Errorf("no Secret mounted at /kaniko/.docker with items %s -> config.json", corev1.DockerConfigJsonKey)
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```yaml\n"+string(raw)+"```") {
		t.Error("the README's plain-Job quick start is not this file as it stands")
	}
}
