package registry_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/slipway-build/slipway/e2e/harness"
	"github.com/slipway-build/slipway/engine/registry"
)

func clearAmbient(t *testing.T) {
	isolate(t)
	for _, v := range []string{"DOCKER_AUTH_CONFIG", "CI_REGISTRY", "CI_REGISTRY_USER", "CI_REGISTRY_PASSWORD", "CI_JOB_TOKEN"} {
		t.Setenv(v, "")
	}
}

func authConfig(host, user, pass string) string {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	return fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth)
}

// The environment's credentials, as kaniko reads them, against a registry
// with basic auth: each source serves its own registry only.
func TestAmbientEnvironmentCredentials(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the distribution registry; run without -short")
	}
	const user, pass = "ci-user", "ci-secret-pass"
	reg := harness.StartRegistry(t, harness.WithHtpasswd(user, pass))
	ref := harness.Busybox(t, reg)
	tokenReg := harness.StartRegistry(t, harness.WithHtpasswd("gitlab-ci-token", "job-token-123"))
	tokenRef := harness.Busybox(t, tokenReg)

	for _, tt := range []struct {
		name    string
		env     map[string]string
		ref     string
		enabled []string
		ok      bool
		source  string
	}{
		{name: "nothing", ref: ref},
		{name: "DOCKER_AUTH_CONFIG", env: map[string]string{"DOCKER_AUTH_CONFIG": authConfig(reg.Host, user, pass)}, ref: ref, ok: true, source: "env"},
		{name: "DOCKER_AUTH_CONFIG for another registry", env: map[string]string{"DOCKER_AUTH_CONFIG": authConfig("registry.example", user, pass)}, ref: ref},
		{name: "GitLab user and password", env: map[string]string{"CI_REGISTRY": reg.Host, "CI_REGISTRY_USER": user, "CI_REGISTRY_PASSWORD": pass}, ref: ref, ok: true, source: "gitlab"},
		{name: "GitLab job token", env: map[string]string{"CI_REGISTRY": tokenReg.Host, "CI_JOB_TOKEN": "job-token-123"}, ref: tokenRef, ok: true, source: "gitlab"},
		{name: "GitLab variables name another registry", env: map[string]string{"CI_REGISTRY": tokenReg.Host, "CI_REGISTRY_USER": user, "CI_REGISTRY_PASSWORD": pass}, ref: ref},
		{name: "--credential-helpers without gitlab", env: map[string]string{"CI_REGISTRY": reg.Host, "CI_REGISTRY_USER": user, "CI_REGISTRY_PASSWORD": pass}, ref: ref, enabled: []string{"env"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clearAmbient(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var logs bytes.Buffer
			c := registry.New(registry.Options{
				InsecureRegistries: []string{reg.Host, tokenReg.Host},
				KanikoDir:          t.TempDir(),
				CredentialHelpers:  tt.enabled,
				Log:                slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			})
			_, err := c.Pull(context.Background(), tt.ref, amd64)
			if tt.ok != (err == nil) {
				t.Fatalf("Pull = %v, want success %v", err, tt.ok)
			}
			if tt.source != "" && !strings.Contains(logs.String(), "from "+tt.source) {
				t.Errorf("the debug log does not name the source %s:\n%s", tt.source, logs.String())
			}
			for _, secret := range []string{pass, "job-token-123"} {
				if strings.Contains(logs.String(), secret) {
					t.Errorf("the log holds a secret:\n%s", logs.String())
				}
			}
		})
	}
}

// A source never sends its token to a registry it does not serve: a
// registry that asks for credentials sees none.
func TestAmbientCredentialsStayWithTheirRegistry(t *testing.T) {
	clearAmbient(t)
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("WWW-Authenticate", `Basic realm="elsewhere"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	t.Setenv("CI_REGISTRY", "registry.gitlab.example")
	t.Setenv("CI_REGISTRY_USER", "u")
	t.Setenv("CI_REGISTRY_PASSWORD", "gitlab-secret")
	t.Setenv("DOCKER_AUTH_CONFIG", authConfig("registry.example", "u", "env-secret"))
	c := registry.New(registry.Options{InsecureRegistries: []string{host}, KanikoDir: t.TempDir()})
	if _, err := c.Pull(context.Background(), host+"/team/app:1", amd64); err == nil {
		t.Fatal("pull from a registry refusing anonymous access succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("the registry saw no request")
	}
	for _, a := range seen {
		if a != "" {
			t.Errorf("a credential reached a registry no source serves: %q", a)
		}
	}
}
