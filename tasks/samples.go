package tasks

import (
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Names the samples and examples use for the objects a user creates.
const (
	SampleSecret   = "registry-credentials"
	SampleImage    = "registry.example.com/team/app"
	sampleSourcePV = "app-source"
	sampleCachePV  = "slipway-cache"
)

func str(v string) pipelinev1.ParamValue { return *pipelinev1.NewStructuredValues(v) }
func arr(v ...string) pipelinev1.ParamValue {
	return pipelinev1.ParamValue{Type: pipelinev1.ParamTypeArray, ArrayVal: v}
}

func pvc(name string) *corev1.PersistentVolumeClaimVolumeSource {
	return &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name}
}

// BuildTaskRunSample runs slipway-build from a cluster-installed Task.
func BuildTaskRunSample() *pipelinev1.TaskRun {
	return &pipelinev1.TaskRun{
		TypeMeta:   metav1.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "TaskRun"},
		ObjectMeta: metav1.ObjectMeta{GenerateName: BuildName + "-"},
		Spec: pipelinev1.TaskRunSpec{
			TaskRef: &pipelinev1.TaskRef{Name: BuildName},
			Params: pipelinev1.Params{
				{Name: "IMAGE", Value: str(SampleImage + ":latest")},
				{Name: "ADDITIONAL_TAGS", Value: arr(SampleImage + ":1.0.0")},
				{Name: "BUILD_ARGS", Value: arr("VERSION=1.0.0")},
				{Name: "CACHE", Value: str("true")},
			},
			Workspaces: []pipelinev1.WorkspaceBinding{
				{Name: "source", PersistentVolumeClaim: pvc(sampleSourcePV)},
				{Name: "dockerconfig", Secret: &corev1.SecretVolumeSource{SecretName: SampleSecret}},
				{Name: "cache", PersistentVolumeClaim: pvc(sampleCachePV)},
			},
		},
	}
}

// WarmTaskRunSample fills the cache that BuildTaskRunSample reads.
func WarmTaskRunSample() *pipelinev1.TaskRun {
	return &pipelinev1.TaskRun{
		TypeMeta:   metav1.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "TaskRun"},
		ObjectMeta: metav1.ObjectMeta{GenerateName: WarmName + "-"},
		Spec: pipelinev1.TaskRunSpec{
			TaskRef: &pipelinev1.TaskRef{Name: WarmName},
			Params: pipelinev1.Params{
				{Name: "IMAGES", Value: arr("docker.io/library/debian:bookworm-slim", "docker.io/library/golang:1.26")},
			},
			Workspaces: []pipelinev1.WorkspaceBinding{
				{Name: "cache", PersistentVolumeClaim: pvc(sampleCachePV)},
				{Name: "dockerconfig", Secret: &corev1.SecretVolumeSource{SecretName: SampleSecret}},
			},
		},
	}
}

// StepActionTaskSample is a Task of a user's own that builds with the
// StepAction and re-exports its step results as the Task's results, so
// Chains still sees IMAGE_URL and IMAGE_DIGEST.
func StepActionTaskSample() *pipelinev1.Task {
	stepResult := func(n string) *pipelinev1.ResultValue {
		return pipelinev1.NewStructuredValues("$(steps.build.results." + n + ")")
	}
	return &pipelinev1.Task{
		TypeMeta:   metav1.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "Task"},
		ObjectMeta: metav1.ObjectMeta{Name: "build-with-slipway"},
		Spec: pipelinev1.TaskSpec{
			Params: pipelinev1.ParamSpecs{{Name: "IMAGE", Type: pipelinev1.ParamTypeString}},
			Workspaces: []pipelinev1.WorkspaceDeclaration{
				{Name: "source"},
				{Name: "dockerconfig", ReadOnly: true},
			},
			Results: []pipelinev1.TaskResult{
				{Name: ResultImageDigest, Type: pipelinev1.ResultsTypeString, Value: stepResult(ResultImageDigest)},
				{Name: ResultImageURL, Type: pipelinev1.ResultsTypeString, Value: stepResult(ResultImageURL)},
			},
			Steps: []pipelinev1.Step{{
				Name: "build",
				Ref:  &pipelinev1.Ref{Name: BuildName},
				Params: pipelinev1.Params{
					{Name: "IMAGE", Value: str("$(params.IMAGE)")},
					{Name: ParamSourcePath, Value: str("$(workspaces.source.path)")},
					{Name: ParamDockerConfigPath, Value: str("$(workspaces.dockerconfig.path)")},
				},
			}},
		},
	}
}
