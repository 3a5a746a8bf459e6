//go:build cluster

package cluster

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// env is what `cluster.sh up` wrote to $STATE/env.
type env struct {
	kubectl, kubeconfig string
	registry, user, pw  string
	executor, busybox   string
	// busyboxMulti is an index of busybox for linux/amd64 and linux/arm64.
	busyboxMulti   string
	catalog, state string
}

var (
	cl env
	// ns is the namespace every test works in; TestMain makes it afresh.
	ns = "slipway-e2e"
	// runID keeps image tags of one run apart from those of earlier runs,
	// which the registry keeps until `cluster.sh down`.
	runID string
)

func TestMain(m *testing.M) {
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, "cluster e2e setup:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func setup() error {
	state := os.Getenv("SLIPWAY_CLUSTER_STATE")
	if state == "" {
		state = "/var/lib/slipway-cluster"
	}
	b, err := os.ReadFile(filepath.Join(state, "env"))
	if err != nil {
		return fmt.Errorf("%w: start the cluster with e2e/cluster/cluster.sh up (make e2e-cluster does)", err)
	}
	vars := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			vars[k] = v
		}
	}
	pw, err := os.ReadFile(vars["SLIPWAY_CLUSTER_REGISTRY_PASSWORD_FILE"])
	if err != nil {
		return err
	}
	cl = env{
		kubectl:      vars["SLIPWAY_CLUSTER_KUBECTL"],
		kubeconfig:   vars["SLIPWAY_CLUSTER_KUBECONFIG"],
		registry:     vars["SLIPWAY_CLUSTER_REGISTRY"],
		user:         vars["SLIPWAY_CLUSTER_REGISTRY_USER"],
		pw:           strings.TrimSpace(string(pw)),
		executor:     vars["SLIPWAY_CLUSTER_EXECUTOR"],
		busybox:      vars["SLIPWAY_CLUSTER_BUSYBOX"],
		busyboxMulti: vars["SLIPWAY_CLUSTER_BUSYBOX_MULTI"],
		catalog:      vars["SLIPWAY_CLUSTER_CATALOG"],
		state:        state,
	}
	rb := make([]byte, 3)
	_, _ = rand.Read(rb)
	runID = hex.EncodeToString(rb)

	if _, err := kubectl("delete", "namespace", ns, "--ignore-not-found", "--wait=true", "--timeout=120s"); err != nil {
		return err
	}
	if _, err := kubectl("create", "namespace", ns); err != nil {
		return err
	}
	// The Secret exactly as a user makes it: its key is .dockerconfigjson.
	if _, err := kubectl("-n", ns, "create", "secret", "docker-registry", "regcred",
		"--docker-server="+cl.registry, "--docker-username="+cl.user, "--docker-password="+cl.pw); err != nil {
		return err
	}
	for _, f := range []string{
		"tekton/task/slipway-build/0.1.0/slipway-build.yaml",
		"tekton/task/slipway-warm/0.1.0/slipway-warm.yaml",
		"tekton/stepaction/slipway-build/0.1.0/slipway-build.yaml",
		"argo/slipway-build/0.1.0/manifests.yaml",
		"argo/slipway-build-cluster/0.1.0/manifests.yaml",
		"tekton/task/slipway-index/0.1.0/slipway-index.yaml",
		"tekton/pipeline/slipway-multiarch/0.1.0/slipway-multiarch.yaml",
		"argo/slipway-multiarch/0.1.0/manifests.yaml",
	} {
		if _, err := kubectl("-n", ns, "apply", "-f", filepath.Join(cl.catalog, f)); err != nil {
			return fmt.Errorf("applying the published %s: %w", f, err)
		}
	}
	// Argo's emissary executor reports outputs as WorkflowTaskResults, which
	// the pod's service account must be allowed to write.
	return apply(`
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: argo-executor}
rules:
- apiGroups: [argoproj.io]
  resources: [workflowtaskresults]
  verbs: [create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: argo-executor}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: argo-executor}
subjects: [{kind: ServiceAccount, name: default}]
`)
}

func kubectl(args ...string) ([]byte, error) {
	return kubectlIn(nil, args...)
}

func kubectlIn(stdin []byte, args ...string) ([]byte, error) {
	cmd := exec.Command(cl.kubectl, append([]string{"--kubeconfig", cl.kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func apply(yaml string) error {
	_, err := kubectlIn([]byte(yaml), "-n", ns, "apply", "-f", "-")
	return err
}

func mustApply(t *testing.T, yaml string) {
	t.Helper()
	if err := apply(yaml); err != nil {
		t.Fatal(err)
	}
}

// object is the part of a Kubernetes object these tests read.
type object struct {
	Metadata struct {
		Name   string            `json:"name"`
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Status struct {
		Phase      string `json:"phase"`
		Message    string `json:"message"`
		Conditions []struct {
			Type, Status, Reason, Message string
		} `json:"conditions"`
		PodName string `json:"podName"`
		Results []struct {
			Name  string          `json:"name"`
			Value json.RawMessage `json:"value"`
		} `json:"results"`
		ChildReferences []struct {
			Kind, Name, PipelineTaskName string
		} `json:"childReferences"`
		Nodes map[string]struct {
			DisplayName  string `json:"displayName"`
			Type         string `json:"type"`
			Phase        string `json:"phase"`
			TemplateName string `json:"templateName"`
			Outputs      struct {
				Parameters []struct{ Name, Value string } `json:"parameters"`
			} `json:"outputs"`
		} `json:"nodes"`
	} `json:"status"`
}

func get(t *testing.T, kind, name string) object {
	t.Helper()
	out, err := kubectl("-n", ns, "get", kind, name, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var o object
	if err := json.Unmarshal(out, &o); err != nil {
		t.Fatalf("decoding %s/%s: %v", kind, name, err)
	}
	return o
}

// waitTekton waits for a TaskRun or PipelineRun to finish and returns it
// with whether it succeeded and how long it took from submission.
func waitTekton(t *testing.T, kind, name string, start time.Time) (object, bool) {
	t.Helper()
	deadline := time.Now().Add(6 * time.Minute)
	for time.Now().Before(deadline) {
		o := get(t, kind, name)
		for _, c := range o.Status.Conditions {
			if c.Type == "Succeeded" && c.Status != "Unknown" {
				t.Logf("%s/%s finished in %s: %s %s", kind, name, time.Since(start).Round(100*time.Millisecond), c.Reason, c.Message)
				return o, c.Status == "True"
			}
		}
		time.Sleep(time.Second)
	}
	describe(t, kind, name)
	t.Fatalf("%s/%s did not finish in 6 minutes", kind, name)
	return object{}, false
}

// describe puts what a failing run's reader needs into the test log.
func describe(t *testing.T, kind, name string) {
	t.Helper()
	out, _ := kubectl("-n", ns, "describe", kind, name)
	t.Logf("kubectl describe %s/%s:\n%s", kind, name, out)
	pods, _ := kubectl("-n", ns, "get", "pods", "-o", "wide")
	t.Logf("pods:\n%s", pods)
}

func result(o object, name string) (string, bool) {
	for _, r := range o.Status.Results {
		if r.Name == name {
			var s string
			if json.Unmarshal(r.Value, &s) == nil {
				return s, true
			}
			return string(r.Value), true
		}
	}
	return "", false
}

// registryDigest asks the registry itself for the digest of ref.
func registryDigest(ref string) (string, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return "", err
	}
	auth := authn.FromConfig(authn.AuthConfig{Username: cl.user, Password: cl.pw})
	d, err := remote.Head(r, remote.WithAuth(auth))
	if err != nil {
		return "", err
	}
	return d.Digest.String(), nil
}

// sourceVolume makes a PersistentVolume holding files and a claim bound to
// it. The volume is a hostPath under the cluster's state, so the test writes
// the context where the pod will find it, as a git-clone task would have.
func sourceVolume(t *testing.T, claim string, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(cl.state, "volumes", runID, claim)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, content := range files {
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pv := ns + "-" + runID + "-" + claim
	mustApply(t, fmt.Sprintf(`
apiVersion: v1
kind: PersistentVolume
metadata: {name: %[1]s}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  claimRef: {namespace: %[2]s, name: %[3]s}
  hostPath: {path: %[4]s, type: Directory}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: %[3]s}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: ""
  volumeName: %[1]s
  resources: {requests: {storage: 1Gi}}
`, pv, ns, claim, dir))
	t.Cleanup(func() {
		_, _ = kubectl("-n", ns, "delete", "pvc", claim, "--wait=false")
		_, _ = kubectl("delete", "pv", pv, "--wait=false")
	})
	return dir
}

// helloContext is a build context whose image prints line when run.
func helloContext(line string) map[string]string {
	return map[string]string{
		"Dockerfile": fmt.Sprintf("FROM %s\nRUN echo %q > /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n", cl.busybox, line),
	}
}

// runImage runs image in a plain pod with the image's own CMD and returns
// what it printed.
func runImage(t *testing.T, image string) string {
	t.Helper()
	pod := "run-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	if len(pod) > 60 {
		pod = pod[:60]
	}
	pod = strings.TrimRight(strings.ReplaceAll(pod, "_", "-"), "-")
	mustApply(t, fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  restartPolicy: Never
  securityContext: {seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: app
    image: %s
    securityContext: {allowPrivilegeEscalation: false}
`, pod, image))
	t.Cleanup(func() { _, _ = kubectl("-n", ns, "delete", "pod", pod, "--wait=false") })
	deadline := time.Now().Add(3 * time.Minute)
	for {
		o := get(t, "pod", pod)
		if o.Status.Phase == "Succeeded" {
			break
		}
		if o.Status.Phase == "Failed" || time.Now().After(deadline) {
			describe(t, "pod", pod)
			t.Fatalf("pod running %s: phase %q", image, o.Status.Phase)
		}
		time.Sleep(time.Second)
	}
	out, err := kubectl("-n", ns, "logs", pod)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// checkPushed asserts that digest is what the registry serves for url, and
// that the image runs and prints line.
func checkPushed(t *testing.T, url, digest, line string) {
	t.Helper()
	if !strings.HasPrefix(digest, "sha256:") || len(digest) != len("sha256:")+64 {
		t.Errorf("digest %q is not sha256:<64 hex>", digest)
	}
	got, err := registryDigest(url)
	if err != nil {
		t.Fatalf("registry lookup of %s: %v", url, err)
	}
	if got != digest {
		t.Errorf("registry has %s for %s, the run reported %s", got, url, digest)
	}
	if out := runImage(t, url+"@"+digest); out != line {
		t.Errorf("running the built image printed %q, want %q", out, line)
	}
}

// insecure are the flags for the cluster registry, which speaks plain HTTP
// on the node's address.
var insecure = []string{"--insecure", "--insecure-pull"}

func yamlList(items []string) string {
	b, _ := json.Marshal(items)
	return string(b)
}

func TestTektonPipelineRun(t *testing.T) {
	line := "hello from a Tekton pipeline " + runID
	sourceVolume(t, "pipeline-source", helloContext(line))
	image := fmt.Sprintf("%s/e2e/tekton-pipeline:%s", cl.registry, runID)
	mustApply(t, fmt.Sprintf(`
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: build}
spec:
  params: [{name: image, type: string}]
  workspaces: [{name: source}, {name: dockerconfig}]
  results:
  - {name: digest, value: $(tasks.build.results.IMAGE_DIGEST)}
  tasks:
  - name: build
    taskRef: {name: slipway-build}
    params:
    - {name: IMAGE, value: $(params.image)}
    - {name: EXTRA_ARGS, value: %s}
    workspaces:
    - {name: source, workspace: source}
    - {name: dockerconfig, workspace: dockerconfig}
---
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: build-%s}
spec:
  pipelineRef: {name: build}
  params: [{name: image, value: %q}]
  taskRunTemplate:
    podTemplate:
      securityContext: {seccompProfile: {type: RuntimeDefault}}
  workspaces:
  - {name: source, persistentVolumeClaim: {claimName: pipeline-source}}
  - {name: dockerconfig, secret: {secretName: regcred}}
`, yamlList(insecure), runID, image))
	start := time.Now()
	pr, ok := waitTekton(t, "pipelinerun", "build-"+runID, start)
	if len(pr.Status.ChildReferences) != 1 {
		describe(t, "pipelinerun", "build-"+runID)
		t.Fatalf("pipelinerun has %d TaskRuns, want 1", len(pr.Status.ChildReferences))
	}
	trName := pr.Status.ChildReferences[0].Name
	if !ok {
		describe(t, "taskrun", trName)
		t.Fatal("pipelinerun failed")
	}
	tr := get(t, "taskrun", trName)
	digest, _ := result(tr, "IMAGE_DIGEST")
	url, _ := result(tr, "IMAGE_URL")
	images, _ := result(tr, "IMAGES")
	if url != image {
		t.Errorf("IMAGE_URL = %q, want %q", url, image)
	}
	// IMAGES names each repository by digest, without the tag.
	if want := cl.registry + "/e2e/tekton-pipeline@" + digest; images != want {
		t.Errorf("IMAGES = %q, want %q", images, want)
	}
	// Chains' object type hint, which Tekton took as an object result.
	var artifact map[string]string
	if raw, _ := result(tr, "ARTIFACT_OUTPUTS"); json.Unmarshal([]byte(raw), &artifact) != nil ||
		artifact["uri"] != image || artifact["digest"] != digest || artifact["isBuildArtifact"] != "true" {
		t.Errorf("ARTIFACT_OUTPUTS = %v, want uri %s, digest %s, isBuildArtifact true", artifact, image, digest)
	}
	checkPushed(t, image, digest, line)
	checkPodSecurity(t, tr.Status.PodName)
}

// checkPodSecurity asserts the build ran as the issue demands: the pod's
// seccomp profile RuntimeDefault, nothing privileged, no added capabilities.
func checkPodSecurity(t *testing.T, pod string) {
	t.Helper()
	out, err := kubectl("-n", ns, "get", "pod", pod, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Spec struct {
			SecurityContext struct {
				SeccompProfile struct{ Type string } `json:"seccompProfile"`
			} `json:"securityContext"`
			InitContainers []container `json:"initContainers"`
			Containers     []container `json:"containers"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	if got := p.Spec.SecurityContext.SeccompProfile.Type; got != "RuntimeDefault" {
		t.Errorf("pod %s seccomp profile %q, want RuntimeDefault", pod, got)
	}
	for _, c := range append(p.Spec.InitContainers, p.Spec.Containers...) {
		sc := c.SecurityContext
		if sc == nil {
			continue
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container %s of pod %s is privileged", c.Name, pod)
		}
		if sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
			t.Errorf("container %s of pod %s adds capabilities %v", c.Name, pod, sc.Capabilities.Add)
		}
	}
}

type container struct {
	Name            string `json:"name"`
	SecurityContext *struct {
		Privileged   *bool `json:"privileged"`
		Capabilities *struct {
			Add []string `json:"add"`
		} `json:"capabilities"`
	} `json:"securityContext"`
}

func TestTektonStepActionInOwnTask(t *testing.T) {
	line := "hello from a StepAction " + runID
	sourceVolume(t, "stepaction-source", helloContext(line))
	image := fmt.Sprintf("%s/e2e/tekton-stepaction:%s", cl.registry, runID)
	mustApply(t, fmt.Sprintf(`
apiVersion: tekton.dev/v1
kind: Task
metadata: {name: own-build}
spec:
  params: [{name: IMAGE, type: string}]
  workspaces: [{name: source}, {name: dockerconfig, readOnly: true}]
  results:
  - {name: IMAGE_DIGEST, type: string, value: $(steps.build.results.IMAGE_DIGEST)}
  - {name: IMAGE_URL, type: string, value: $(steps.build.results.IMAGE_URL)}
  steps:
  - name: build
    ref: {name: slipway-build}
    params:
    - {name: IMAGE, value: $(params.IMAGE)}
    - {name: SOURCE_PATH, value: $(workspaces.source.path)}
    - {name: DOCKERCONFIG_PATH, value: $(workspaces.dockerconfig.path)}
    - {name: EXTRA_ARGS, value: %s}
---
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: stepaction-%s}
spec:
  taskRef: {name: own-build}
  params: [{name: IMAGE, value: %q}]
  podTemplate:
    securityContext: {seccompProfile: {type: RuntimeDefault}}
  workspaces:
  - {name: source, persistentVolumeClaim: {claimName: stepaction-source}}
  - {name: dockerconfig, secret: {secretName: regcred}}
`, yamlList(insecure), runID, image))
	name := "stepaction-" + runID
	tr, ok := waitTekton(t, "taskrun", name, time.Now())
	if !ok {
		describe(t, "taskrun", name)
		t.Fatal("taskrun failed")
	}
	digest, _ := result(tr, "IMAGE_DIGEST")
	if url, _ := result(tr, "IMAGE_URL"); url != image {
		t.Errorf("IMAGE_URL = %q, want %q", url, image)
	}
	checkPushed(t, image, digest, line)
}

// TestTektonWarmThenBuild fills a cache workspace with slipway-warm and
// builds with slipway-build from the same workspace, in one Pipeline.
func TestTektonWarmThenBuild(t *testing.T) {
	line := "hello after slipway-warm " + runID
	// One claim with two subPaths: under Tekton's default affinity assistant
	// a TaskRun may bind only one PersistentVolumeClaim.
	files := map[string]string{"cache/.keep": ""}
	for n, c := range helloContext(line) {
		files["source/"+n] = c
	}
	cacheDir := filepath.Join(sourceVolume(t, "warm-ws", files), "cache")
	image := fmt.Sprintf("%s/e2e/tekton-warm:%s", cl.registry, runID)
	mustApply(t, fmt.Sprintf(`
apiVersion: tekton.dev/v1
kind: Pipeline
metadata: {name: warm-build}
spec:
  params: [{name: image, type: string}, {name: base, type: string}]
  workspaces: [{name: source}, {name: cache}, {name: dockerconfig}]
  tasks:
  - name: warm
    taskRef: {name: slipway-warm}
    params:
    - {name: IMAGES, value: ["$(params.base)"]}
    - {name: EXTRA_ARGS, value: ["--insecure-pull"]}
    workspaces:
    - {name: cache, workspace: cache}
    - {name: dockerconfig, workspace: dockerconfig}
  - name: build
    runAfter: [warm]
    taskRef: {name: slipway-build}
    params:
    - {name: IMAGE, value: $(params.image)}
    - {name: EXTRA_ARGS, value: %s}
    workspaces:
    - {name: source, workspace: source}
    - {name: cache, workspace: cache}
    - {name: dockerconfig, workspace: dockerconfig}
---
apiVersion: tekton.dev/v1
kind: PipelineRun
metadata: {name: warm-build-%s}
spec:
  pipelineRef: {name: warm-build}
  params: [{name: image, value: %q}, {name: base, value: %q}]
  taskRunTemplate:
    podTemplate:
      securityContext: {seccompProfile: {type: RuntimeDefault}}
  workspaces:
  - {name: source, persistentVolumeClaim: {claimName: warm-ws}, subPath: source}
  - {name: cache, persistentVolumeClaim: {claimName: warm-ws}, subPath: cache}
  - {name: dockerconfig, secret: {secretName: regcred}}
`, yamlList(insecure), runID, image, cl.busybox))
	name := "warm-build-" + runID
	pr, ok := waitTekton(t, "pipelinerun", name, time.Now())
	if !ok {
		for _, c := range pr.Status.ChildReferences {
			describe(t, "taskrun", c.Name)
		}
		t.Fatal("pipelinerun failed")
	}
	var cached []string
	_ = filepath.Walk(cacheDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() && fi.Name() != ".keep" {
			cached = append(cached, strings.TrimPrefix(p, cacheDir))
		}
		return nil
	})
	if len(cached) == 0 {
		t.Errorf("slipway-warm left the cache workspace %s empty", cacheDir)
	} else {
		t.Logf("cache workspace after slipway-warm: %d files, e.g. %s", len(cached), cached[0])
	}
	var build object
	for _, c := range pr.Status.ChildReferences {
		if c.PipelineTaskName == "build" {
			build = get(t, "taskrun", c.Name)
		}
	}
	digest, _ := result(build, "IMAGE_DIGEST")
	checkPushed(t, image, digest, line)
}

// TestTektonBadDockerfile runs a Dockerfile with an error through the whole
// stack: the TaskRun fails, its log names the line, no result is written
// and nothing is pushed.
func TestTektonBadDockerfile(t *testing.T) {
	sourceVolume(t, "bad-source", map[string]string{
		"Dockerfile": fmt.Sprintf("FROM %s\nRUNN echo this instruction does not exist\n", cl.busybox),
	})
	image := fmt.Sprintf("%s/e2e/tekton-bad:%s", cl.registry, runID)
	name := "bad-" + runID
	mustApply(t, fmt.Sprintf(`
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: %s}
spec:
  taskRef: {name: slipway-build}
  params: [{name: IMAGE, value: %q}, {name: EXTRA_ARGS, value: %s}]
  podTemplate:
    securityContext: {seccompProfile: {type: RuntimeDefault}}
  workspaces:
  - {name: source, persistentVolumeClaim: {claimName: bad-source}}
  - {name: dockerconfig, secret: {secretName: regcred}}
`, name, image, yamlList(insecure)))
	tr, ok := waitTekton(t, "taskrun", name, time.Now())
	if ok {
		t.Fatal("the TaskRun of a Dockerfile with an unknown instruction succeeded")
	}
	if len(tr.Status.Results) != 0 {
		t.Errorf("a failed build wrote results: %+v", tr.Status.Results)
	}
	logs, err := kubectl("-n", ns, "logs", tr.Status.PodName, "-c", "step-build-and-push")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Dockerfile:2", "RUNN"} {
		if !strings.Contains(string(logs), want) {
			t.Errorf("the step log does not show %q:\n%s", want, logs)
		}
	}
	_, err = registryDigest(image)
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusNotFound {
		t.Errorf("registry lookup of %s after a failed build: %v, want 404 (nothing pushed)", image, err)
	}
}

// TestTektonCache is the second run with CACHE=true: it must show the RUN
// steps taken from the cache in its log.
//
// CACHE-PENDING: the registry layer cache (CACHE/CACHE_REPO) is being
// written in engine/ now; slipway-build still answers --cache with "not yet
// supported". Remove the skip below once it lands; the test is complete.
func TestTektonCache(t *testing.T) {
	line := "hello from the cache " + runID
	sourceVolume(t, "cache-source", helloContext(line))
	image := fmt.Sprintf("%s/e2e/tekton-cache:%s", cl.registry, runID)
	var times []time.Duration
	var last object
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("cache-%s-%d", runID, i)
		mustApply(t, fmt.Sprintf(`
apiVersion: tekton.dev/v1
kind: TaskRun
metadata: {name: %s}
spec:
  taskRef: {name: slipway-build}
  params:
  - {name: IMAGE, value: %q}
  - {name: CACHE, value: "true"}
  - {name: CACHE_REPO, value: %q}
  - {name: EXTRA_ARGS, value: %s}
  podTemplate:
    securityContext: {seccompProfile: {type: RuntimeDefault}}
  workspaces:
  - {name: source, persistentVolumeClaim: {claimName: cache-source}}
  - {name: dockerconfig, secret: {secretName: regcred}}
`, name, image, cl.registry+"/e2e/cache", yamlList(insecure)))
		start := time.Now()
		tr, ok := waitTekton(t, "taskrun", name, start)
		if !ok {
			describe(t, "taskrun", name)
			t.Fatalf("run %d with CACHE=true failed", i)
		}
		times = append(times, time.Since(start))
		last = tr
	}
	t.Logf("CACHE=true: first run %s, second run %s", times[0].Round(100*time.Millisecond), times[1].Round(100*time.Millisecond))
	logs, err := kubectl("-n", ns, "logs", last.Status.PodName, "-c", "step-build-and-push")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logs), "Using caching version of cmd") || strings.Contains(string(logs), "Unpacking rootfs") {
		t.Errorf("the second CACHE=true run did not build from the cache (cached steps, no unpacked root):\n%s", logs)
	}
	digest, _ := result(last, "IMAGE_DIGEST")
	checkPushed(t, image, digest, line)
}

func TestArgoTemplateRef(t *testing.T) {
	for _, tc := range []struct {
		name         string
		clusterScope bool
	}{
		{"workflowtemplate", false},
		{"clusterworkflowtemplate", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line := "hello from an Argo " + tc.name + " " + runID
			claim := "argo-" + tc.name
			sourceVolume(t, claim, helloContext(line))
			image := fmt.Sprintf("%s/e2e/argo-%s:%s", cl.registry, tc.name, runID)
			wf := fmt.Sprintf("argo-%s-%s", tc.name, runID)
			mustApply(t, fmt.Sprintf(`
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: %s}
spec:
  entrypoint: main
  securityContext: {seccompProfile: {type: RuntimeDefault}}
  templates:
  - name: main
    steps:
    - - name: build
        templateRef: {name: slipway-build, template: build, clusterScope: %t}
        arguments:
          parameters:
          - {name: image, value: %q}
          - {name: source-pvc, value: %s}
          - {name: docker-config-secret, value: regcred}
          - {name: extra-args, value: %q}
`, wf, tc.clusterScope, image, claim, strings.Join(insecure, "\n")))
			start := time.Now()
			o := waitArgo(t, wf, start)
			var digest, url string
			for _, n := range o.Status.Nodes {
				if n.DisplayName != "build" || n.Type != "Pod" {
					continue
				}
				for _, p := range n.Outputs.Parameters {
					switch p.Name {
					case "image-digest":
						digest = p.Value
					case "image-url":
						url = p.Value
					}
				}
			}
			if url != image {
				t.Errorf("image-url output = %q, want %q", url, image)
			}
			checkPushed(t, image, digest, line)
		})
	}
}

func waitArgo(t *testing.T, wf string, start time.Time) object {
	t.Helper()
	deadline := time.Now().Add(6 * time.Minute)
	for time.Now().Before(deadline) {
		o := get(t, "workflow", wf)
		switch o.Status.Phase {
		case "Succeeded":
			t.Logf("workflow/%s succeeded in %s", wf, time.Since(start).Round(100*time.Millisecond))
			return o
		case "Failed", "Error":
			describe(t, "workflow", wf)
			t.Fatalf("workflow/%s %s: %s", wf, o.Status.Phase, o.Status.Message)
		}
		time.Sleep(time.Second)
	}
	describe(t, "workflow", wf)
	t.Fatalf("workflow/%s did not finish in 6 minutes", wf)
	return object{}
}
