// Package steptest turns Slipway's published definitions plus a run into the
// concrete container a Tekton or Argo pod would start, using the
// controllers' own substitution code, so that tests can check (and run under
// `docker run`) exactly what a cluster would execute, without a cluster.
package steptest

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v3/workflow/common"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	pipelinev1beta1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	tektonfake "github.com/tektoncd/pipeline/pkg/client/clientset/versioned/fake"
	"github.com/tektoncd/pipeline/pkg/reconciler/taskrun/resources"
	"github.com/tektoncd/pipeline/pkg/workspace"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Container is one resolved step: what the kubelet would run and mount.
type Container struct {
	Name       string
	Image      string
	Command    []string
	Args       []string
	Env        []corev1.EnvVar
	WorkingDir string
	// VolumeMounts name entries of Volumes; a docker-run harness maps each
	// volume to a host directory (a Secret's keys become files).
	VolumeMounts []corev1.VolumeMount
	Volumes      []corev1.Volume
	// ResultsDir is where the step writes result files (Tekton's
	// /tekton/results, or the Argo template's output directory).
	ResultsDir string
	// SecurityContext is the container's, from the step or template.
	SecurityContext *corev1.SecurityContext
}

// ResolveTektonSteps applies a TaskRun to a Task the way Tekton's TaskRun
// reconciler does before it builds the pod: param defaults and values,
// context, results, step exit code paths and workspaces are substituted, and
// bound workspaces become volume mounts. Steps that reference a StepAction
// must be inlined first (InlineStepActions).
func ResolveTektonSteps(ctx context.Context, task *pipelinev1.Task, tr *pipelinev1.TaskRun) ([]Container, error) {
	ts := task.Spec.DeepCopy()
	ts.SetDefaults(ctx)
	if err := checkParams(ts.Params, tr.Spec.Params); err != nil {
		return nil, fmt.Errorf("TaskRun %s for Task %s: %w", tr.Name, task.Name, err)
	}
	if err := resources.ValidateParamArrayIndex(ts, tr.Spec.Params); err != nil {
		return nil, fmt.Errorf("TaskRun %s for Task %s: %w", tr.Name, task.Name, err)
	}
	if err := checkWorkspaces(ts.Workspaces, tr.Spec.Workspaces); err != nil {
		return nil, fmt.Errorf("TaskRun %s for Task %s: %w", tr.Name, task.Name, err)
	}

	// The same sequence as applyParamsContextsResultsAndWorkspaces in
	// tektoncd/pipeline's pkg/reconciler/taskrun.
	ts = resources.ApplyParameters(ts, tr, ts.Params...)
	ts = resources.ApplyContexts(ts, task.Name, tr)
	ts = resources.ApplyResults(ts)
	ts = resources.ApplyArtifacts(ts)
	ts = resources.ApplyStepExitCodePath(ts)
	vols := workspace.CreateVolumes(tr.Spec.Workspaces)
	ts = resources.ApplyWorkspaces(ctx, ts, ts.Workspaces, tr.Spec.Workspaces, vols)
	ts, err := workspace.Apply(ctx, *ts, tr.Spec.Workspaces, vols)
	if err != nil {
		return nil, fmt.Errorf("mounting workspaces of TaskRun %s: %w", tr.Name, err)
	}
	steps, err := pipelinev1.MergeStepsWithStepTemplate(ts.StepTemplate, ts.Steps)
	if err != nil {
		return nil, fmt.Errorf("merging the step template of Task %s: %w", task.Name, err)
	}
	var out []Container
	for _, s := range steps {
		if s.Ref != nil {
			return nil, fmt.Errorf("step %q references StepAction %q: inline it before resolving", s.Name, s.Ref.Name)
		}
		out = append(out, Container{
			Name:         s.Name,
			Image:        s.Image,
			Command:      s.Command,
			Args:         s.Args,
			Env:          s.Env,
			WorkingDir:   s.WorkingDir,
			VolumeMounts: s.VolumeMounts,
			Volumes:      ts.Volumes,
			ResultsDir:   pipeline.DefaultResultPath,

			SecurityContext: s.SecurityContext,
		})
	}
	return out, nil
}

// InlineStepActions returns a copy of task whose steps that reference one
// of actions by name are replaced by the StepAction's container, with
// Tekton's own StepAction resolution (GetStepActionsData) reading the
// actions from a fake clientset instead of a cluster.
func InlineStepActions(ctx context.Context, task *pipelinev1.Task, tr *pipelinev1.TaskRun, actions ...*pipelinev1beta1.StepAction) (*pipelinev1.Task, error) {
	var objs []runtime.Object
	for _, a := range actions {
		a = a.DeepCopy()
		a.Namespace = tr.Namespace
		objs = append(objs, a)
	}
	client := tektonfake.NewSimpleClientset(objs...)
	steps, err := resources.GetStepActionsData(ctx, task.Spec, tr.DeepCopy(), client, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("resolving the StepActions of Task %s: %w", task.Name, err)
	}
	out := task.DeepCopy()
	out.Spec.Steps = steps
	return out, nil
}

func checkParams(specs pipelinev1.ParamSpecs, given pipelinev1.Params) error {
	got := map[string]pipelinev1.ParamType{}
	for _, p := range given {
		got[p.Name] = p.Value.Type
	}
	var missing []string
	for _, s := range specs {
		t, ok := got[s.Name]
		switch {
		case !ok && s.Default == nil:
			missing = append(missing, s.Name)
		case ok && s.Type != "" && t != s.Type:
			return fmt.Errorf("param %s is declared %s but given as %s", s.Name, s.Type, t)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("required params not given: %s", strings.Join(missing, ", "))
	}
	return nil
}

func checkWorkspaces(decls []pipelinev1.WorkspaceDeclaration, bindings []pipelinev1.WorkspaceBinding) error {
	bound := map[string]bool{}
	for _, b := range bindings {
		bound[b.Name] = true
	}
	for _, d := range decls {
		if !d.Optional && !bound[d.Name] {
			return fmt.Errorf("required workspace %q is not bound", d.Name)
		}
	}
	return nil
}

// ResolveArgoTemplate applies arguments to one template of a
// (Cluster)WorkflowTemplate with Argo's own ProcessArgs, as the workflow
// controller does when it executes a templateRef.
func ResolveArgoTemplate(spec *wfv1.WorkflowSpec, template string, args wfv1.Arguments) (Container, *wfv1.Template, error) {
	var tmpl *wfv1.Template
	for i := range spec.Templates {
		if spec.Templates[i].Name == template {
			tmpl = &spec.Templates[i]
		}
	}
	if tmpl == nil {
		return Container{}, nil, fmt.Errorf("template %q not found", template)
	}
	resolved, err := common.ProcessArgs(tmpl, &args, common.Parameters{}, common.Parameters{}, false, "default", nil)
	if err != nil {
		return Container{}, nil, fmt.Errorf("substituting arguments into template %q: %w", template, err)
	}
	c := resolved.Container
	if c == nil {
		return Container{}, nil, fmt.Errorf("template %q has no container", template)
	}
	resultsDir := ""
	for _, p := range resolved.Outputs.Parameters {
		if p.ValueFrom != nil && p.ValueFrom.Path != "" {
			resultsDir = filepath.Dir(p.ValueFrom.Path)
		}
	}
	return Container{
		Name:         template,
		Image:        c.Image,
		Command:      c.Command,
		Args:         c.Args,
		Env:          c.Env,
		WorkingDir:   c.WorkingDir,
		VolumeMounts: c.VolumeMounts,
		Volumes:      resolved.Volumes,
		ResultsDir:   resultsDir,

		SecurityContext: c.SecurityContext,
	}, resolved, nil
}

// DockerRunArgs returns the `docker run` arguments that start c the way its
// pod would: no shell, the command as entrypoint, the working directory,
// environment and user of the step, and no added privileges. binds maps each
// mount path of c (volume mounts and, when wanted, ResultsDir or Tekton's
// step directories) to a host directory; a Secret volume is a directory
// holding one file per key. Every volume mount must be bound, so a test
// cannot silently run without a workspace the definition declares.
func DockerRunArgs(c Container, binds map[string]string) ([]string, error) {
	if len(c.Command) == 0 {
		return nil, fmt.Errorf("step %s has no command; the executor image has no default to fall back on", c.Name)
	}
	args := []string{"run", "--rm", "--entrypoint", c.Command[0]}
	if sc := c.SecurityContext; sc != nil {
		if sc.Privileged != nil && *sc.Privileged {
			return nil, fmt.Errorf("step %s asks to be privileged", c.Name)
		}
		if sc.RunAsUser != nil {
			args = append(args, "--user", fmt.Sprint(*sc.RunAsUser))
		}
	}
	if c.WorkingDir != "" {
		args = append(args, "--workdir", c.WorkingDir)
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			return nil, fmt.Errorf("step %s: env %s comes from %v, which a docker run cannot resolve", c.Name, e.Name, e.ValueFrom)
		}
		args = append(args, "--env", e.Name+"="+e.Value)
	}
	mounted := map[string]bool{}
	for _, m := range c.VolumeMounts {
		host, ok := binds[m.MountPath]
		if !ok {
			return nil, fmt.Errorf("step %s mounts volume %s at %s, but no host directory is bound there", c.Name, m.Name, m.MountPath)
		}
		spec := host + ":" + m.MountPath
		if m.ReadOnly {
			spec += ":ro"
		}
		args = append(args, "--volume", spec)
		mounted[m.MountPath] = true
	}
	var extra []string
	for path := range binds {
		if !mounted[path] {
			extra = append(extra, path)
		}
	}
	sort.Strings(extra)
	for _, path := range extra {
		args = append(args, "--volume", binds[path]+":"+path)
	}
	args = append(args, c.Image)
	args = append(args, c.Command[1:]...)
	return append(args, c.Args...), nil
}
