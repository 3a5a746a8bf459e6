package tasks

import (
	"slices"
	"strings"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Names of the templates inside the Argo WorkflowTemplate and
// ClusterWorkflowTemplate, for templateRef.template.
const (
	ArgoTemplateBuild    = "build"     // source from a PersistentVolumeClaim
	ArgoTemplateBuildGit = "build-git" // source from a git input artifact
)

// Argo output parameter names.
const (
	OutputImageDigest  = "image-digest"
	OutputImageURL     = "image-url"
	OutputImages       = "images"
	OutputAttestations = "attestations"
)

// Where the Argo templates mount things. Outputs sit in an emptyDir because
// the executor image is FROM scratch and has no writable /tmp to rely on.
const (
	argoSourceDir  = "/workspace/source"
	argoResultsDir = "/slipway/results"
)

const argoDescription = `Build a container image from a Dockerfile and push it, without a Docker daemon or privileges.

Template "build" reads the source from a PersistentVolumeClaim (input source-pvc); template "build-git" clones it from git (inputs git-repo and git-revision), with the credentials of the Secrets named by git-credentials-secret (basic auth) or git-ssh-secret (an SSH key) when they exist. Registry credentials come from the Secret named by docker-config-secret, holding config.json or .dockerconfigjson; it may be absent for registries without auth. Both templates mount the PersistentVolumeClaim named by cache-pvc, when given, as the cache directory.

List inputs (build-args, additional-tags, extra-args) take one item per line, since Argo parameters are strings. The outputs image-digest (sha256:<hex>), image-url and images are read from files.`

func argoParam(name, def, description string) wfv1.Parameter {
	return wfv1.Parameter{Name: name, Default: wfv1.AnyStringPtr(def), Description: wfv1.AnyStringPtr(description)}
}

// argoWords turns the shared input descriptions into Argo's terms: kebab-case
// names, and lines where Tekton has array elements.
var argoWords = strings.NewReplacer(
	"one per element", "one per line",
	"CACHE_REPO", "cache-repo",
	"CONTEXT", "context",
	"IMAGES", "the images output",
	"IMAGE", "image",
)

func argoInputs(builderImage string) []wfv1.Parameter {
	var ps []wfv1.Parameter
	for _, in := range buildInputs(builderImage) {
		p := wfv1.Parameter{Name: in.argoName(), Description: wfv1.AnyStringPtr(argoWords.Replace(in.description))}
		switch {
		case in.array:
			p.Default = wfv1.AnyStringPtr("")
		case !in.required:
			p.Default = wfv1.AnyStringPtr(in.def)
		}
		ps = append(ps, p)
	}
	return append(ps, argoParam("docker-config-secret", SampleSecret,
		"Secret with config.json or .dockerconfigjson; the build runs without credentials when it does not exist."))
}

// argoIn is the expression of the template's input parameter n.
func argoIn(n string) string { return "{{inputs.parameters." + n + "}}" }

// argoOut is the output parameter n, read from its file in the results volume.
func argoOut(n string) wfv1.Parameter {
	return wfv1.Parameter{Name: n, ValueFrom: &wfv1.ValueFrom{Path: argoResultsDir + "/" + n}}
}

// argoVolumes and argoMounts are what every Slipway template's pod has:
// the optional registry credentials Secret named by docker-config-secret,
// and the emptyDir its outputs are written to.
func argoVolumes() []corev1.Volume {
	return []corev1.Volume{
		{Name: "docker-config", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: argoIn("docker-config-secret"), Optional: ptr(true)}}},
		{Name: "results", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
}

func argoMounts() []corev1.VolumeMount {
	return []corev1.VolumeMount{
		{Name: "docker-config", MountPath: dockerConfigDir, ReadOnly: true},
		{Name: "results", MountPath: argoResultsDir},
	}
}

func argoArgs() []string {
	in := argoIn
	return []string{
		"--dockerfile=" + in("dockerfile"),
		"--context=" + argoSourceDir + "/" + in("context"),
		"--destination=" + in("image"),
		"--no-push=" + in("skip-push"),
		"--tls-verify=" + in("tlsverify"),
		"--digest-file=" + argoResultsDir + "/" + OutputImageDigest,
		"--image-url-file=" + argoResultsDir + "/" + OutputImageURL,
		"--images-file=" + argoResultsDir + "/" + OutputImages,
		"--sbom=" + in("sbom"),
		"--provenance=" + in("provenance"),
		"--attestations-file=" + argoResultsDir + "/" + OutputAttestations,
		"--target=" + in("target"),
		"--cache=" + in("cache"),
		"--cache-repo=" + in("cache-repo"),
		"--custom-platform=" + in("platform"),
		"--",
		"--build-arg", in("build-args"),
		"--destination", in("additional-tags"),
		"--args", in("extra-args"),
	}
}

// Secrets the build-git template reads when they exist: a
// kubernetes.io/basic-auth Secret (keys username and password; a token as
// the password) for https remotes, and a kubernetes.io/ssh-auth Secret
// (key ssh-privatekey, and known_hosts) for ssh remotes.
const (
	argoGitCredentialsSecret = "git-credentials"
	argoGitSSHSecret         = "git-ssh-key"
	argoGitSSHDir            = "/slipway/git-ssh"
)

// argoCachePatch mounts the PersistentVolumeClaim named by cache-pvc at the
// cache directory, as the Tekton Task's cache workspace, and nothing when
// it is empty: a claim cannot be an optional volume, so the pod spec is
// patched only when one is given. No "}}" may appear inside, where it
// would end the expression.
const argoCachePatch = `{{= inputs.parameters['cache-pvc'] == '' ? '{}' : ` +
	`'{"volumes":[{"name":"cache","persistentVolumeClaim":{"claimName":"' + inputs.parameters['cache-pvc'] + '"} }],` +
	`"containers":[{"name":"main","volumeMounts":[{"name":"cache","mountPath":"` + cacheDir + `"}]}]}' }}`

func argoTemplate(name, builderImage string, git bool) wfv1.Template {
	params := argoInputs(builderImage)
	params = append(params, argoParam("cache-pvc", "",
		"PersistentVolumeClaim mounted as the cache: base images fetched by slipway-warm, and RUN --mount=type=cache directories, kept between builds; empty for none."))
	volumes, mounts := argoVolumes(), argoMounts()
	env := []corev1.EnvVar{{Name: "DOCKER_CONFIG", Value: dockerConfigDir}}
	args := argoArgs()
	workingDir := argoSourceDir
	if git {
		// slipway-build clones the repository itself, as kaniko does: the
		// credentials then come from Secrets that may be absent, which
		// Argo's git input artifact cannot do.
		params = append(params,
			wfv1.Parameter{Name: "git-repo", Description: wfv1.AnyStringPtr("Git URL of the source: https://…/repo.git, ssh://…, git@host:path or git://… (kaniko's forms).")},
			argoParam("git-revision", "HEAD", "Branch, tag, ref or commit to build."),
			argoParam("git-credentials-secret", argoGitCredentialsSecret,
				"kubernetes.io/basic-auth Secret (username, password or token) for an https git-repo; the clone is anonymous when it does not exist."),
			argoParam("git-ssh-secret", argoGitSSHSecret,
				"kubernetes.io/ssh-auth Secret (ssh-privatekey, and known_hosts with the server's host key) for an ssh git-repo; unused when it does not exist."))
		secretEnv := func(name, key string) corev1.EnvVar {
			return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "{{inputs.parameters.git-credentials-secret}}"},
				Key:                  key, Optional: ptr(true)}}}
		}
		env = append(env,
			secretEnv("GIT_USERNAME", "username"), secretEnv("GIT_PASSWORD", "password"),
			corev1.EnvVar{Name: "GIT_SSH_KEY", Value: argoGitSSHDir + "/ssh-privatekey"},
			corev1.EnvVar{Name: "GIT_SSH_KNOWN_HOSTS", Value: argoGitSSHDir + "/known_hosts"})
		volumes = append(volumes, corev1.Volume{Name: "git-ssh", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: "{{inputs.parameters.git-ssh-secret}}", Optional: ptr(true), DefaultMode: ptr(int32(0o400))}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "git-ssh", MountPath: argoGitSSHDir, ReadOnly: true})
		args[slices.Index(args, "--context="+argoSourceDir+"/{{inputs.parameters.context}}")] =
			"--context={{inputs.parameters.git-repo}}#{{inputs.parameters.git-revision}}"
		args = append([]string{"--context-sub-path={{inputs.parameters.context}}"}, args...)
		workingDir = ""
	} else {
		params = append(params, wfv1.Parameter{Name: "source-pvc",
			Description: wfv1.AnyStringPtr("PersistentVolumeClaim holding the source at its root.")})
		volumes = append(volumes, corev1.Volume{Name: "source", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "{{inputs.parameters.source-pvc}}"}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "source", MountPath: argoSourceDir})
	}
	out := argoOut
	return wfv1.Template{
		Name:         name,
		Inputs:       wfv1.Inputs{Parameters: params},
		Outputs:      wfv1.Outputs{Parameters: []wfv1.Parameter{out(OutputImageDigest), out(OutputImageURL), out(OutputImages), out(OutputAttestations)}},
		Volumes:      volumes,
		PodSpecPatch: argoCachePatch,
		Container: &corev1.Container{
			Image: "{{inputs.parameters.builder-image}}",
			// Set explicitly: the emissary executor would otherwise look
			// the entrypoint up in the registry.
			Command:         []string{buildBinary},
			Args:            args,
			WorkingDir:      workingDir,
			Env:             env,
			VolumeMounts:    mounts,
			SecurityContext: rootNoPrivilege(),
		},
	}
}

func argoSpec(o options) wfv1.WorkflowSpec {
	return wfv1.WorkflowSpec{
		Entrypoint: ArgoTemplateBuild,
		Templates: []wfv1.Template{
			argoTemplate(ArgoTemplateBuild, o.builderImage, false),
			argoTemplate(ArgoTemplateBuildGit, o.builderImage, true),
		},
	}
}

func argoMeta(o options) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:   BuildName,
		Labels: map[string]string{"app.kubernetes.io/version": o.version},
		Annotations: map[string]string{
			"workflows.argoproj.io/description": argoDescription,
			"workflows.argoproj.io/version":     ">= 3.5.0",
		},
	}
}

// BuildWorkflowTemplate returns the namespaced slipway-build template.
func BuildWorkflowTemplate(opts ...Option) *wfv1.WorkflowTemplate {
	o := makeOptions(opts)
	return &wfv1.WorkflowTemplate{
		TypeMeta:   metav1.TypeMeta{APIVersion: "argoproj.io/v1alpha1", Kind: "WorkflowTemplate"},
		ObjectMeta: argoMeta(o),
		Spec:       argoSpec(o),
	}
}

// BuildClusterWorkflowTemplate returns the cluster-scoped slipway-build
// template, for templateRef with clusterScope: true.
func BuildClusterWorkflowTemplate(opts ...Option) *wfv1.ClusterWorkflowTemplate {
	o := makeOptions(opts)
	return &wfv1.ClusterWorkflowTemplate{
		TypeMeta:   metav1.TypeMeta{APIVersion: "argoproj.io/v1alpha1", Kind: "ClusterWorkflowTemplate"},
		ObjectMeta: argoMeta(o),
		Spec:       argoSpec(o),
	}
}

func ptr[T any](v T) *T { return &v }
