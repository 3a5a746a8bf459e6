package cloudauth

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/slipway-build/slipway/e2e/harness"
)

// cloudEnv clears every credential the machine might have, so that only
// the fake endpoints of a test can answer.
func cloudEnv(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for _, v := range []string{"GOOGLE_APPLICATION_CREDENTIALS", "AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_SESSION_TOKEN"} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(home, "aws-config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(home, "aws-credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ECR_DISABLE_CACHE", "true")
	t.Setenv("CLOUDSDK_CONFIG", filepath.Join(home, "gcloud"))
	t.Setenv("PATH", home) // no gcloud binary to fall back to
}

func resource(t *testing.T, reg string) authn.Resource {
	t.Helper()
	r, err := name.NewRepository(reg + "/team/app")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestServes(t *testing.T) {
	for _, tt := range []struct {
		src  interface{ Serves(string) bool }
		reg  string
		want bool
	}{
		{Google{}, "gcr.io", true},
		{Google{}, "eu.gcr.io", true},
		{Google{}, "europe-west1-docker.pkg.dev", true},
		{Google{}, "gcr.io.evil.example", false},
		{Google{}, "registry.example", false},
		{ECR{}, "123456789012.dkr.ecr.us-east-1.amazonaws.com", true},
		{ECR{}, "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example", false},
		{ECR{}, "gcr.io", false},
		{ACR{}, "myregistry.azurecr.io", true},
		{ACR{}, "myregistry.azurecr.io.evil.example", false},
		{ACR{}, "registry.example", false},
	} {
		if got := tt.src.Serves(tt.reg); got != tt.want {
			t.Errorf("%T.Serves(%s) = %v, want %v", tt.src, tt.reg, got, tt.want)
		}
	}
}

// Google: Application Default Credentials from the GCE metadata server,
// faked on loopback (GCE_METADATA_HOST), give an access token for GCR.
func TestGoogleFromMetadataServer(t *testing.T) {
	cloudEnv(t)
	host, seen := harness.GCEMetadata(t, "fake-gce-token")
	t.Setenv("GCE_METADATA_HOST", host)

	a, err := Google{}.Resolve(resource(t, "europe-west1-docker.pkg.dev"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := a.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Password != "fake-gce-token" {
		t.Errorf("Authorization = %+v, want the metadata server's token", cfg)
	}
	if paths := seen.Names(); !strings.Contains(strings.Join(paths, " "), "/token") {
		t.Errorf("the metadata server saw %q, no token request", paths)
	}
}

// ECR: GetAuthorizationToken against a fake ECR API on loopback
// (AWS_ENDPOINT_URL_ECR), signed with static keys from the environment.
func TestECRFromTokenEndpoint(t *testing.T) {
	cloudEnv(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDFAKEFORTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "fake-secret-key")
	endpoint, seen := harness.ECRTokenEndpoint(t, "AKIDFAKEFORTEST", "123456789012.dkr.ecr.us-east-1.amazonaws.com", "fake-ecr-password")
	t.Setenv("AWS_ENDPOINT_URL_ECR", endpoint)
	t.Setenv("AWS_ENDPOINT_URL", endpoint)

	a, err := ECR{}.Resolve(resource(t, "123456789012.dkr.ecr.us-east-1.amazonaws.com"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := a.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Username != "AWS" || cfg.Password != "fake-ecr-password" {
		t.Errorf("Authorization = %+v, want the token endpoint's AWS credentials", cfg)
	}
	targets, auths := seen.Names(), seen.Authorizations()
	if len(targets) == 0 || !strings.HasSuffix(targets[0], "GetAuthorizationToken") || !strings.Contains(auths[0], "AKIDFAKEFORTEST") {
		t.Errorf("the token endpoint saw targets %q, auth %q", targets, auths)
	}
}

// ACR: the acr-env helper is run as a docker credential helper, given the
// registry on stdin; here a stand-in that answers as the helper does (its
// Azure side is tested in steps/build's TestACREnvHelper). Its "<token>"
// user marks an ACR refresh token, used as an identity token.
func TestACRThroughTheHelper(t *testing.T) {
	cloudEnv(t)
	dir := t.TempDir()
	script := "#!/bin/sh\nread server\n[ \"$1\" = get ] || exit 1\n" +
		`printf '{"ServerURL":"%s","Username":"<token>","Secret":"fake-acr-refresh-token"}' "$server"` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "docker-credential-acr-env"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":/bin:/usr/bin")
	a, err := ACR{}.Resolve(resource(t, "myregistry.azurecr.io"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := a.Authorization()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.IdentityToken != "fake-acr-refresh-token" || cfg.Username != "" || cfg.Password != "" {
		t.Errorf("Authorization = %+v, want the helper's refresh token as an identity token", cfg)
	}
	// Without the helper there is nothing, and no error.
	t.Setenv("PATH", t.TempDir())
	if a, err := (ACR{}).Resolve(resource(t, "myregistry.azurecr.io")); err != nil || a != authn.Anonymous {
		t.Errorf("without the helper: %v, %v", a, err)
	}
}
