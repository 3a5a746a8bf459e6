package tasks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Names of the multi-platform resources.
const (
	IndexName     = "slipway-index"
	MultiArchName = "slipway-multiarch"
)

// Names inside the Argo multi-platform template.
const (
	ArgoTemplateMultiArch = "multiarch" // the entrypoint: fan out, then index
	ArgoTemplateIndex     = "index"
)

// DefaultPlatforms are the PLATFORMS the multi-platform Pipeline and
// template build when none are given.
var DefaultPlatforms = []string{"linux/amd64", "linux/arm64"}

// defaultPlatformsJSON is DefaultPlatforms as the Argo template's platforms
// input takes it: a JSON array, which withParam fans out over.
func defaultPlatformsJSON() string {
	b, err := json.Marshal(DefaultPlatforms)
	if err != nil {
		panic(err) // a []string always marshals
	}
	return string(b)
}

const indexDescription = `Assemble per-platform images into one multi-platform image (an OCI image index, or a Docker manifest list) and push it.

Give each platform's image as REF@DIGEST in IMAGES: the IMAGES results of slipway-build, which a Pipeline's matrix over PLATFORM gathers into an array. Every image must be one image (not an index) whose config names its platform, and every platform must appear once; with PLATFORMS given, exactly those. The index digest and URL are written as the IMAGE_DIGEST, IMAGE_URL and IMAGES results, which Tekton Chains reads.`

const multiArchDescription = `Build a Dockerfile for every platform in PLATFORMS, in parallel (a matrix over slipway-build), and push one multi-platform image (slipway-index) to IMAGE.

A build for another architecture than its node's runs RUN under QEMU user emulation, which the nodes must have registered in binfmt_misc (e.g. a tonistiigi/binfmt DaemonSet); Dockerfiles that cross-compile with FROM --platform=$BUILDPLATFORM and TARGETARCH need none. Each platform's image is pushed to IMAGE first, then the index replaces the tag.`

func indexInputs(builderImage string) []input {
	return []input{
		{name: "IMAGE", required: true,
			description: "Reference to push the multi-platform image to, e.g. registry.example.com/team/app:1.2."},
		{name: "IMAGES", array: true,
			description: "Each platform's image as REF@DIGEST, one per element (a comma-separated IMAGES result counts as its first reference)."},
		{name: "PLATFORMS", array: true,
			description: "Platforms the index must hold, one per element, e.g. linux/arm64; empty accepts whatever the images are."},
		{name: "FORMAT", def: "oci",
			description: "oci (an OCI image index) or docker (a Docker manifest list, of Docker images only)."},
		{name: "ADDITIONAL_TAGS", array: true,
			description: "Further full references to push the index to; all of them appear in IMAGES."},
		{name: "EXTRA_ARGS", array: true,
			description: "Further slipway-index flags, one per element, e.g. --insecure-registry=registry.local."},
		{name: "BUILDER_IMAGE", def: builderImage,
			description: "The Slipway executor image, pinned by digest."},
	}
}

func indexArgs(digest, url, images string) []string {
	return []string{
		"--destination=$(params.IMAGE)",
		"--format=$(params.FORMAT)",
		"--digest-file=" + digest,
		"--image-url-file=" + url,
		"--images-file=" + images,
		"$(params.EXTRA_ARGS[*])",
		"--",
		"--image", "$(params.IMAGES[*])",
		"--platform", "$(params.PLATFORMS[*])",
		"--destination", "$(params.ADDITIONAL_TAGS[*])",
	}
}

// IndexTask returns the slipway-index Task.
func IndexTask(opts ...Option) *pipelinev1.Task {
	o := makeOptions(opts)
	// The index carries no SBOM or provenance of its own: those are on each platform's image.
	results := buildResults()[:3]
	results[0].Description = "Digest of the pushed index, sha256:<hex>."
	results[1].Description = "Reference of the pushed index (IMAGE), without the digest."
	results[2].Description = "Every pushed reference of the index (IMAGE and ADDITIONAL_TAGS) with its digest, comma-separated."
	return &pipelinev1.Task{
		TypeMeta:   metav1.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "Task"},
		ObjectMeta: catalogMeta(IndexName, o.version, "Slipway multi-platform index", taskMinVersion),
		Spec: pipelinev1.TaskSpec{
			Description: indexDescription,
			Params:      tektonParams(indexInputs(o.builderImage)),
			Workspaces: []pipelinev1.WorkspaceDeclaration{
				{Name: "dockerconfig", Optional: true, ReadOnly: true, MountPath: dockerConfigDir,
					Description: "A Secret with registry credentials, under the key config.json or .dockerconfigjson."},
			},
			Results: results,
			Steps: []pipelinev1.Step{{
				Name:            "index-and-push",
				Image:           "$(params.BUILDER_IMAGE)",
				Command:         []string{indexBinary},
				Args:            indexArgs("$(results.IMAGE_DIGEST.path)", "$(results.IMAGE_URL.path)", "$(results.IMAGES.path)"),
				Env:             []corev1.EnvVar{{Name: "DOCKER_CONFIG", Value: dockerConfigDir}},
				SecurityContext: rootNoPrivilege(),
			}},
		},
	}
}

// MultiArchPipeline returns the slipway-multiarch Pipeline: a matrix of
// slipway-build over PLATFORMS, then slipway-index over their results.
func MultiArchPipeline(opts ...Option) *pipelinev1.Pipeline {
	o := makeOptions(opts)
	ws := func(name string) pipelinev1.WorkspacePipelineTaskBinding {
		return pipelinev1.WorkspacePipelineTaskBinding{Name: name, Workspace: name}
	}
	params := tektonParams([]input{
		{name: "IMAGE", required: true, description: "Reference to push the multi-platform image to."},
		{name: "PLATFORMS", array: true, description: "Platforms to build for, one per element."},
		{name: "DOCKERFILE", def: "./Dockerfile", description: "Path to the Dockerfile, relative to the source."},
		{name: "CONTEXT", def: "./", description: "Build context directory, relative to the source."},
		{name: "BUILD_ARGS", array: true, description: "Build arguments as NAME=VALUE, one per element."},
		{name: "EXTRA_ARGS", array: true, description: "Further flags for slipway-build and slipway-index (the registry and TLS flags both take), one per element."},
		{name: "BUILDER_IMAGE", def: o.builderImage, description: "The Slipway executor image, pinned by digest."},
	})
	params[1].Default.ArrayVal = DefaultPlatforms
	meta := catalogMeta(MultiArchName, o.version, "Slipway multi-platform build", matrixMinVersion)
	return &pipelinev1.Pipeline{
		TypeMeta:   metav1.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "Pipeline"},
		ObjectMeta: meta,
		Spec: pipelinev1.PipelineSpec{
			Description: multiArchDescription,
			Params:      params,
			Workspaces: []pipelinev1.PipelineWorkspaceDeclaration{
				{Name: "source", Description: "Holds the build context and the Dockerfile."},
				{Name: "dockerconfig", Optional: true, Description: "A Secret with registry credentials, under the key config.json or .dockerconfigjson."},
			},
			Tasks: []pipelinev1.PipelineTask{
				{
					Name:    "build",
					TaskRef: &pipelinev1.TaskRef{Name: BuildName},
					Matrix: &pipelinev1.Matrix{Params: pipelinev1.Params{
						{Name: "PLATFORM", Value: arr("$(params.PLATFORMS[*])")},
					}},
					Params: pipelinev1.Params{
						{Name: "IMAGE", Value: str("$(params.IMAGE)")},
						{Name: "DOCKERFILE", Value: str("$(params.DOCKERFILE)")},
						{Name: "CONTEXT", Value: str("$(params.CONTEXT)")},
						{Name: "BUILD_ARGS", Value: arr("$(params.BUILD_ARGS[*])")},
						{Name: "EXTRA_ARGS", Value: arr("$(params.EXTRA_ARGS[*])")},
						{Name: "BUILDER_IMAGE", Value: str("$(params.BUILDER_IMAGE)")},
					},
					Workspaces: []pipelinev1.WorkspacePipelineTaskBinding{ws("source"), ws("dockerconfig")},
				},
				{
					Name:     "index",
					TaskRef:  &pipelinev1.TaskRef{Name: IndexName},
					RunAfter: []string{"build"},
					Params: pipelinev1.Params{
						{Name: "IMAGE", Value: str("$(params.IMAGE)")},
						{Name: "IMAGES", Value: arr("$(tasks.build.results.IMAGES[*])")},
						{Name: "PLATFORMS", Value: arr("$(params.PLATFORMS[*])")},
						{Name: "EXTRA_ARGS", Value: arr("$(params.EXTRA_ARGS[*])")},
						{Name: "BUILDER_IMAGE", Value: str("$(params.BUILDER_IMAGE)")},
					},
					Workspaces: []pipelinev1.WorkspacePipelineTaskBinding{ws("dockerconfig")},
				},
			},
			Results: []pipelinev1.PipelineResult{
				{Name: ResultImageDigest, Description: "Digest of the pushed index.", Value: *pipelinev1.NewStructuredValues("$(tasks.index.results.IMAGE_DIGEST)")},
				{Name: ResultImageURL, Description: "Reference of the pushed index.", Value: *pipelinev1.NewStructuredValues("$(tasks.index.results.IMAGE_URL)")},
			},
		},
	}
}

// matrixMinVersion is the first Tekton Pipelines with matrix results
// gathered into arrays for a later task, and matrix enabled by default.
const matrixMinVersion = "0.59.0"

// argoIndexTemplate runs slipway-index. Its images and platforms inputs
// are JSON arrays (what a withParam fan-out's outputs give) or lines.
func argoIndexTemplate(builderImage string) wfv1.Template {
	in, out := argoIn, argoOut
	return wfv1.Template{
		Name: ArgoTemplateIndex,
		Inputs: wfv1.Inputs{Parameters: []wfv1.Parameter{
			{Name: "image", Description: wfv1.AnyStringPtr("Reference to push the multi-platform image to.")},
			{Name: "images", Description: wfv1.AnyStringPtr("Each platform's image as REF@DIGEST: a JSON array, or one per line.")},
			argoParam("platforms", "", "Platforms the index must hold: a JSON array, or one per line; empty accepts whatever the images are."),
			argoParam("format", "oci", "oci or docker."),
			argoParam("extra-args", "", "Further slipway-index flags, one per line."),
			argoParam("builder-image", builderImage, "The Slipway executor image, pinned by digest."),
			argoParam("docker-config-secret", SampleSecret, "Secret with config.json or .dockerconfigjson; optional."),
		}},
		Outputs: wfv1.Outputs{Parameters: []wfv1.Parameter{out(OutputImageDigest), out(OutputImageURL), out(OutputImages)}},
		Volumes: argoVolumes(),
		Container: &corev1.Container{
			Image:   in("builder-image"),
			Command: []string{indexBinary},
			Args: []string{
				"--destination=" + in("image"),
				"--format=" + in("format"),
				"--digest-file=" + argoResultsDir + "/" + OutputImageDigest,
				"--image-url-file=" + argoResultsDir + "/" + OutputImageURL,
				"--images-file=" + argoResultsDir + "/" + OutputImages,
				"--",
				"--image", in("images"),
				"--platform", in("platforms"),
				"--args", in("extra-args"),
			},
			Env:             []corev1.EnvVar{{Name: "DOCKER_CONFIG", Value: dockerConfigDir}},
			VolumeMounts:    argoMounts(),
			SecurityContext: rootNoPrivilege(),
		},
	}
}

// MultiArchWorkflowTemplate returns the slipway-multiarch WorkflowTemplate:
// its entrypoint fans the build template out over the platforms input
// (withParam) and then runs the index template on their images outputs.
func MultiArchWorkflowTemplate(opts ...Option) *wfv1.WorkflowTemplate {
	o := makeOptions(opts)
	in := argoIn
	pass := func(names ...string) []wfv1.Parameter {
		var ps []wfv1.Parameter
		for _, n := range names {
			ps = append(ps, wfv1.Parameter{Name: n, Value: wfv1.AnyStringPtr(in(n))})
		}
		return ps
	}
	build := argoTemplate(ArgoTemplateBuild, o.builderImage, false)
	buildArgs := append(pass("image", "dockerfile", "context", "build-args", "extra-args", "builder-image", "docker-config-secret", "source-pvc"),
		wfv1.Parameter{Name: "platform", Value: wfv1.AnyStringPtr("{{item}}")})
	main := wfv1.Template{
		Name: ArgoTemplateMultiArch,
		Inputs: wfv1.Inputs{Parameters: []wfv1.Parameter{
			{Name: "image", Description: wfv1.AnyStringPtr("Reference to push the multi-platform image to.")},
			argoParam("platforms", defaultPlatformsJSON(), "Platforms to build for, as a JSON array."),
			{Name: "source-pvc", Description: wfv1.AnyStringPtr("PersistentVolumeClaim holding the source at its root.")},
			argoParam("dockerfile", "./Dockerfile", "Path to the Dockerfile, relative to the source."),
			argoParam("context", "./", "Build context directory, relative to the source."),
			argoParam("build-args", "", "Build arguments as NAME=VALUE, one per line."),
			argoParam("extra-args", "", "Further flags for slipway-build and slipway-index (the registry and TLS flags both take), one per line."),
			argoParam("builder-image", o.builderImage, "The Slipway executor image, pinned by digest."),
			argoParam("docker-config-secret", SampleSecret, "Secret with config.json or .dockerconfigjson; optional."),
		}},
		Outputs: wfv1.Outputs{Parameters: []wfv1.Parameter{
			{Name: OutputImageDigest, ValueFrom: &wfv1.ValueFrom{Parameter: "{{steps.index.outputs.parameters." + OutputImageDigest + "}}"}},
			{Name: OutputImageURL, ValueFrom: &wfv1.ValueFrom{Parameter: "{{steps.index.outputs.parameters." + OutputImageURL + "}}"}},
		}},
		Steps: []wfv1.ParallelSteps{
			{Steps: []wfv1.WorkflowStep{{
				Name:      "build",
				Template:  ArgoTemplateBuild,
				Arguments: wfv1.Arguments{Parameters: buildArgs},
				WithParam: in("platforms"),
			}}},
			{Steps: []wfv1.WorkflowStep{{
				Name:     "index",
				Template: ArgoTemplateIndex,
				Arguments: wfv1.Arguments{Parameters: append(pass("image", "platforms", "extra-args", "builder-image", "docker-config-secret"),
					wfv1.Parameter{Name: "images", Value: wfv1.AnyStringPtr("{{steps.build.outputs.parameters." + OutputImages + "}}")})},
			}}},
		},
	}
	meta := argoMeta(o)
	meta.Name = MultiArchName
	meta.Annotations = map[string]string{
		"workflows.argoproj.io/description": multiArchDescription,
		"workflows.argoproj.io/version":     ">= 3.5.0",
	}
	return &wfv1.WorkflowTemplate{
		TypeMeta:   metav1.TypeMeta{APIVersion: "argoproj.io/v1alpha1", Kind: "WorkflowTemplate"},
		ObjectMeta: meta,
		Spec: wfv1.WorkflowSpec{
			Entrypoint: ArgoTemplateMultiArch,
			Arguments: wfv1.Arguments{Parameters: []wfv1.Parameter{
				{Name: "image"}, {Name: "source-pvc"},
				{Name: "platforms", Value: wfv1.AnyStringPtr(defaultPlatformsJSON())},
			}},
			Templates: []wfv1.Template{main, build, argoIndexTemplate(o.builderImage)},
		},
	}
}

// MultiArchPipelineRunSample runs the slipway-multiarch Pipeline for
// linux/amd64 and linux/arm64.
func MultiArchPipelineRunSample() *pipelinev1.PipelineRun {
	return &pipelinev1.PipelineRun{
		TypeMeta:   metav1.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "PipelineRun"},
		ObjectMeta: metav1.ObjectMeta{GenerateName: MultiArchName + "-"},
		Spec: pipelinev1.PipelineRunSpec{
			PipelineRef: &pipelinev1.PipelineRef{Name: MultiArchName},
			Params: pipelinev1.Params{
				{Name: "IMAGE", Value: str(SampleImage + ":latest")},
				{Name: "PLATFORMS", Value: arr(DefaultPlatforms...)},
			},
			Workspaces: []pipelinev1.WorkspaceBinding{
				{Name: "source", PersistentVolumeClaim: pvc(sampleSourcePV)},
				{Name: "dockerconfig", Secret: &corev1.SecretVolumeSource{SecretName: SampleSecret}},
			},
		},
	}
}

const indexReadmeExtra = "## Use after a matrix of slipway-build\n\n" +
	"Run `slipway-build` with a `matrix` over `PLATFORM` and pass `$(tasks.<build>.results.IMAGES[*])` as `IMAGES`; " +
	"the `slipway-multiarch` Pipeline in this catalog does exactly that.\n\n"

const binfmtSection = "## Emulation on the nodes\n\n" +
	"A build for another architecture than its node's runs `RUN` through QEMU user emulation, which the node's kernel must have registered in binfmt_misc with the F (fix-binary) flag; " +
	"Slipway never registers handlers itself, and fails before running anything when none is registered. " +
	"Register them once per node, e.g. with a privileged DaemonSet running `tonistiigi/binfmt --install all`, or `apt-get install qemu-user-static` on Debian nodes. " +
	"A Dockerfile that cross-compiles (`FROM --platform=$BUILDPLATFORM` with `TARGETARCH`) needs no emulation.\n\n"

func pipelineReadme(o options) []byte {
	p := MultiArchPipeline(WithBuilderImage(o.builderImage), WithVersion(o.version))
	var b bytes.Buffer
	path := TektonPath("pipeline", MultiArchName, o.version)
	summary, rest, _ := strings.Cut(p.Spec.Description, "\n\n")
	fmt.Fprintf(&b, "<!-- %s -->\n# %s (Pipeline)\n\n%s\n\n%s\n\n", strings.TrimSpace(strings.TrimPrefix(header, "# ")), p.Name, summary, rest)
	fmt.Fprintf(&b, "## Install\n\nInstall the `%s` and `%s` Tasks of this catalog, then:\n\n```sh\nkubectl apply -f %s\n```\n\nMatrix results gathered into arrays need Tekton Pipelines %s or later.\n\n", BuildName, IndexName, filepath.Base(path), matrixMinVersion)
	b.WriteString("## Parameters\n\n")
	paramsTable(&b, p.Spec.Params)
	b.WriteString("\n## Results\n\n")
	var names, descs []string
	for _, r := range p.Spec.Results {
		names, descs = append(names, r.Name), append(descs, r.Description)
	}
	resultsTable(&b, names, descs)
	b.WriteString("\n")
	b.WriteString(binfmtSection)
	b.WriteString(secretSection)
	b.WriteString("## Usage\n\n`samples/pipelinerun.yaml` builds for linux/amd64 and linux/arm64.\n")
	return b.Bytes()
}

func argoMultiArchReadme(o options) []byte {
	wt := MultiArchWorkflowTemplate(WithBuilderImage(o.builderImage), WithVersion(o.version))
	var b bytes.Buffer
	fmt.Fprintf(&b, "<!-- %s -->\n# %s (Argo WorkflowTemplate)\n\n%s\n\n", strings.TrimSpace(strings.TrimPrefix(header, "# ")), MultiArchName, wt.Annotations["workflows.argoproj.io/description"])
	b.WriteString("## Install\n\n```sh\nkubectl apply -f manifests.yaml\n```\n\n")
	fmt.Fprintf(&b, "The entrypoint `%s` runs the `%s` template once per platform (`withParam` over the JSON array `platforms`), then `%s` on their `images` outputs.\n\n", ArgoTemplateMultiArch, ArgoTemplateBuild, ArgoTemplateIndex)
	b.WriteString(binfmtSection)
	b.WriteString(secretSection)
	fmt.Fprintf(&b, "## Usage\n\n```sh\nargo submit --from workflowtemplate/%s -p image=%s:latest -p source-pvc=%s -p 'platforms=%s'\n```\n", MultiArchName, SampleImage, sampleSourcePV, defaultPlatformsJSON())
	return b.Bytes()
}
