package tasks

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
)

// BundleRef is the Tekton bundle that `make bundles` pushes for one Task or
// StepAction; kind is "task" or "stepaction".
func BundleRef(kind, name, version string) string {
	return fmt.Sprintf("%s/%s/%s:%s", BundleRepo, kind, name, version)
}

// TektonPath is the catalog path of a Tekton resource, relative to the
// catalog root; kind is "task" or "stepaction".
func TektonPath(kind, name, version string) string {
	return filepath.Join("tekton", kind, name, version, name+".yaml")
}

// ArgoPath is the catalog path of an Argo package's manifests.
func ArgoPath(pkg, version string) string {
	return filepath.Join("argo", pkg, version, "manifests.yaml")
}

// ArgoClusterPackage is the Artifact Hub package of the
// ClusterWorkflowTemplate. It is a package of its own because installing it
// needs cluster-wide rights that users of the namespaced one may lack.
const ArgoClusterPackage = BuildName + "-cluster"

// Files returns every catalog file, keyed by its path relative to the
// catalog root.
func Files(opts ...Option) (map[string][]byte, error) {
	o := makeOptions(opts)
	files := map[string][]byte{}
	add := func(path string, objs ...any) error {
		b, err := documents(objs...)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		files[path] = b
		return nil
	}

	task, warm, action, index := BuildTask(opts...), WarmTask(opts...), BuildStepAction(opts...), IndexTask(opts...)
	indexDir := filepath.Dir(TektonPath("task", IndexName, o.version))
	pipelineDir := filepath.Dir(TektonPath("pipeline", MultiArchName, o.version))
	taskDir := filepath.Dir(TektonPath("task", BuildName, o.version))
	warmDir := filepath.Dir(TektonPath("task", WarmName, o.version))
	actionDir := filepath.Dir(TektonPath("stepaction", BuildName, o.version))
	for _, err := range []error{
		add(TektonPath("task", BuildName, o.version), task),
		add(filepath.Join(taskDir, "samples", "taskrun.yaml"), BuildTaskRunSample()),
		add(TektonPath("task", WarmName, o.version), warm),
		add(filepath.Join(warmDir, "samples", "taskrun.yaml"), WarmTaskRunSample()),
		add(TektonPath("stepaction", BuildName, o.version), action),
		add(filepath.Join(actionDir, "samples", "task.yaml"), StepActionTaskSample()),
		add(TektonPath("task", IndexName, o.version), index),
		add(TektonPath("pipeline", MultiArchName, o.version), MultiArchPipeline(opts...)),
		add(filepath.Join(pipelineDir, "samples", "pipelinerun.yaml"), MultiArchPipelineRunSample()),
		add(ArgoPath(BuildName, o.version), BuildWorkflowTemplate(opts...)),
		add(ArgoPath(MultiArchName, o.version), MultiArchWorkflowTemplate(opts...)),
		add(ArgoPath(ArgoClusterPackage, o.version), BuildClusterWorkflowTemplate(opts...)),
	} {
		if err != nil {
			return nil, err
		}
	}
	files[filepath.Join(taskDir, "README.md")] = taskReadme(task, "task", o, buildReadmeExtra)
	files[filepath.Join(warmDir, "README.md")] = taskReadme(warm, "task", o, warmReadmeExtra)
	files[filepath.Join(indexDir, "README.md")] = taskReadme(index, "task", o, indexReadmeExtra)
	files[filepath.Join(pipelineDir, "README.md")] = pipelineReadme(o)
	files[filepath.Join(actionDir, "README.md")] = stepActionReadme(o)
	for _, pkg := range []struct {
		name    string
		cluster bool
	}{{BuildName, false}, {ArgoClusterPackage, true}} {
		dir := filepath.Dir(ArgoPath(pkg.name, o.version))
		files[filepath.Join(dir, "artifacthub-pkg.yml")] = argoPackage(pkg.name, pkg.cluster, o)
		files[filepath.Join(dir, "README.md")] = argoReadme(pkg.cluster, o)
	}
	multiDir := filepath.Dir(ArgoPath(MultiArchName, o.version))
	files[filepath.Join(multiDir, "artifacthub-pkg.yml")] = argoPackage(MultiArchName, false, o)
	files[filepath.Join(multiDir, "README.md")] = argoMultiArchReadme(o)
	files["artifacthub-repo.yml"] = []byte(header + `# Artifact Hub repository metadata for Slipway's catalog. Register the
# directories catalog/tekton/task, catalog/tekton/stepaction and catalog/argo
# as repositories of the matching kinds; each reads this file.
repositoryID: ""
owners: []
`)
	return files, nil
}

// Generate writes the catalog under dir, replacing what the generator owns
// and removing files it no longer makes, so renamed resources leave nothing
// stale behind.
func Generate(dir string, opts ...Option) error {
	files, err := Files(opts...)
	if err != nil {
		return err
	}
	for _, sub := range []string{"tekton", "argo"} {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			return fmt.Errorf("clearing the old catalog: %w", err)
		}
	}
	for rel, b := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", filepath.Dir(p), err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
	}
	return nil
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

func paramsTable(b *bytes.Buffer, ps pipelinev1.ParamSpecs) {
	b.WriteString("| Name | Type | Default | Description |\n|---|---|---|---|\n")
	for _, p := range ps {
		def := "(required)"
		if p.Default != nil {
			switch p.Default.Type {
			case pipelinev1.ParamTypeArray:
				def = "`[]`"
				if len(p.Default.ArrayVal) > 0 {
					def = "`" + strings.Join(p.Default.ArrayVal, ", ") + "`"
				}
			default:
				def = "`" + p.Default.StringVal + "`"
				if p.Default.StringVal == "" {
					def = `""`
				}
			}
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", p.Name, p.Type, def, mdEscape(p.Description))
	}
}

func resultsTable(b *bytes.Buffer, names, descriptions []string) {
	b.WriteString("| Name | Description |\n|---|---|\n")
	for i := range names {
		fmt.Fprintf(b, "| `%s` | %s |\n", names[i], mdEscape(descriptions[i]))
	}
}

const secretSection = "## Registry credentials\n\n" +
	"Make the Secret with kubectl; it stores the credentials under the key `.dockerconfigjson`, which Slipway reads as readily as `config.json`:\n\n" +
	"```sh\nkubectl create secret docker-registry " + SampleSecret + " \\\n  --docker-server=registry.example.com \\\n  --docker-username=USER --docker-password=PASSWORD\n```\n\n" +
	"A generic Secret made from an existing file works too: `kubectl create secret generic " + SampleSecret + " --from-file=config.json=$HOME/.docker/config.json`.\n" +
	"Without credentials, Slipway pushes anonymously.\n\n"

const buildReadmeExtra = "## List params\n\n" +
	"`BUILD_ARGS` and `ADDITIONAL_TAGS` are arrays; the step passes them after `--` in the step's arguments, where slipway-build turns each element into `--build-arg` or `--destination`. " +
	"`EXTRA_ARGS` elements are passed as they are, so a kaniko Task's `EXTRA_ARGS` carry over.\n\n" +
	"## Cache\n\n" +
	"With `CACHE=\"true\"`, RUN layers are stored in and reused from `CACHE_REPO`. The optional `cache` workspace, mounted at `/cache` (kaniko's `--cache-dir`), " +
	"keeps base images that `slipway-warm` fetched and `RUN --mount=type=cache` directories across builds.\n\n"

const warmReadmeExtra = "## Use with slipway-build\n\n" +
	"Bind the same volume as `cache` here and as `cache` of `slipway-build`. Run the warmer first, e.g. as an earlier Pipeline task; builds then read base images from the workspace.\n\n"

func taskReadme(task *pipelinev1.Task, kind string, o options, extra string) []byte {
	var b bytes.Buffer
	name := task.Name
	path := TektonPath(kind, name, o.version)
	summary, rest, _ := strings.Cut(task.Spec.Description, "\n\n")
	fmt.Fprintf(&b, "<!-- %s -->\n# %s\n\n%s\n\n%s\n\n", strings.TrimSpace(strings.TrimPrefix(header, "# ")), name, summary, rest)
	fmt.Fprintf(&b, "## Install\n\n```sh\nkubectl apply -f %s\n```\n\n", filepath.Base(path))
	b.WriteString("## Parameters\n\n")
	paramsTable(&b, task.Spec.Params)
	b.WriteString("\n## Workspaces\n\n| Name | Optional | Mount path | Description |\n|---|---|---|---|\n")
	for _, w := range task.Spec.Workspaces {
		mp := w.MountPath
		if mp == "" {
			mp = "/workspace/" + w.Name
		}
		fmt.Fprintf(&b, "| `%s` | %t | `%s` | %s |\n", w.Name, w.Optional, mp, mdEscape(w.Description))
	}
	if len(task.Spec.Results) > 0 {
		b.WriteString("\n## Results\n\n")
		var names, descs []string
		for _, r := range task.Spec.Results {
			names, descs = append(names, r.Name), append(descs, r.Description)
		}
		resultsTable(&b, names, descs)
		b.WriteString("\nThe values have no trailing newline: `IMAGE_URL` with `IMAGE_DIGEST`, and `IMAGES`, are the type hints Tekton Chains reads.\n")
	}
	fmt.Fprintf(&b, "\n## Platforms\n\nThe executor image is a multi-platform index for %s.\n\n", platformList())
	b.WriteString(extra)
	b.WriteString(secretSection)
	b.WriteString("## Usage\n\n`samples/taskrun.yaml` runs the installed Task. To use it without installing, reference it through a resolver.\n\n")
	fmt.Fprintf(&b, "With the git resolver:\n\n```yaml\ntaskRef:\n  resolver: git\n  params:\n    - name: url\n      value: %s\n    - name: revision\n      value: v%s\n    - name: pathInRepo\n      value: catalog/%s\n```\n\n", RepoURL, o.version, path)
	fmt.Fprintf(&b, "With the bundles resolver:\n\n```yaml\ntaskRef:\n  resolver: bundles\n  params:\n    - name: bundle\n      value: %s\n    - name: name\n      value: %s\n    - name: kind\n      value: task\n```\n", BundleRef(kind, name, o.version), name)
	return b.Bytes()
}

func stepActionReadme(o options) []byte {
	a := BuildStepAction(WithBuilderImage(o.builderImage), WithVersion(o.version))
	var b bytes.Buffer
	path := TektonPath("stepaction", BuildName, o.version)
	summary, rest, _ := strings.Cut(a.Spec.Description, "\n\n")
	fmt.Fprintf(&b, "<!-- %s -->\n# %s (StepAction)\n\n%s\n\n%s\n\n", strings.TrimSpace(strings.TrimPrefix(header, "# ")), a.Name, summary, rest)
	fmt.Fprintf(&b, "## Install\n\n```sh\nkubectl apply -f %s\n```\n\nStepActions need Tekton Pipelines %s or later.\n\n", filepath.Base(path), stepActionMinVersion)
	b.WriteString("## Parameters\n\n")
	paramsTable(&b, a.Spec.Params)
	b.WriteString("\n## Results\n\nStep results, read as `$(steps.<step name>.results.<name>)`:\n\n")
	var names, descs []string
	for _, r := range a.Spec.Results {
		names, descs = append(names, r.Name), append(descs, r.Description)
	}
	resultsTable(&b, names, descs)
	fmt.Fprintf(&b, "\n## Platforms\n\nThe executor image is a multi-platform index for %s.\n\n", platformList())
	b.WriteString(secretSection)
	b.WriteString("## Usage\n\n`samples/task.yaml` is a Task that builds with this StepAction and re-exports the step results as Task results, so Chains sees them. " +
		"A step that references a StepAction cannot set its own image, command, args, script or env.\n\n")
	fmt.Fprintf(&b, "With the git resolver:\n\n```yaml\nsteps:\n  - name: build\n    ref:\n      resolver: git\n      params:\n        - name: url\n          value: %s\n        - name: revision\n          value: v%s\n        - name: pathInRepo\n          value: catalog/%s\n    params:\n      - name: IMAGE\n        value: $(params.IMAGE)\n      - name: SOURCE_PATH\n        value: $(workspaces.source.path)\n```\n\n", RepoURL, o.version, path)
	fmt.Fprintf(&b, "With the bundles resolver:\n\n```yaml\nsteps:\n  - name: build\n    ref:\n      resolver: bundles\n      params:\n        - name: bundle\n          value: %s\n        - name: name\n          value: %s\n        - name: kind\n          value: stepaction\n```\n", BundleRef("stepaction", BuildName, o.version), BuildName)
	return b.Bytes()
}

func argoReadme(cluster bool, o options) []byte {
	wt := BuildWorkflowTemplate(WithBuilderImage(o.builderImage), WithVersion(o.version))
	kind, scope := "WorkflowTemplate", ""
	if cluster {
		kind, scope = "ClusterWorkflowTemplate", "\n      clusterScope: true"
	}
	var b bytes.Buffer
	desc := wt.Annotations["workflows.argoproj.io/description"]
	fmt.Fprintf(&b, "<!-- %s -->\n# %s (Argo %s)\n\n%s\n\n", strings.TrimSpace(strings.TrimPrefix(header, "# ")), BuildName, kind, desc)
	b.WriteString("## Install\n\n```sh\nkubectl apply -f manifests.yaml\n```\n\n")
	for _, t := range wt.Spec.Templates {
		fmt.Fprintf(&b, "## Template `%s`\n\n| Input | Default | Description |\n|---|---|---|\n", t.Name)
		for _, p := range t.Inputs.Parameters {
			def := "(required)"
			if p.Default != nil {
				def = "`" + p.Default.String() + "`"
				if p.Default.String() == "" {
					def = `""`
				}
			}
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", p.Name, def, mdEscape(p.Description.String()))
		}
		b.WriteString("\n")
	}
	b.WriteString("## Outputs\n\n| Parameter | Description |\n|---|---|\n" +
		"| `image-digest` | Digest of the pushed image, `sha256:<hex>`. |\n" +
		"| `image-url` | Reference of the pushed image, without the digest. |\n" +
		"| `images` | Every pushed reference with its digest, comma-separated. |\n\n")
	b.WriteString(secretSection)
	fmt.Fprintf(&b, "## Usage\n\n```yaml\napiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  generateName: build-\nspec:\n  entrypoint: main\n  templates:\n    - name: main\n      steps:\n        - - name: build\n            templateRef:\n              name: %s\n              template: %s%s\n            arguments:\n              parameters:\n                - name: image\n                  value: %s:latest\n                - name: git-repo\n                  value: %s\n                - name: docker-config-secret\n                  value: %s\n```\n\n", BuildName, ArgoTemplateBuildGit, scope, SampleImage, RepoURL, SampleSecret)
	fmt.Fprintf(&b, "The step's outputs are then `{{steps.build.outputs.parameters.image-digest}}` and `{{steps.build.outputs.parameters.image-url}}`.\n")
	return b.Bytes()
}

func argoPackage(name string, cluster bool, o options) []byte {
	display := "Slipway build (WorkflowTemplate)"
	description := "Build a container image from a Dockerfile and push it, without a Docker daemon or privileges."
	switch {
	case cluster:
		display = "Slipway build (ClusterWorkflowTemplate)"
	case name == MultiArchName:
		display = "Slipway multi-platform build (WorkflowTemplate)"
		description = "Build a Dockerfile for several platforms in parallel and push one multi-platform image, without a Docker daemon or privileges."
	}
	// Artifact Hub lists the image's platforms.
	var platforms strings.Builder
	for _, p := range strings.Split(Platforms, ",") {
		fmt.Fprintf(&platforms, "      - %s\n", p)
	}
	return []byte(header + fmt.Sprintf(`version: %s
name: %s
displayName: %s
createdAt: "%s"
description: %s
license: %s
homeURL: %s
keywords:
  - image-build
  - dockerfile
  - kaniko
containersImages:
  - name: slipway
    image: %s
    platforms:
%sprovider:
  name: Slipway
install: |
  kubectl apply -f manifests.yaml
`, o.version, name, display, ReleaseDate, description, License, strings.TrimSuffix(RepoURL, ".git"), o.builderImage, platforms.String()))
}

// platformList is Platforms for a sentence: "a, b and c".
func platformList() string {
	list := strings.Split(Platforms, ",")
	if len(list) == 1 {
		return "`" + list[0] + "`"
	}
	return "`" + strings.Join(list[:len(list)-1], "`, `") + "` and `" + list[len(list)-1] + "`"
}
