package tasks_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	argofake "github.com/argoproj/argo-workflows/v3/pkg/client/clientset/versioned/fake"
	"github.com/argoproj/argo-workflows/v3/workflow/templateresolution"
	"github.com/argoproj/argo-workflows/v3/workflow/validate"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	pipelinev1beta1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/slipway-build/slipway/tasks"
)

const catalogDir = "../catalog"

func readTree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files[rel] = b
		return nil
	})
	if err != nil {
		t.Fatalf("reading %s: %v (run make catalog)", root, err)
	}
	return files
}

func TestCatalogIsFresh(t *testing.T) {
	tmp := t.TempDir()
	if err := tasks.Generate(tmp); err != nil {
		t.Fatal(err)
	}
	want, got := readTree(t, tmp), readTree(t, catalogDir)
	for rel, w := range want {
		g, ok := got[rel]
		switch {
		case !ok:
			t.Errorf("catalog/%s is missing: run make catalog", rel)
		case !bytes.Equal(g, w):
			t.Errorf("catalog/%s is stale: run make catalog", rel)
		}
	}
	for rel := range got {
		if _, ok := want[rel]; !ok {
			t.Errorf("catalog/%s is not generated: delete it, or run make catalog if it is an old resource", rel)
		}
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		if err := tasks.Generate(d); err != nil {
			t.Fatal(err)
		}
	}
	ta, tb := readTree(t, a), readTree(t, b)
	if len(ta) != len(tb) {
		t.Fatalf("two runs made %d and %d files", len(ta), len(tb))
	}
	for rel := range ta {
		if !bytes.Equal(ta[rel], tb[rel]) {
			t.Errorf("%s differs between two runs", rel)
		}
	}
}

// tektonFile is a published Tekton resource as read back from catalog/.
type tektonFile struct {
	path   string // relative to the catalog root
	meta   metav1.ObjectMeta
	desc   string
	params pipelinev1.ParamSpecs
	steps  []pipelinev1.Step
}

func decodeStrict(t *testing.T, path string, b []byte, into any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readTektonFiles(t *testing.T) ([]tektonFile, []*pipelinev1.Task, []*pipelinev1beta1.StepAction) {
	t.Helper()
	var files []tektonFile
	var taskObjs []*pipelinev1.Task
	var actions []*pipelinev1beta1.StepAction
	for rel, b := range readTree(t, catalogDir) {
		parts := strings.Split(rel, string(filepath.Separator))
		if parts[0] != "tekton" || len(parts) != 5 || !strings.HasSuffix(rel, ".yaml") {
			continue
		}
		switch parts[1] {
		case "task":
			var task pipelinev1.Task
			decodeStrict(t, rel, b, &task)
			taskObjs = append(taskObjs, &task)
			files = append(files, tektonFile{rel, task.ObjectMeta, task.Spec.Description, task.Spec.Params, task.Spec.Steps})
		case "pipeline":
			var p pipelinev1.Pipeline
			decodeStrict(t, rel, b, &p)
			nameLikeAPIServer(&p.ObjectMeta)
			if err := p.Validate(t.Context()); err != nil {
				t.Errorf("Pipeline %s from catalog: %v", p.Name, err)
			}
		case "stepaction":
			var a pipelinev1beta1.StepAction
			decodeStrict(t, rel, b, &a)
			actions = append(actions, &a)
			files = append(files, tektonFile{rel, a.ObjectMeta, a.Spec.Description, a.Spec.Params, []pipelinev1.Step{*a.Spec.ToStep()}})
		default:
			t.Errorf("catalog/%s: unknown Tekton kind directory %q", rel, parts[1])
		}
	}
	if len(taskObjs) != 3 || len(actions) != 1 {
		t.Fatalf("catalog holds %d Tasks and %d StepActions, want 3 and 1", len(taskObjs), len(actions))
	}
	sort.Slice(files, func(i, j int) bool { return files[i].path < files[j].path })
	return files, taskObjs, actions
}

var mandatoryAnnotations = []string{
	"tekton.dev/pipelines.minVersion",
	"tekton.dev/categories",
	"tekton.dev/tags",
	"tekton.dev/displayName",
	"tekton.dev/platforms",
}

// catalogRules returns every way f breaks the Tekton catalog's rules.
func catalogRules(f tektonFile) []string {
	var bad []string
	parts := strings.Split(f.path, string(filepath.Separator))
	dirName, version, file := parts[len(parts)-3], parts[len(parts)-2], parts[len(parts)-1]
	if file != f.meta.Name+".yaml" {
		bad = append(bad, fmt.Sprintf("file name %s does not match resource name %s", file, f.meta.Name))
	}
	if dirName != f.meta.Name {
		bad = append(bad, fmt.Sprintf("directory %s does not match resource name %s", dirName, f.meta.Name))
	}
	if got := f.meta.Labels["app.kubernetes.io/version"]; got != version {
		bad = append(bad, fmt.Sprintf("label app.kubernetes.io/version is %q, directory says %q", got, version))
	}
	for _, a := range mandatoryAnnotations {
		if f.meta.Annotations[a] == "" {
			bad = append(bad, "annotation "+a+" is missing")
		}
	}
	if f.meta.Annotations["tekton.dev/categories"] != "Image Build" {
		bad = append(bad, "category is not Image Build")
	}
	if summary, rest, ok := strings.Cut(f.desc, "\n\n"); !ok || strings.Contains(summary, "\n") || strings.TrimSpace(rest) == "" {
		bad = append(bad, "description is not a one-line summary followed by paragraphs")
	}
	defaults := map[string]string{}
	for _, p := range f.params {
		if p.Default != nil {
			defaults[p.Name] = p.Default.StringVal
		}
	}
	for _, s := range f.steps {
		img := s.Image
		if name, ok := strings.CutPrefix(img, "$(params."); ok {
			img = defaults[strings.TrimSuffix(name, ")")]
		}
		if err := tasks.CheckPinned(img); err != nil {
			bad = append(bad, fmt.Sprintf("step %s: %v", s.Name, err))
		}
		if strings.Contains(s.Script, "$(params") {
			bad = append(bad, fmt.Sprintf("step %s: $(params…) inside a script", s.Name))
		}
		if len(s.Command) == 0 && s.Script == "" {
			bad = append(bad, fmt.Sprintf("step %s: no explicit command", s.Name))
		}
		sc := s.SecurityContext
		if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 0 {
			bad = append(bad, fmt.Sprintf("step %s: securityContext does not state runAsUser: 0", s.Name))
		}
		if sc != nil && ((sc.Privileged != nil && *sc.Privileged) || (sc.Capabilities != nil && len(sc.Capabilities.Add) > 0)) {
			bad = append(bad, fmt.Sprintf("step %s: asks for privileges", s.Name))
		}
	}
	return bad
}

func TestCatalogRules(t *testing.T) {
	files, _, _ := readTektonFiles(t)
	for _, f := range files {
		for _, problem := range catalogRules(f) {
			t.Errorf("catalog/%s: %s", f.path, problem)
		}
	}
}

// The rules must catch what they are for, or TestCatalogRules proves nothing.
func TestCatalogRulesCatchViolations(t *testing.T) {
	good := func() tektonFile {
		task := tasks.BuildTask()
		return tektonFile{tasks.TektonPath("task", task.Name, tasks.Version), task.ObjectMeta, task.Spec.Description, task.Spec.Params, task.Spec.Steps}
	}
	if problems := catalogRules(good()); len(problems) > 0 {
		t.Fatalf("the generated Task breaks the rules: %q", problems)
	}
	tests := []struct {
		name   string
		change func(*tektonFile)
		want   string
	}{
		{"file name", func(f *tektonFile) { f.meta.Name = "other" }, "file name"},
		{"version label", func(f *tektonFile) { f.meta.Labels = map[string]string{"app.kubernetes.io/version": "9.9"} }, "app.kubernetes.io/version"},
		{"annotation", func(f *tektonFile) {
			f.meta.Annotations = map[string]string{"tekton.dev/categories": "Image Build"}
		}, "tekton.dev/platforms"},
		{"unpinned default image", func(f *tektonFile) {
			f.params = append(pipelinev1.ParamSpecs(nil), f.params...)
			for i := range f.params {
				if f.params[i].Name == "BUILDER_IMAGE" {
					f.params[i].Default = pipelinev1.NewStructuredValues("ghcr.io/slipway-build/slipway:latest")
				}
			}
		}, "not pinned"},
		{"params in script", func(f *tektonFile) {
			f.steps = []pipelinev1.Step{{Name: "s", Image: tasks.BuilderImage, Script: "echo $(params.IMAGE)", SecurityContext: f.steps[0].SecurityContext}}
		}, "inside a script"},
		{"privileged", func(f *tektonFile) {
			yes := true
			s := f.steps[0].DeepCopy()
			s.SecurityContext = &corev1.SecurityContext{RunAsUser: s.SecurityContext.RunAsUser, Privileged: &yes}
			f.steps = []pipelinev1.Step{*s}
		}, "privileges"},
		{"one-paragraph description", func(f *tektonFile) { f.desc = "Builds images." }, "one-line summary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := good()
			tt.change(&f)
			problems := strings.Join(catalogRules(f), "; ")
			if !strings.Contains(problems, tt.want) {
				t.Errorf("rules found %q, want a problem about %q", problems, tt.want)
			}
		})
	}
}

func TestTektonValidation(t *testing.T) {
	_, taskObjs, actions := readTektonFiles(t)
	for _, task := range taskObjs {
		if err := task.Validate(t.Context()); err != nil {
			t.Errorf("Task %s from catalog: %v", task.Name, err)
		}
	}
	for _, a := range actions {
		if err := a.Validate(t.Context()); err != nil {
			t.Errorf("StepAction %s from catalog: %v", a.Name, err)
		}
	}
	for rel, b := range readTree(t, catalogDir) {
		if !strings.HasPrefix(rel, "tekton") || filepath.Base(filepath.Dir(rel)) != "samples" {
			continue
		}
		var head metav1.TypeMeta
		decodeStrictLoose(t, rel, b, &head)
		switch head.Kind {
		case "TaskRun":
			var tr pipelinev1.TaskRun
			decodeStrict(t, rel, b, &tr)
			nameLikeAPIServer(&tr.ObjectMeta)
			if err := tr.Validate(t.Context()); err != nil {
				t.Errorf("catalog/%s: %v", rel, err)
			}
		case "Task":
			var task pipelinev1.Task
			decodeStrict(t, rel, b, &task)
			if err := task.Validate(t.Context()); err != nil {
				t.Errorf("catalog/%s: %v", rel, err)
			}
		case "PipelineRun":
			var pr pipelinev1.PipelineRun
			decodeStrict(t, rel, b, &pr)
			nameLikeAPIServer(&pr.ObjectMeta)
			if err := pr.Validate(t.Context()); err != nil {
				t.Errorf("catalog/%s: %v", rel, err)
			}
		default:
			t.Errorf("catalog/%s: unexpected sample kind %q", rel, head.Kind)
		}
	}
}

func TestArgoValidation(t *testing.T) {
	client := argofake.NewSimpleClientset()
	wftmplGetter := templateresolution.WrapWorkflowTemplateInterface(client.ArgoprojV1alpha1().WorkflowTemplates(metav1.NamespaceDefault))
	cwftmplGetter := templateresolution.WrapClusterWorkflowTemplateInterface(client.ArgoprojV1alpha1().ClusterWorkflowTemplates())
	opts := validate.ValidateOpts{Lint: true}

	for _, pkg := range []string{tasks.BuildName, tasks.ArgoClusterPackage} {
		rel := tasks.ArgoPath(pkg, tasks.Version)
		b, err := os.ReadFile(filepath.Join(catalogDir, rel))
		if err != nil {
			t.Fatalf("%v (run make catalog)", err)
		}
		var head metav1.TypeMeta
		decodeStrictLoose(t, rel, b, &head)
		var meta metav1.ObjectMeta
		var spec *wfv1.WorkflowSpec
		switch head.Kind {
		case "WorkflowTemplate":
			var wt wfv1.WorkflowTemplate
			decodeStrict(t, rel, b, &wt)
			if err := validate.ValidateWorkflowTemplate(wftmplGetter, cwftmplGetter, &wt, nil, opts); err != nil {
				t.Errorf("catalog/%s: %v", rel, err)
			}
			meta, spec = wt.ObjectMeta, &wt.Spec
		case "ClusterWorkflowTemplate":
			var cwt wfv1.ClusterWorkflowTemplate
			decodeStrict(t, rel, b, &cwt)
			if err := validate.ValidateClusterWorkflowTemplate(wftmplGetter, cwftmplGetter, &cwt, nil, opts); err != nil {
				t.Errorf("catalog/%s: %v", rel, err)
			}
			meta, spec = cwt.ObjectMeta, &cwt.Spec
		default:
			t.Fatalf("catalog/%s holds a %q, want a (Cluster)WorkflowTemplate", rel, head.Kind)
		}
		if got := meta.Labels["app.kubernetes.io/version"]; got != filepath.Base(filepath.Dir(rel)) {
			t.Errorf("catalog/%s: version label %q does not match its directory", rel, got)
		}
		if meta.Name != tasks.BuildName {
			t.Errorf("catalog/%s: name %q, want %s", rel, meta.Name, tasks.BuildName)
		}
		for _, tmpl := range spec.Templates {
			if tmpl.Container == nil || len(tmpl.Container.Command) == 0 {
				t.Errorf("catalog/%s: template %s sets no command; the emissary executor needs one", rel, tmpl.Name)
				continue
			}
			for _, p := range tmpl.Inputs.Parameters {
				if p.Name == "builder-image" {
					if err := tasks.CheckPinned(p.Default.String()); err != nil {
						t.Errorf("catalog/%s: template %s: %v", rel, tmpl.Name, err)
					}
				}
			}
			outs := map[string]bool{}
			for _, o := range tmpl.Outputs.Parameters {
				outs[o.Name] = o.ValueFrom != nil && o.ValueFrom.Path != ""
			}
			for _, want := range []string{tasks.OutputImageDigest, tasks.OutputImageURL} {
				if !outs[want] {
					t.Errorf("catalog/%s: template %s has no output %s read from a file", rel, tmpl.Name, want)
				}
			}
		}
	}
}

// decodeStrictLoose reads only some fields, so unknown ones are fine.
func decodeStrictLoose(t *testing.T, path string, b []byte, into any) {
	t.Helper()
	if err := yaml.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestCheckPinned(t *testing.T) {
	tests := []struct {
		ref string
		ok  bool
	}{
		{tasks.BuilderImage, true},
		{"r.example/app@sha256:" + strings.Repeat("ab", 32), true},
		{"r.example/app:v1", false},
		{"r.example/app:v1@sha256:abc", false},
		{"r.example/app@sha256:" + strings.Repeat("AB", 32), false},
		{"$(params.BUILDER_IMAGE)", false},
	}
	for _, tt := range tests {
		if err := tasks.CheckPinned(tt.ref); (err == nil) != tt.ok {
			t.Errorf("CheckPinned(%q) = %v, want ok=%t", tt.ref, err, tt.ok)
		}
	}
}

// nameLikeAPIServer names an object made with generateName the way the API
// server does before admission webhooks, which is where Tekton validates.
func nameLikeAPIServer(m *metav1.ObjectMeta) {
	if m.Name == "" && m.GenerateName != "" {
		m.Name = m.GenerateName + "x7k2p"
	}
}

// TestPlatformsMatchTheImage: the platforms the catalog says the executor
// image is published for are the ones `make image` and `make release`
// build (the Makefile's IMAGE_PLATFORMS), and Artifact Hub's metadata
// lists each of them.
func TestPlatformsMatchTheImage(t *testing.T) {
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var built string
	for _, line := range strings.Split(string(mk), "\n") {
		if name, value, ok := strings.Cut(line, "?="); ok && strings.TrimSpace(name) == "IMAGE_PLATFORMS" {
			built = strings.TrimSpace(value)
		}
	}
	if built != tasks.Platforms {
		t.Errorf("the Makefile builds the executor image for IMAGE_PLATFORMS %q, tasks.Platforms says %q", built, tasks.Platforms)
	}
	want := strings.Split(tasks.Platforms, ",")
	if len(want) != 4 {
		t.Errorf("tasks.Platforms = %q, want linux/amd64, arm64, ppc64le and s390x", tasks.Platforms)
	}
	for rel, b := range readTree(t, catalogDir) {
		if filepath.Base(rel) != "artifacthub-pkg.yml" {
			continue
		}
		var pkg struct {
			ContainersImages []struct {
				Image     string   `json:"image"`
				Platforms []string `json:"platforms"`
			} `json:"containersImages"`
		}
		// Other keys are Artifact Hub's; only the images matter here.
		if err := yaml.Unmarshal(b, &pkg); err != nil {
			t.Fatalf("catalog/%s: %v", rel, err)
		}
		if len(pkg.ContainersImages) != 1 || strings.Join(pkg.ContainersImages[0].Platforms, ",") != tasks.Platforms {
			t.Errorf("catalog/%s: containersImages %+v, want the executor image on %s", rel, pkg.ContainersImages, tasks.Platforms)
		}
	}
}
