package plugin

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

func TestFromEnv(t *testing.T) {
	const dir = "/drone/src"
	base := []string{"--context=" + dir, "--dockerfile=Dockerfile"}
	tests := []struct {
		name string
		env  map[string]string
		want []string // after base
	}{
		{"drone: repo with its registry, comma-separated tags",
			map[string]string{"PLUGIN_REPO": "registry.example.com/team/app", "PLUGIN_REGISTRY": "registry.example.com", "PLUGIN_TAGS": "1.2, latest"},
			[]string{"--destination=registry.example.com/team/app:1.2", "--destination=registry.example.com/team/app:latest"}},
		{"woodpecker: repo under the registry",
			map[string]string{"CI": "woodpecker", "PLUGIN_REPO": "team/app", "PLUGIN_REGISTRY": "https://registry.example.com:5000/"},
			[]string{"--destination=registry.example.com:5000/team/app:latest"}},
		{"docker hub default keeps the repo as given",
			map[string]string{"PLUGIN_REPO": "team/app", "PLUGIN_TAGS": "v1"},
			[]string{"--destination=team/app:v1"}},
		{"a repo naming another registry is kept",
			map[string]string{"PLUGIN_REPO": "localhost:5000/app", "PLUGIN_REGISTRY": "registry.example.com"},
			[]string{"--destination=localhost:5000/app:latest"}},
		{"no repo builds without pushing, and without the cache",
			map[string]string{"PLUGIN_CACHE": "true", "PLUGIN_BUILD_ARGS": "A=1,B=2"},
			[]string{"--no-push", "--build-arg=A=1", "--build-arg=B=2"}},
		{"dry_run",
			map[string]string{"PLUGIN_REPO": "r.example.com/app", "PLUGIN_DRY_RUN": "true"},
			[]string{"--no-push"}},
		{"build args as a map, from the environment, labels, target, platform, verbosity",
			map[string]string{"PLUGIN_REPO": "r.example.com/app", "PLUGIN_BUILD_ARGS": `{"B":"2","A":"x y"}`, "PLUGIN_BUILD_ARGS_FROM_ENV": "TOKEN", "PLUGIN_CUSTOM_LABELS": "a=b", "PLUGIN_TARGET": "final", "PLUGIN_PLATFORM": "linux/arm64", "PLUGIN_LOG_LEVEL": "debug"},
			[]string{"--destination=r.example.com/app:latest", "--build-arg=A=x y", "--build-arg=B=2", "--build-arg=TOKEN", "--label=a=b", "--target=final", "--custom-platform=linux/arm64", "--verbosity=debug"}},
		{"woodpecker cache: cache_repo under the registry, ttl as given",
			map[string]string{"CI": "woodpecker", "PLUGIN_REPO": "app", "PLUGIN_REGISTRY": "r.example.com", "PLUGIN_CACHE": "true", "PLUGIN_CACHE_REPO": "app/cache", "PLUGIN_CACHE_TTL": "6h"},
			[]string{"--destination=r.example.com/app:latest", "--cache=true", "--cache-repo=r.example.com/app/cache", "--cache-ttl=6h"}},
		{"drone enable_cache, ttl in hours",
			map[string]string{"PLUGIN_REPO": "r.example.com/app", "PLUGIN_ENABLE_CACHE": "true", "PLUGIN_CACHE_REPO": "r.example.com/cache", "PLUGIN_CACHE_TTL": "12"},
			[]string{"--destination=r.example.com/app:latest", "--cache=true", "--cache-repo=r.example.com/cache", "--cache-ttl=12h"}},
		{"insecure and skip_tls_verify cover the registry's pulls too",
			map[string]string{"PLUGIN_REPO": "r.example.com/app", "PLUGIN_REGISTRY": "r.example.com", "PLUGIN_INSECURE": "true", "PLUGIN_SKIP_TLS_VERIFY": "true"},
			[]string{"--destination=r.example.com/app:latest", "--insecure", "--insecure-registry=r.example.com", "--skip-tls-verify", "--skip-tls-verify-registry=r.example.com"}},
		{"mirrors under each plugin's name",
			map[string]string{"PLUGIN_MIRROR": "https://m1.example.com", "PLUGIN_MIRRORS": "m2.example.com,m3.example.com", "PLUGIN_REGISTRY_MIRRORS": "m4.example.com"},
			[]string{"--no-push", "--registry-mirror=https://m1.example.com", "--registry-mirror=m2.example.com", "--registry-mirror=m3.example.com", "--registry-mirror=m4.example.com"}},
		{"drone auto_tag on a semver tag",
			map[string]string{"PLUGIN_REPO": "r.example.com/app", "PLUGIN_AUTO_TAG": "true", "DRONE_COMMIT_REF": "refs/tags/v1.2.3"},
			[]string{"--destination=r.example.com/app:1", "--destination=r.example.com/app:1.2", "--destination=r.example.com/app:1.2.3"}},
		{"drone auto_tag on a 0.x tag has no major",
			map[string]string{"PLUGIN_REPO": "r.example.com/app", "PLUGIN_AUTO_TAG": "true", "DRONE_TAG": "0.4.1"},
			[]string{"--destination=r.example.com/app:0.4", "--destination=r.example.com/app:0.4.1"}},
		{"drone auto_tag on a pre-release, with a suffix",
			map[string]string{"PLUGIN_REPO": "r.example.com/app", "PLUGIN_AUTO_TAG": "true", "PLUGIN_AUTO_TAG_SUFFIX": "alpine", "DRONE_COMMIT_REF": "refs/tags/v2.0.0-rc.1"},
			[]string{"--destination=r.example.com/app:2.0.0-rc.1-alpine"}},
		{"drone auto_tag on the default branch",
			map[string]string{"PLUGIN_REPO": "r.example.com/app", "PLUGIN_AUTO_TAG": "true", "PLUGIN_TAGS": "latest", "DRONE_COMMIT_REF": "refs/heads/main", "DRONE_REPO_BRANCH": "main"},
			[]string{"--destination=r.example.com/app:latest"}},
		{"woodpecker auto_tag",
			map[string]string{"CI": "woodpecker", "PLUGIN_REPO": "app", "PLUGIN_REGISTRY": "r.example.com", "PLUGIN_AUTO_TAG": "true", "CI_COMMIT_TAG": "v1.2"},
			[]string{"--destination=r.example.com/app:1", "--destination=r.example.com/app:1.2", "--destination=r.example.com/app:1.2.0", "--destination=r.example.com/app:latest"}},
		{"woodpecker auto_tag on a non-numeric tag",
			map[string]string{"CI": "woodpecker", "PLUGIN_REPO": "app", "PLUGIN_REGISTRY": "r.example.com", "PLUGIN_AUTO_TAG": "true", "CI_COMMIT_TAG": "v1.2.3-rc1"},
			[]string{"--destination=r.example.com/app:1.2.3-rc1", "--destination=r.example.com/app:latest"}},
		{"woodpecker auto_tag without a tag",
			map[string]string{"CI": "woodpecker", "PLUGIN_REPO": "app", "PLUGIN_REGISTRY": "r.example.com", "PLUGIN_AUTO_TAG": "true"},
			[]string{"--destination=r.example.com/app:latest"}},
		{"woodpecker tags override auto_tag",
			map[string]string{"CI": "woodpecker", "PLUGIN_REPO": "app", "PLUGIN_REGISTRY": "r.example.com", "PLUGIN_AUTO_TAG": "true", "PLUGIN_TAGS": "dev", "CI_COMMIT_TAG": "v1.2.3"},
			[]string{"--destination=r.example.com/app:dev"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := FromEnv(tt.env, dir)
			if err != nil {
				t.Fatal(err)
			}
			if want := append(slices.Clip(base), tt.want...); !slices.Equal(p.Args, want) {
				t.Errorf("args:\n got %q\nwant %q", p.Args, want)
			}
			if p.Credentials != nil {
				t.Errorf("credentials without username or password: %+v", p.Credentials)
			}
		})
	}
}

func TestFromEnvRefuses(t *testing.T) {
	tests := []struct {
		name, want string
		env        map[string]string
	}{
		{"drone auto_tag with tags", "cannot be combined", map[string]string{"PLUGIN_REPO": "r.example.com/app", "PLUGIN_AUTO_TAG": "true", "PLUGIN_TAGS": "dev"}},
		{"drone auto_tag on another branch", "default branch", map[string]string{"PLUGIN_REPO": "r.example.com/app", "PLUGIN_AUTO_TAG": "true", "DRONE_COMMIT_REF": "refs/heads/feature", "DRONE_REPO_BRANCH": "main"}},
		{"drone auto_tag on a tag that is no version", "not a semantic version", map[string]string{"PLUGIN_REPO": "r.example.com/app", "PLUGIN_AUTO_TAG": "true", "DRONE_COMMIT_REF": "refs/tags/release-7"}},
		{"a boolean that is not", `PLUGIN_CACHE="yes"`, map[string]string{"PLUGIN_CACHE": "yes"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromEnv(tt.env, t.TempDir())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestTagsFileAndPaths(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "docker"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{".tags": "1.0, 1\nlatest\n", "docker/Dockerfile": "FROM scratch\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := FromEnv(map[string]string{"PLUGIN_REPO": "r.example.com/app", "PLUGIN_CONTEXT": "src", "PLUGIN_DOCKERFILE": "docker/Dockerfile"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"--context=" + filepath.Join(dir, "src"), "--dockerfile=" + filepath.Join(dir, "docker/Dockerfile"),
		"--destination=r.example.com/app:1.0", "--destination=r.example.com/app:1", "--destination=r.example.com/app:latest",
	}
	if !slices.Equal(p.Args, want) {
		t.Errorf("args:\n got %q\nwant %q", p.Args, want)
	}
	// A Dockerfile not beside the working directory is left for
	// slipway-build to find in the context.
	p, err = FromEnv(map[string]string{"PLUGIN_DOCKERFILE": "build/Dockerfile"}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if p.Args[1] != "--dockerfile=build/Dockerfile" {
		t.Errorf("got %q", p.Args[1])
	}
}

func TestCredentialsServeTheirRegistryOnly(t *testing.T) {
	for _, tt := range []struct {
		registry, serves string
		not              []string
	}{
		{"registry.example.com:5000", "registry.example.com:5000", []string{"registry.example.com", "index.docker.io"}},
		{"", "index.docker.io", []string{"registry.example.com"}},
		{"https://index.docker.io/v1/", "index.docker.io", []string{"ghcr.io"}},
	} {
		p, err := FromEnv(map[string]string{"PLUGIN_REGISTRY": tt.registry, "PLUGIN_USERNAME": "u", "PLUGIN_PASSWORD": "secret"}, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(p.Args, func(a string) bool { return strings.Contains(a, "secret") }) {
			t.Errorf("the password is in the arguments: %q", p.Args)
		}
		c := p.Credentials
		if c == nil || !c.Serves(tt.serves) {
			t.Fatalf("registry %q: credentials %+v do not serve %s", tt.registry, c, tt.serves)
		}
		for _, other := range tt.not {
			if c.Serves(other) {
				t.Errorf("registry %q: credentials serve %s too", tt.registry, other)
			}
		}
		reg, _ := name.NewRegistry(tt.serves)
		a, err := c.Resolve(reg)
		if err != nil {
			t.Fatal(err)
		}
		if cfg, _ := a.Authorization(); *cfg != (authn.AuthConfig{Username: "u", Password: "secret"}) {
			t.Errorf("got %+v", cfg)
		}
	}
}

func TestIgnoredSettings(t *testing.T) {
	p, err := FromEnv(map[string]string{"PLUGIN_REPO": "r.example.com/app", "PLUGIN_JSON_KEY": "{}", "PLUGIN_SNAPSHOT_MODE": "redo", "DRONE_BUILD_NUMBER": "3"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"json_key", "snapshot_mode"}; !slices.Equal(p.Ignored, want) {
		t.Errorf("ignored: got %q, want %q", p.Ignored, want)
	}
	if !Active(map[string]string{"PLUGIN_REPO": "x"}) || Active(map[string]string{"DRONE": "true"}) {
		t.Error("Active is wrong")
	}
}
