package tasks

import (
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	pipelinev1beta1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Names of the published resources.
const (
	BuildName = "slipway-build"
	WarmName  = "slipway-warm"
)

// Tekton result names; Chains reads IMAGE_URL/IMAGE_DIGEST and IMAGES as
// type hints, so they must keep these exact names.
const (
	ResultImageDigest = "IMAGE_DIGEST"
	ResultImageURL    = "IMAGE_URL"
	ResultImages      = "IMAGES"
	// ResultAttestations names the SBOM and provenance attached, as
	// repo@digest, comma-separated.
	ResultAttestations = "ATTESTATIONS"
	// ResultArtifactOutputs is Chains' newer type hint: an object with the
	// image's uri and digest, and isBuildArtifact for SLSA v1 subjects.
	ResultArtifactOutputs = "ARTIFACT_OUTPUTS"
)

// Minimum Tekton Pipelines versions: v1 Tasks with array params in args,
// and StepActions enabled by default.
const (
	taskMinVersion       = "0.50.0"
	stepActionMinVersion = "1.0.0"
)

const buildDescription = `Build a container image from a Dockerfile and push it, without a Docker daemon or privileges.

Slipway runs the Dockerfile in userspace inside an ordinary pod (root in its container, default capabilities and seccomp) and takes kaniko's executor flags, so EXTRA_ARGS from a kaniko Task carry over.

The image digest and URL are written as the IMAGE_DIGEST and IMAGE_URL results, each pushed repository once as IMAGES, and both as the ARTIFACT_OUTPUTS object, in the forms Tekton Chains reads to sign and attest the image. Under SKIP_PUSH, IMAGES is empty and ARTIFACT_OUTPUTS is not written.

Registry credentials come from the optional dockerconfig workspace, bound to a Secret holding either config.json or the .dockerconfigjson key that ` + "`kubectl create secret docker-registry`" + ` makes. Extra CA certificates come from the optional sslcertdir workspace (a ConfigMap or Secret of PEM files), as buildah's Task takes them.`

const stepActionDescription = `Build a container image from a Dockerfile and push it, as a step of your own Task.

The same build as the slipway-build Task. Paths come in as params instead of workspaces, so that the calling Task decides where the source, the registry credentials and the cache are mounted; the digest and URL are step results.`

const warmDescription = `Fetch base images into a shared cache workspace ahead of builds.

Builds that mount the same workspace as their cache workspace then read the base images from it instead of the registry.`

func catalogMeta(name, version, displayName, minVersion string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:   name,
		Labels: map[string]string{"app.kubernetes.io/version": version},
		Annotations: map[string]string{
			"tekton.dev/pipelines.minVersion": minVersion,
			"tekton.dev/categories":           "Image Build",
			"tekton.dev/tags":                 "image-build",
			"tekton.dev/displayName":          displayName,
			"tekton.dev/platforms":            Platforms,
		},
	}
}

func tektonParams(ins []input) pipelinev1.ParamSpecs {
	var ps pipelinev1.ParamSpecs
	for _, in := range ins {
		p := pipelinev1.ParamSpec{Name: in.name, Description: in.description, Type: pipelinev1.ParamTypeString}
		switch {
		case in.array:
			p.Type = pipelinev1.ParamTypeArray
			p.Default = &pipelinev1.ParamValue{Type: pipelinev1.ParamTypeArray, ArrayVal: []string{}}
		case !in.required:
			p.Default = pipelinev1.NewStructuredValues(in.def)
		}
		ps = append(ps, p)
	}
	return ps
}

// rootNoPrivilege is the step's security context: the build needs root in
// its container to write the image's filesystem, and nothing more.
func rootNoPrivilege() *corev1.SecurityContext {
	root := int64(0)
	no := false
	return &corev1.SecurityContext{RunAsUser: &root, Privileged: &no}
}

// buildArgs is slipway-build's argument list; paths are the Tekton
// expressions for where the source and results live in the pod.
func buildArgs(source string, results func(name string) string) []string {
	return []string{
		"--dockerfile=$(params.DOCKERFILE)",
		"--context=" + source + "/$(params.CONTEXT)",
		"--destination=$(params.IMAGE)",
		"--no-push=$(params.SKIP_PUSH)",
		"--tls-verify=$(params.TLSVERIFY)",
		"--digest-file=" + results(ResultImageDigest),
		"--image-url-file=" + results(ResultImageURL),
		"--images-file=" + results(ResultImages),
		"--artifact-outputs-file=" + results(ResultArtifactOutputs),
		"--sbom=$(params.SBOM)",
		"--provenance=$(params.PROVENANCE)",
		"--attestations-file=" + results(ResultAttestations),
		"--target=$(params.TARGET)",
		"--cache=$(params.CACHE)",
		"--cache-repo=$(params.CACHE_REPO)",
		"--custom-platform=$(params.PLATFORM)",
		"$(params.EXTRA_ARGS[*])",
		"--",
		"--build-arg", "$(params.BUILD_ARGS[*])",
		"--destination", "$(params.ADDITIONAL_TAGS[*])",
	}
}

func buildResults() []pipelinev1.TaskResult {
	return []pipelinev1.TaskResult{
		{Name: ResultImageDigest, Type: pipelinev1.ResultsTypeString, Description: "Digest of the pushed image, sha256:<hex>."},
		{Name: ResultImageURL, Type: pipelinev1.ResultsTypeString, Description: "Reference of the pushed image (IMAGE), without the digest."},
		{Name: ResultImages, Type: pipelinev1.ResultsTypeString, Description: "Every pushed reference (IMAGE and ADDITIONAL_TAGS) with its digest, comma-separated."},
		{Name: ResultAttestations, Type: pipelinev1.ResultsTypeString, Description: "The SBOM and provenance attached to the image (SBOM, PROVENANCE), as repo@digest, comma-separated; empty when neither is on."},
		{Name: ResultArtifactOutputs, Type: pipelinev1.ResultsTypeObject, Description: "The pushed image for Tekton Chains: uri (IMAGE), digest (sha256:<hex>) and isBuildArtifact; not written under SKIP_PUSH.",
			Properties: map[string]pipelinev1.PropertySpec{"uri": {Type: pipelinev1.ParamTypeString}, "digest": {Type: pipelinev1.ParamTypeString}, "isBuildArtifact": {Type: pipelinev1.ParamTypeString}}},
	}
}

// taskResultPath and stepResultPath are where a Task's step and a
// StepAction write result name.
func taskResultPath(name string) string { return "$(results." + name + ".path)" }
func stepResultPath(name string) string { return "$(step.results." + name + ".path)" }

// sslCertDir is where the optional sslcertdir workspace is mounted. Its
// certificates are added to the executor image's SSL_CERT_DIR (see
// steps/image/Dockerfile), which Go reads beside the image's CA bundle:
// every registry and git server is then trusted under the extra CAs, as
// buildah's --cert-dir does. Unbound, the workspace path is empty and
// only the image's own directories remain.
const (
	sslCertDir      = "/slipway/ssl/workspace"
	imageSSLCertDir = "/slipway/certs:/kaniko/ssl/certs"
)

// BuildTask returns the slipway-build Task.
func BuildTask(opts ...Option) *pipelinev1.Task {
	o := makeOptions(opts)
	return &pipelinev1.Task{
		TypeMeta:   metav1.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "Task"},
		ObjectMeta: catalogMeta(BuildName, o.version, "Slipway build", taskMinVersion),
		Spec: pipelinev1.TaskSpec{
			Description: buildDescription,
			Params:      tektonParams(buildInputs(o.builderImage)),
			Workspaces: []pipelinev1.WorkspaceDeclaration{
				{Name: "source", Description: "Holds the build context and the Dockerfile."},
				{Name: "dockerconfig", Optional: true, ReadOnly: true, MountPath: dockerConfigDir,
					Description: "A Secret with registry credentials, under the key config.json or .dockerconfigjson."},
				{Name: "cache", Optional: true, MountPath: cacheDir,
					Description: "Base images fetched by slipway-warm, and RUN --mount=type=cache directories, kept between builds."},
				{Name: "sslcertdir", Optional: true, ReadOnly: true, MountPath: sslCertDir,
					Description: "Extra CA certificates (PEM files, e.g. a ConfigMap's ca-bundle.crt) trusted for every registry and git server, beside the image's bundle."},
			},
			Results: buildResults(),
			Steps: []pipelinev1.Step{{
				Name:       "build-and-push",
				Image:      "$(params.BUILDER_IMAGE)",
				WorkingDir: "$(workspaces.source.path)",
				Command:    []string{buildBinary},
				Args:       buildArgs("$(workspaces.source.path)", taskResultPath),
				Env: []corev1.EnvVar{
					{Name: "DOCKER_CONFIG", Value: dockerConfigDir},
					{Name: "SSL_CERT_DIR", Value: imageSSLCertDir + ":$(workspaces.sslcertdir.path)"},
				},
				SecurityContext: rootNoPrivilege(),
			}},
		},
	}
}

// Params the StepAction takes in place of the Task's workspaces.
const (
	ParamSourcePath       = "SOURCE_PATH"
	ParamDockerConfigPath = "DOCKERCONFIG_PATH"
	ParamCachePath        = "CACHE_PATH"
	ParamSSLCertDirPath   = "SSLCERTDIR_PATH"
)

// BuildStepAction returns the slipway-build StepAction.
func BuildStepAction(opts ...Option) *pipelinev1beta1.StepAction {
	o := makeOptions(opts)
	params := tektonParams(buildInputs(o.builderImage))
	params = append(params,
		pipelinev1.ParamSpec{Name: ParamSourcePath, Type: pipelinev1.ParamTypeString,
			Description: "Directory holding the build context and the Dockerfile, e.g. $(workspaces.source.path)."},
		pipelinev1.ParamSpec{Name: ParamDockerConfigPath, Type: pipelinev1.ParamTypeString, Default: pipelinev1.NewStructuredValues(dockerConfigDir),
			Description: "Directory with config.json or .dockerconfigjson, e.g. $(workspaces.dockerconfig.path); the default is the image's own, empty one."},
		pipelinev1.ParamSpec{Name: ParamCachePath, Type: pipelinev1.ParamTypeString, Default: pipelinev1.NewStructuredValues(cacheDir),
			Description: "Cache directory, e.g. $(workspaces.cache.path); a missing directory means an empty cache."},
		pipelinev1.ParamSpec{Name: ParamSSLCertDirPath, Type: pipelinev1.ParamTypeString, Default: pipelinev1.NewStructuredValues(""),
			Description: "Directory of extra CA certificates (PEM), e.g. $(workspaces.sslcertdir.path), trusted beside the image's bundle; empty for none."},
	)
	var results []pipelinev1.StepResult
	for _, r := range buildResults() {
		results = append(results, pipelinev1.StepResult{Name: r.Name, Type: r.Type, Properties: r.Properties, Description: r.Description})
	}
	args := buildArgs("$(params.SOURCE_PATH)", stepResultPath)
	// The Task gets the cache at the fixed mount; here it can be anywhere.
	args = append([]string{"--cache-dir=$(params.CACHE_PATH)"}, args...)
	return &pipelinev1beta1.StepAction{
		TypeMeta:   metav1.TypeMeta{APIVersion: "tekton.dev/v1beta1", Kind: "StepAction"},
		ObjectMeta: catalogMeta(BuildName, o.version, "Slipway build", stepActionMinVersion),
		Spec: pipelinev1beta1.StepActionSpec{
			Description: stepActionDescription,
			Params:      params,
			Results:     results,
			Image:       "$(params.BUILDER_IMAGE)",
			WorkingDir:  "$(params.SOURCE_PATH)",
			Command:     []string{buildBinary},
			Args:        args,
			Env: []corev1.EnvVar{
				{Name: "DOCKER_CONFIG", Value: "$(params.DOCKERCONFIG_PATH)"},
				{Name: "SSL_CERT_DIR", Value: imageSSLCertDir + ":$(params.SSLCERTDIR_PATH)"},
			},
			SecurityContext: rootNoPrivilege(),
		},
	}
}

// WarmTask returns the slipway-warm Task.
func WarmTask(opts ...Option) *pipelinev1.Task {
	o := makeOptions(opts)
	return &pipelinev1.Task{
		TypeMeta:   metav1.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "Task"},
		ObjectMeta: catalogMeta(WarmName, o.version, "Slipway cache warmer", taskMinVersion),
		Spec: pipelinev1.TaskSpec{
			Description: warmDescription,
			Params:      tektonParams(warmInputs(o.builderImage)),
			Workspaces: []pipelinev1.WorkspaceDeclaration{
				{Name: "cache", MountPath: cacheDir, Description: "The cache to fill; bind the same volume as the cache workspace of slipway-build."},
				{Name: "source", Optional: true, Description: "Holds DOCKERFILE, when one is given."},
				{Name: "dockerconfig", Optional: true, ReadOnly: true, MountPath: dockerConfigDir,
					Description: "A Secret with registry credentials, under the key config.json or .dockerconfigjson."},
			},
			Steps: []pipelinev1.Step{{
				Name:       "warm",
				Image:      "$(params.BUILDER_IMAGE)",
				WorkingDir: "$(workspaces.source.path)",
				Command:    []string{warmBinary},
				Args: []string{
					"--cache-dir=$(workspaces.cache.path)",
					"--dockerfile=$(params.DOCKERFILE)",
					"$(params.EXTRA_ARGS[*])",
					"--",
					"--image", "$(params.IMAGES[*])",
					"--build-arg", "$(params.BUILD_ARGS[*])",
				},
				Env:             []corev1.EnvVar{{Name: "DOCKER_CONFIG", Value: dockerConfigDir}},
				SecurityContext: rootNoPrivilege(),
			}},
		},
	}
}
