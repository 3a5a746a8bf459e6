package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slipway-build/slipway/e2e/harness"
)

// runAs runs the test binary, which doubles as slipway-build, through a
// symbolic link named name, as the executor image runs its entry points,
// with stdin and no environment but env: the helpers' SDKs read the
// environment, and the tests must reach nothing but their loopback fakes.
func runAs(t *testing.T, name string, env []string, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	dir := t.TempDir()
	link := filepath.Join(dir, name)
	if err := os.Symlink(os.Args[0], link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, args...)
	cmd.Env = append([]string{"SLIPWAY_BUILD_AS_MAIN=1", "PATH=" + dir}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// hermeticEnv is a home of the test's own, and every cloud's ambient
// lookups turned off or sent to metadata on loopback, so that no helper
// reaches a real metadata server or a cloud API.
func hermeticEnv(t *testing.T, metadataHost string) []string {
	home := t.TempDir()
	return []string{
		"HOME=" + home,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "aws-credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_ECR_CACHE_DIR=" + filepath.Join(home, "ecr"),
		"CLOUDSDK_CONFIG=" + filepath.Join(home, "gcloud"),
		"GCE_METADATA_HOST=" + metadataHost,
	}
}

// Each entry point answers as the program it stands for, and a name that
// is none of them is slipway-build (kaniko's /kaniko/executor).
func TestEntryPointsAnswerAsTheirProgram(t *testing.T) {
	env := hermeticEnv(t, "127.0.0.1:9")
	tested := map[string]bool{}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"slipway-warm", []string{"--version"}, "slipway-warm version"},
		{"warmer", []string{"--version"}, "slipway-warm version"},
		{"slipway-index", []string{"--version"}, "slipway-index version"},
		{"executor", []string{"--version"}, "slipway-build version"},
		{"slipway-build", []string{"--version"}, "slipway-build version"},
		{"docker-credential-gcr", []string{"version"}, "Google Container Registry Docker credential helper 2."},
		{"docker-credential-ecr-login", []string{"version"}, "docker-credential-ecr-login (github.com/awslabs/amazon-ecr-credential-helper/ecr-login) v0."},
		{"docker-credential-ecr-login", []string{"-v"}, "amazon-ecr-credential-helper\nVersion:    v0."},
		{"docker-credential-acr-env", []string{"version"}, "docker-credential-acr-env (github.com/chrismellard/docker-credential-acr-env) v0.0.0-"},
		{"docker-credential-acr-env", []string{"--help"}, "Usage: docker-credential-acr-env <store|get|erase|list|version>"},
	} {
		tested[tc.name] = true
		t.Run(tc.name+" "+strings.Join(tc.args, " "), func(t *testing.T) {
			out, errOut, err := runAs(t, tc.name, env, "", tc.args...)
			if err != nil || !strings.Contains(out, tc.want) {
				t.Errorf("got %v, stdout %q, stderr %q; want stdout with %q", err, out, errOut, tc.want)
			}
		})
	}
	for name := range entryPoints {
		if !tested[name] {
			t.Errorf("entry point %q is not in this test", name)
		}
	}
}

// docker-credential-ecr-login speaks the helper protocol: get and list
// take tokens from ECR's GetAuthorizationToken, here a fake on loopback
// (AWS_ENDPOINT_URL), signed with the static keys of the environment.
func TestECRLoginHelper(t *testing.T) {
	endpoint, seen := harness.ECRTokenEndpoint(t, "AKIDFAKEFORTEST", "123456789012.dkr.ecr.us-east-1.amazonaws.com", "fake-ecr-password")
	env := append(hermeticEnv(t, "127.0.0.1:9"),
		"AWS_ACCESS_KEY_ID=AKIDFAKEFORTEST", "AWS_SECRET_ACCESS_KEY=fake-secret-key", "AWS_REGION=us-east-1",
		"AWS_ENDPOINT_URL="+endpoint)

	out, errOut, err := runAs(t, "docker-credential-ecr-login", env, "123456789012.dkr.ecr.us-east-1.amazonaws.com\n", "get")
	if err != nil {
		t.Fatalf("get: %v\nstdout %s\nstderr %s", err, out, errOut)
	}
	var creds struct{ ServerURL, Username, Secret string }
	if err := json.Unmarshal([]byte(out), &creds); err != nil || creds.Username != "AWS" || creds.Secret != "fake-ecr-password" {
		t.Errorf("get: %q (%v), want the token endpoint's AWS credentials as JSON", out, err)
	}

	out, errOut, err = runAs(t, "docker-credential-ecr-login", env, "", "list")
	if err != nil {
		t.Fatalf("list: %v\nstdout %s\nstderr %s", err, out, errOut)
	}
	var list map[string]string
	if err := json.Unmarshal([]byte(out), &list); err != nil || list["https://123456789012.dkr.ecr.us-east-1.amazonaws.com"] != "AWS" {
		t.Errorf("list: %q (%v), want the registry the token endpoint named", out, err)
	}
	if targets := seen.Names(); len(targets) == 0 || !strings.HasSuffix(targets[0], "GetAuthorizationToken") {
		t.Errorf("the token endpoint saw %q", targets)
	}

	// A host that is not ECR's is refused without a request.
	out, _, err = runAs(t, "docker-credential-ecr-login", env, "registry.example.com\n", "get")
	if err == nil || !strings.Contains(out, "credentials not found") {
		t.Errorf("get registry.example.com: %v, %q; want credentials not found", err, out)
	}
}

// docker-credential-gcr gets a token from Application Default
// Credentials, here the GCE metadata server faked on loopback.
func TestGCRHelper(t *testing.T) {
	host, _ := harness.GCEMetadata(t, "fake-gce-token")
	env := hermeticEnv(t, host)

	out, errOut, err := runAs(t, "docker-credential-gcr", env, "europe-west1-docker.pkg.dev\n", "get")
	if err != nil {
		t.Fatalf("get: %v\nstdout %s\nstderr %s", err, out, errOut)
	}
	var creds struct{ ServerURL, Username, Secret string }
	if err := json.Unmarshal([]byte(out), &creds); err != nil || creds.Secret != "fake-gce-token" || !strings.HasPrefix(creds.Username, "_dcgcr_2_") {
		t.Errorf("get: %q (%v), want the metadata server's token and the helper's versioned user name", out, err)
	}
	if out, _, err := runAs(t, "docker-credential-gcr", env, "", "list"); err == nil || !strings.Contains(out, "list is unimplemented") {
		t.Errorf("list: %v, %q; want upstream's unimplemented error", err, out)
	}
}

// docker-credential-acr-env speaks the helper protocol: get takes the
// service principal of the environment to Azure AD, and exchanges AD's
// token at the registry for an ACR refresh token. Both are fakes on
// loopback (harness.StartAzureCloud), reached through a proxy that lets
// only their two hosts through, since the helper's SDK names the public
// cloud's hosts itself.
func TestACREnvHelper(t *testing.T) {
	const (
		tenant   = "11111111-2222-3333-4444-555555555555"
		client   = "66666666-7777-8888-9999-000000000000"
		secret   = "fake-client-secret"
		registry = "myregistry.azurecr.io"
	)
	cloud := harness.StartAzureCloud(t, tenant, client, secret, registry, "fake-acr-refresh-token")
	azureEnv := func(secret string) []string {
		return append(hermeticEnv(t, "127.0.0.1:9"),
			"AZURE_TENANT_ID="+tenant, "AZURE_CLIENT_ID="+client, "AZURE_CLIENT_SECRET="+secret,
			"HTTPS_PROXY="+cloud.HTTPSProxy, "SSL_CERT_FILE="+cloud.CA)
	}

	out, errOut, err := runAs(t, "docker-credential-acr-env", azureEnv(secret), registry+"\n", "get")
	if err != nil {
		t.Fatalf("get: %v\nstdout %s\nstderr %s", err, out, errOut)
	}
	var creds struct{ ServerURL, Username, Secret string }
	if err := json.Unmarshal([]byte(out), &creds); err != nil ||
		creds.Username != "<token>" || creds.Secret != "fake-acr-refresh-token" {
		t.Errorf("get: %q (%v), want ACR's refresh token as an identity token (user <token>), as JSON", out, err)
	}
	want := []string{"login.microsoftonline.com /" + tenant + "/oauth2/token", registry + " /oauth2/exchange"}
	if got := cloud.Seen.Names(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("the fakes saw %q, want %q", got, want)
	}
	if auths := cloud.Seen.Authorizations(); len(auths) != 2 || auths[0] != client+":"+secret || auths[1] != "fake-aad-access-token" {
		t.Errorf("the fakes were sent %q, want the service principal to AD and AD's token to the registry", auths)
	}

	// A wrong client secret is AD's refusal, and the secret is not echoed.
	out, errOut, err = runAs(t, "docker-credential-acr-env", azureEnv("wrong-client-secret"), registry+"\n", "get")
	if err == nil || strings.Contains(out+errOut, "wrong-client-secret") || !strings.Contains(out, "AADSTS7000215") {
		t.Errorf("get with a wrong secret: %v, stdout %q, stderr %q; want AD's refusal without the secret", err, out, errOut)
	}

	// Hosts that are not ACR's are refused without a request.
	before := len(cloud.Tunnels.Names())
	out, _, err = runAs(t, "docker-credential-acr-env", azureEnv(secret), "registry.example.com\n", "get")
	if err == nil || !strings.Contains(out, "does not refer to Azure Container Registry") {
		t.Errorf("get registry.example.com: %v, %q; want a refusal", err, out)
	}
	if after := len(cloud.Tunnels.Names()); after != before {
		t.Errorf("get registry.example.com made %d requests, want none", after-before)
	}
	if out, _, err := runAs(t, "docker-credential-acr-env", azureEnv(secret), "", "list"); err == nil || !strings.Contains(out, "list is unimplemented") {
		t.Errorf("list: %v, %q; want upstream's unimplemented error", err, out)
	}
	for _, host := range cloud.Tunnels.Names() {
		if host != "login.microsoftonline.com:443" && host != registry+":443" {
			t.Errorf("the helper tried to reach %s", host)
		}
	}
}

// TestImageLinksEveryEntryPoint reads the names steps/image/build.sh links
// to slipway-build in the executor image, which it types by hand, and
// checks them against entryPoints: a program added here but not there
// would be missing from the image, and a name only there would start
// slipway-build itself. "warmer" is kaniko's name, which the image links
// as /kaniko/warmer instead.
func TestImageLinksEveryEntryPoint(t *testing.T) {
	script, err := os.ReadFile("../image/build.sh")
	if err != nil {
		t.Fatal(err)
	}
	var linked []string
	for _, line := range strings.Split(string(script), "\n") {
		if v, ok := strings.CutPrefix(line, "multicall="); ok {
			linked = strings.Fields(strings.Trim(v, `"`))
		}
	}
	if linked == nil {
		t.Fatal(`steps/image/build.sh has no multicall="…" line`)
	}
	want := map[string]bool{}
	for name := range entryPoints {
		if name != "warmer" {
			want[name] = true
		}
	}
	for _, name := range linked {
		if !want[name] {
			t.Errorf("build.sh links %s, which is not one of slipway-build's entry points (multicall.go)", name)
		}
		delete(want, name)
	}
	for name := range want {
		t.Errorf("entry point %s (multicall.go) is not linked by build.sh's multicall list", name)
	}
	if !strings.Contains(string(script), `"$shared/rootfs/kaniko/warmer"`) {
		t.Error("build.sh does not link /kaniko/warmer, kaniko's name for the warmer")
	}
}
