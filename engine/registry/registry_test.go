package registry_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-build/slipway/e2e/harness"
	"github.com/slipway-build/slipway/engine/registry"
)

var amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}

// isolate points every credential location at an empty directory, so that
// the machine's own docker config cannot change a result.
func isolate(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv("HOME", t.TempDir())
}

func mustTag(t *testing.T, s string) name.Tag {
	t.Helper()
	tag, err := name.NewTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tag
}

// roundTrip pushes the busybox image to host/repo and pulls it back.
func roundTrip(t *testing.T, c *registry.Client, host, repo string) {
	t.Helper()
	ctx := context.Background()
	img := harness.BusyboxImage(t)
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	ref := mustTag(t, host+"/"+repo+":v1")
	if err := c.CheckPushPermission(ctx, ref); err != nil {
		t.Fatalf("CheckPushPermission: %v", err)
	}
	got, err := c.Push(ctx, img, ref)
	if err != nil {
		t.Fatalf("Push: %v", err)
	}
	if got != want {
		t.Errorf("Push digest = %s, want %s", got, want)
	}
	pulled, err := c.Pull(ctx, ref.String(), amd64)
	if err != nil {
		t.Fatalf("Pull: %v", err)
	}
	if d, err := pulled.Digest(); err != nil || d != want {
		t.Errorf("pulled digest = %s, %v; want %s", d, err, want)
	}
	// The layer itself, not only the manifest, must come back intact.
	layers, err := pulled.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers = %v, %v", layers, err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
}

func TestPlainHTTP(t *testing.T) {
	isolate(t)
	reg := harness.StartRegistry(t)
	roundTrip(t, registry.New(registry.Options{InsecureRegistries: []string{reg.Host}}), reg.Host, "plain/app")
	roundTrip(t, registry.New(registry.Options{Insecure: true, InsecurePull: true}), reg.Host, "plain/app2")
}

func TestHtpasswdFromDockerConfig(t *testing.T) {
	isolate(t)
	reg := harness.StartRegistry(t, harness.WithHtpasswd("ci", "correct horse"))
	t.Setenv("DOCKER_CONFIG", reg.DockerConfigDir(t))
	roundTrip(t, registry.New(registry.Options{InsecureRegistries: []string{reg.Host}}), reg.Host, "auth/app")
}

func TestRefusedCredentials(t *testing.T) {
	isolate(t)
	reg := harness.StartRegistry(t, harness.WithHtpasswd("ci", "correct horse"))
	ctx := context.Background()
	ref := mustTag(t, reg.Host+"/auth/app:v1")

	tests := []struct {
		name       string
		configDir  string
		wantInHint string
	}{
		{"wrong password", harness.DockerConfigDir(t, reg.Host, "ci", "wrong"), "config.json"},
		{"no credentials", t.TempDir(), "no docker config.json found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DOCKER_CONFIG", tt.configDir)
			c := registry.New(registry.Options{InsecureRegistries: []string{reg.Host}})
			for op, err := range map[string]error{
				"CheckPushPermission": c.CheckPushPermission(ctx, ref),
				"Push":                second(c.Push(ctx, harness.BusyboxImage(t), ref)),
			} {
				var rerr *registry.Error
				if !errors.As(err, &rerr) {
					t.Fatalf("%s: err = %v, want a *registry.Error", op, err)
				}
				msg := err.Error()
				t.Logf("%s error: %s", op, msg)
				for _, want := range []string{reg.Host + "/auth/app", "UNAUTHORIZED", "check the credentials for " + reg.Host, tt.wantInHint} {
					if tt.wantInHint == "no docker config.json found" && want == "check the credentials for "+reg.Host {
						want = "add credentials for " + reg.Host
					}
					if !strings.Contains(msg, want) {
						t.Errorf("%s error %q does not contain %q", op, msg, want)
					}
				}
				if strings.Contains(msg, "wrong") || strings.Contains(msg, "correct horse") {
					t.Errorf("%s error %q leaks the password", op, msg)
				}
			}
		})
	}
}

func TestMalformedDockerConfig(t *testing.T) {
	isolate(t)
	reg := harness.StartRegistry(t)
	dir := t.TempDir()
	path := harness.WriteFile(t, filepath.Join(dir, "config.json"), `{"auths": {`)
	t.Setenv("DOCKER_CONFIG", dir)
	c := registry.New(registry.Options{InsecureRegistries: []string{reg.Host}})
	_, err := c.Push(context.Background(), harness.BusyboxImage(t), mustTag(t, reg.Host+"/app:v1"))
	t.Logf("error: %v", err)
	if err == nil || !strings.Contains(err.Error(), "parsing docker config "+path) {
		t.Errorf("Push = %v, want an error naming %s", err, path)
	}
}

func second[T any](_ T, err error) error { return err }

func TestTLS(t *testing.T) {
	isolate(t)
	reg := harness.StartRegistry(t, harness.WithTLS())
	t.Run("registry certificate", func(t *testing.T) {
		c := registry.New(registry.Options{RegistryCertificates: map[string]string{reg.Host: reg.CAFile}})
		roundTrip(t, c, reg.Host, "tls/app")
	})
	t.Run("skip verify for the registry", func(t *testing.T) {
		c := registry.New(registry.Options{SkipTLSVerifyRegistries: []string{reg.Host}})
		roundTrip(t, c, reg.Host, "tls/skip")
	})
	t.Run("untrusted", func(t *testing.T) {
		c := registry.New(registry.Options{RetryDelay: 1})
		_, err := c.Push(context.Background(), harness.BusyboxImage(t), mustTag(t, reg.Host+"/tls/untrusted:v1"))
		if err == nil {
			t.Fatal("push to a registry with an unknown CA succeeded")
		}
		t.Logf("error: %v", err)
		for _, want := range []string{"pushing to " + reg.Host + "/tls/untrusted", "--registry-certificate " + reg.Host + "="} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		}
	})
	t.Run("unreadable certificate", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope.pem")
		opts := registry.Options{RegistryCertificates: map[string]string{reg.Host: missing}}
		if err := opts.Validate(); err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("Validate = %v, want an error naming %s", err, missing)
		}
		_, err := registry.New(opts).Pull(context.Background(), reg.Host+"/tls/app:v1", amd64)
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Errorf("Pull = %v, want an error naming %s", err, missing)
		}
	})
}

func TestPullErrors(t *testing.T) {
	isolate(t)
	reg := harness.StartRegistry(t)
	base := harness.Busybox(t, reg)
	c := registry.New(registry.Options{InsecureRegistries: []string{reg.Host}})
	repo := strings.TrimSuffix(base, ":latest")
	tests := []struct {
		ref  string
		want string
	}{
		{repo + ":nope", "pulling " + repo + ":nope from " + reg.Host + ": manifest unknown: check the image name and tag"},
		{reg.Host + "/no/such/repo:v1", "pulling " + reg.Host + "/no/such/repo:v1 from " + reg.Host + ": "},
		{"UPPER/case", "invalid image reference"},
		{closedHost(t) + "/app:v1", "connection refused: check that the registry"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			_, err := c.Pull(context.Background(), tt.ref, amd64)
			t.Logf("error: %v", err)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Pull(%s) = %v, want an error containing %q", tt.ref, err, tt.want)
			}
		})
	}
}

// closedHost is a loopback address where nothing listens.
func closedHost(t *testing.T) string {
	return fmt.Sprintf("127.0.0.1:%d", harness.FreePort(t))
}

func TestMirrorsAndRegistryMaps(t *testing.T) {
	isolate(t)
	mirror := harness.StartRegistry(t)
	empty := harness.StartRegistry(t)
	ctx := context.Background()
	push := registry.New(registry.Options{Insecure: true})
	img := harness.BusyboxImage(t)
	want, _ := img.Digest()
	for _, repo := range []string{"library/busybox:1.36", "hub/library/busybox:1.36", "slipway-test/busybox:1.36"} {
		if _, err := push.Push(ctx, img, mustTag(t, mirror.Host+"/"+repo)); err != nil {
			t.Fatal(err)
		}
	}
	insecure := []string{mirror.Host, empty.Host}
	tests := []struct {
		name    string
		ref     string
		opts    registry.Options
		wantErr string
	}{
		{name: "mirror", ref: "busybox:1.36", opts: registry.Options{Mirrors: []string{mirror.Host}}},
		{name: "mirror with prefix", ref: "docker.io/library/busybox:1.36", opts: registry.Options{Mirrors: []string{mirror.Host + "/hub"}}},
		{name: "first mirror lacks it", ref: "busybox:1.36", opts: registry.Options{Mirrors: []string{empty.Host, mirror.Host}}},
		{name: "registry map", ref: "registry.invalid/slipway-test/busybox:1.36",
			opts: registry.Options{RegistryMaps: map[string][]string{"registry.invalid": {mirror.Host}}}},
		{name: "no fallback", ref: "busybox:1.36", opts: registry.Options{Mirrors: []string{empty.Host}},
			wantErr: "not found on any configured mirror"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.InsecureRegistries = insecure
			// Never fall back to Docker Hub: tests reach only loopback.
			tt.opts.SkipDefaultRegistryFallback = true
			got, err := registry.New(tt.opts).Pull(ctx, tt.ref, amd64)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), tt.ref) {
					t.Fatalf("Pull = %v, want an error naming %s and containing %q", err, tt.ref, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := got.Digest(); d != want {
				t.Errorf("digest = %s, want %s", d, want)
			}
		})
	}
}

func TestKeychainLocations(t *testing.T) {
	reg := harness.StartRegistry(t, harness.WithHtpasswd("ci", "pw"))
	cfgDir := reg.DockerConfigDir(t)
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".docker"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(cfgDir, "config.json"))
	harness.WriteFile(t, filepath.Join(home, ".docker", "config.json"), string(data))
	// A directory mounted from a `kubectl create secret docker-registry`
	// Secret holds the key .dockerconfigjson instead of config.json.
	secretDir := t.TempDir()
	harness.WriteFile(t, filepath.Join(secretDir, ".dockerconfigjson"), string(data))

	tests := []struct {
		name         string
		dockerConfig string
		home         string
		wantPath     string
	}{
		{"DOCKER_CONFIG directory", cfgDir, t.TempDir(), filepath.Join(cfgDir, "config.json")},
		{"DOCKER_CONFIG file", filepath.Join(cfgDir, "config.json"), t.TempDir(), filepath.Join(cfgDir, "config.json")},
		{"home fallback", filepath.Join(t.TempDir(), "missing"), home, filepath.Join(home, ".docker", "config.json")},
		{"Secret key .dockerconfigjson", secretDir, t.TempDir(), filepath.Join(secretDir, ".dockerconfigjson")},
	}
	if _, err := os.Stat("/kaniko/.docker/config.json"); err == nil {
		t.Skip("/kaniko/.docker/config.json exists on this machine and would take precedence over ~/.docker")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("DOCKER_CONFIG", tt.dockerConfig)
			t.Setenv("HOME", tt.home)
			if got := registry.DockerConfigPath(); got != tt.wantPath {
				t.Errorf("DockerConfigPath = %q, want %q", got, tt.wantPath)
			}
			roundTrip(t, registry.New(registry.Options{InsecureRegistries: []string{reg.Host}}), reg.Host, "keychain/app")
		})
	}
}

// TestCredentialHelper checks that credHelpers in config.json are run, as
// docker does, with a helper that answers for this registry only.
func TestCredentialHelper(t *testing.T) {
	isolate(t)
	reg := harness.StartRegistry(t, harness.WithHtpasswd("helper-user", "helper-pass"))
	bin := t.TempDir()
	harness.WriteFile(t, filepath.Join(bin, "docker-credential-slipwaytest"), `#!/bin/sh
read server
if [ "$1" = get ] && [ "$server" = "`+reg.Host+`" ]; then
  echo '{"ServerURL":"`+reg.Host+`","Username":"helper-user","Secret":"helper-pass"}'
  exit 0
fi
echo "credentials not found in native keychain"
exit 1
`)
	if err := os.Chmod(filepath.Join(bin, "docker-credential-slipwaytest"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	cfg := t.TempDir()
	harness.WriteFile(t, filepath.Join(cfg, "config.json"), `{"credHelpers":{"`+reg.Host+`":"slipwaytest"}}`)
	t.Setenv("DOCKER_CONFIG", cfg)
	roundTrip(t, registry.New(registry.Options{InsecureRegistries: []string{reg.Host}}), reg.Host, "helper/app")
}
