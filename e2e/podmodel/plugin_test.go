package podmodel

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"sigs.k8s.io/yaml"

	"github.com/slipway-build/slipway/e2e/harness"
)

// pluginEnv is the environment Drone and Woodpecker give a plugin step for
// the settings of the publish step in examples/<ci>/<file>: PLUGIN_ and the
// setting's name in capitals ('-' as '_'), lists comma-joined, maps as
// JSON, from_secret replaced by the secret. The example's registry host,
// registry.example.com, becomes host; nothing else is changed.
func pluginEnv(t *testing.T, ci, file, host string, secrets map[string]string) []string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "examples", ci, file))
	if err != nil {
		t.Fatal(err)
	}
	var pipeline struct {
		Steps []struct {
			Name     string         `json:"name"`
			Image    string         `json:"image"`
			Settings map[string]any `json:"settings"`
		} `json:"steps"`
	}
	if err := yaml.Unmarshal(b, &pipeline); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(pipeline.Steps, func(s struct {
		Name     string         `json:"name"`
		Image    string         `json:"image"`
		Settings map[string]any `json:"settings"`
	}) bool {
		return s.Name == "publish"
	})
	if i < 0 || len(pipeline.Steps[i].Settings) == 0 {
		t.Fatalf("examples/%s/%s has no publish step with settings", ci, file)
	}
	var env []string
	for k, v := range pipeline.Steps[i].Settings {
		var s string
		switch v := v.(type) {
		case string:
			s = v
		case []any:
			var items []string
			for _, item := range v {
				items = append(items, fmt.Sprint(item))
			}
			s = strings.Join(items, ",")
		case map[string]any:
			if ref, ok := v["from_secret"].(string); ok {
				s = secrets[ref]
				break
			}
			j, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			s = string(j)
		default:
			s = fmt.Sprint(v)
		}
		s = strings.ReplaceAll(s, "registry.example.com", host)
		env = append(env, "PLUGIN_"+strings.ToUpper(strings.ReplaceAll(k, "-", "_"))+"="+s)
	}
	return env
}

// TestDroneAndWoodpeckerPluginMode runs the executor image as each CI runs
// a plugin step: no command, no flags, the workspace mounted and the
// working directory, the settings of examples/drone and examples/woodpecker
// as PLUGIN_* variables and the CI's own variables for a build of the git
// tag v1.2.3. The registry asks for a password, which only the settings
// give.
func TestDroneAndWoodpeckerPluginMode(t *testing.T) {
	b := executorImages(t)
	secrets := map[string]string{"registry_username": user, "registry_password": password}
	for _, tt := range []struct {
		ci, file, workspace string
		ciEnv               []string
		tags                []string
	}{
		{"drone", ".drone.yml", "/drone/src",
			[]string{"DRONE=true", "CI=true", "DRONE_COMMIT_REF=refs/tags/v1.2.3", "DRONE_TAG=v1.2.3", "DRONE_REPO_BRANCH=main"},
			[]string{"1", "1.2", "1.2.3"}},
		{"woodpecker", ".woodpecker.yml", "/woodpecker/src/example.com/team/app",
			[]string{"CI=woodpecker", "CI_COMMIT_TAG=v1.2.3", "CI_COMMIT_REF=refs/tags/v1.2.3", "CI_REPO_DEFAULT_BRANCH=main"},
			[]string{"1", "1.2", "1.2.3", "latest"}},
	} {
		t.Run(tt.ci, func(t *testing.T) {
			reg := harness.StartRegistry(t, harness.WithHtpasswd(user, password))
			base := harness.Busybox(t, reg)
			project := writeContext(t, map[string]string{
				"Dockerfile":   "FROM " + base + "\nARG APP_ENV\nRUN echo \"$APP_ENV\" > /env.txt\nCOPY greeting.txt /\n",
				"greeting.txt": "hello from " + tt.ci + "\n",
			})
			args := []string{"-v", project + ":" + tt.workspace, "-w", tt.workspace}
			for _, e := range append(pluginEnv(t, tt.ci, tt.file, reg.Host, secrets), tt.ciEnv...) {
				args = append(args, "-e", e)
			}
			out, code := dockerRun(t, append(args, b.executor)...)
			if code != 0 {
				t.Fatalf("the plugin step exited %d:\n%s", code, out)
			}
			if !strings.Contains(out, "Plugin mode") || strings.Contains(out, password) {
				t.Errorf("the log does not say plugin mode, or shows the password:\n%s", out)
			}
			for _, tag := range tt.tags {
				fs := flatten(t, pulled(t, reg, reg.Host+"/team/app:"+tag))
				if f := fs["/env.txt"]; f == nil || string(f.data) != "production\n" {
					t.Errorf("tag %s: /env.txt (build_args) = %v", tag, f)
				}
				if f := fs["/greeting.txt"]; f == nil || string(f.data) != "hello from "+tt.ci+"\n" {
					t.Errorf("tag %s: /greeting.txt = %v", tag, f)
				}
				assertAbsent(t, fs, "/slipway", "/kaniko", "/drone", "/woodpecker")
			}
			repo, err := name.NewRepository(reg.Host+"/team/app/cache", name.Insecure)
			if err != nil {
				t.Fatal(err)
			}
			cached, err := remote.List(repo, remote.WithAuthFromKeychain(reg.Keychain()))
			if err != nil || len(cached) == 0 {
				t.Errorf("cache_repo %s holds %v (%v), want the RUN layer's entry", repo, cached, err)
			}
		})
	}
}
