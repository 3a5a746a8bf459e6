//go:build cluster

package cluster

import (
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// serveGit commits files to a repository team/app.git on branch main and
// serves it with git's smart-HTTP backend on the node address, where pods
// reach it; with a user, only to that user and password. It returns
// host:port.
func serveGit(t *testing.T, files map[string]string, user, password string) string {
	t.Helper()
	root := t.TempDir()
	work := filepath.Join(root, "work")
	git := func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+root,
			"GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.com", "GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, content := range files {
		if err := os.WriteFile(filepath.Join(work, n), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	git(work, "init", "-q", "-b", "main")
	git(work, "add", ".")
	git(work, "commit", "-q", "-m", "app")
	git(root, "clone", "-q", "--bare", work, filepath.Join(root, "team", "app.git"))

	backend := &cgi.Handler{
		Path:   filepath.Join(git(root, "--exec-path"), "git-http-backend"),
		Env:    []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1"},
		Stderr: io.Discard,
	}
	node, _, _ := strings.Cut(cl.registry, ":")
	ln, err := net.Listen("tcp", node+":0")
	if err != nil {
		t.Fatal(err)
	}
	var handler http.Handler = backend
	if user != "" {
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "authentication required", http.StatusUnauthorized)
				return
			}
			backend.ServeHTTP(w, r)
		})
	}
	srv := &http.Server{Handler: handler}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// TestKubernetesJob runs examples/kubernetes/job.yaml, the README's
// plain-Job quick start, changing only the image (the one under test), the
// two hosts (a git server started here, and the cluster's registry),
// GIT_PULL_METHOD=http and the plain-HTTP flags that both need. The Secret
// is the test namespace's regcred, made by `kubectl create secret
// docker-registry`, mounted with items as the example says.
func TestKubernetesJob(t *testing.T) {
	// make e2e-cluster runs the test binary from the repository's root.
	example := filepath.Join("examples", "kubernetes", "job.yaml")
	if _, err := os.Stat(example); err != nil {
		_, file, _, _ := runtime.Caller(0)
		example = filepath.Join(filepath.Dir(file), "..", "..", example)
	}
	b, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	line := "hello from a plain Job " + runID
	gitHost := serveGit(t, map[string]string{"Dockerfile": helloContext(line)["Dockerfile"]}, "", "")

	var job batchv1.Job
	if err := yaml.UnmarshalStrict(b, &job); err != nil {
		t.Fatal(err)
	}
	job.Name += "-" + runID
	c := &job.Spec.Template.Spec.Containers[0]
	c.Image = cl.executor
	for i, a := range c.Args {
		a = strings.ReplaceAll(a, "git.example.com", gitHost)
		c.Args[i] = strings.ReplaceAll(a, "registry.example.com", cl.registry+"/e2e/job-"+runID)
	}
	c.Args = append(c.Args, insecure...)
	c.Env = append(c.Env, corev1.EnvVar{Name: "GIT_PULL_METHOD", Value: "http"})
	out, err := yaml.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, string(out))
	t.Cleanup(func() { _, _ = kubectl("-n", ns, "delete", "job", job.Name, "--wait=false") })

	start := time.Now()
	deadline := start.Add(6 * time.Minute)
	for {
		o := get(t, "job", job.Name)
		done := ""
		for _, cond := range o.Status.Conditions {
			if (cond.Type == "Complete" || cond.Type == "Failed") && cond.Status == "True" {
				done = cond.Type
			}
		}
		if done == "Complete" {
			t.Logf("job/%s completed in %s", job.Name, time.Since(start).Round(100*time.Millisecond))
			break
		}
		if done == "Failed" || time.Now().After(deadline) {
			describe(t, "job", job.Name)
			logs, _ := kubectl("-n", ns, "logs", "job/"+job.Name)
			t.Fatalf("job/%s did not complete (%s):\n%s", job.Name, done, logs)
		}
		time.Sleep(time.Second)
	}

	image := cl.registry + "/e2e/job-" + runID + "/team/app:latest"
	digest, err := registryDigest(image)
	if err != nil {
		t.Fatalf("registry lookup of %s: %v", image, err)
	}
	checkPushed(t, image, digest, line)

	repo, err := name.NewRepository(cl.registry+"/e2e/job-"+runID+"/team/app/cache", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	tags, err := remote.List(repo, remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: cl.user, Password: cl.pw})))
	if err != nil || len(tags) == 0 {
		t.Errorf("--cache-repo %s holds %v (%v), want the RUN layer's entry", repo, tags, err)
	}
}

// TestArgoBuildGitWithCredentialsAndCache runs the build-git template
// against a git server that asks for a password, which comes from a
// kubernetes.io/basic-auth Secret named by git-credentials-secret, with a
// claim as cache-pvc. TestArgoTemplateRef runs without either.
func TestArgoBuildGitWithCredentialsAndCache(t *testing.T) {
	line := "hello from Argo build-git " + runID
	gitHost := serveGit(t, map[string]string{"Dockerfile": helloContext(line)["Dockerfile"]}, "ci-bot", "git-s3cret")
	if _, err := kubectl("-n", ns, "create", "secret", "generic", "gitcred", "--type=kubernetes.io/basic-auth",
		"--from-literal=username=ci-bot", "--from-literal=password=git-s3cret"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = kubectl("-n", ns, "delete", "secret", "gitcred", "--wait=false") })
	cache := sourceVolume(t, "argo-cache", map[string]string{".keep": ""})
	image := cl.registry + "/e2e/argo-build-git:" + runID
	wf := "argo-build-git-" + runID
	mustApply(t, `
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: `+wf+`}
spec:
  entrypoint: main
  securityContext: {seccompProfile: {type: RuntimeDefault}}
  templates:
  - name: main
    steps:
    - - name: build
        templateRef: {name: slipway-build, template: build-git}
        arguments:
          parameters:
          - {name: image, value: "`+image+`"}
          - {name: git-repo, value: "http://`+gitHost+`/team/app.git"}
          - {name: git-revision, value: main}
          - {name: git-credentials-secret, value: gitcred}
          - {name: cache-pvc, value: argo-cache}
          - {name: docker-config-secret, value: regcred}
          - {name: extra-args, value: "`+strings.Join(insecure, `\n`)+`"}
`)
	o := waitArgo(t, wf, time.Now())
	var digest string
	for _, n := range o.Status.Nodes {
		for _, p := range n.Outputs.Parameters {
			if n.DisplayName == "build" && p.Name == "image-digest" {
				digest = p.Value
			}
		}
	}
	checkPushed(t, image, digest, line)
	ents, err := os.ReadDir(cache)
	if err != nil || len(ents) < 2 {
		t.Errorf("the cache claim holds %v (%v), want what the build kept besides .keep", ents, err)
	}
}
