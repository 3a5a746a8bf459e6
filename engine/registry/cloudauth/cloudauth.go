// Package cloudauth holds the cloud credential sources kaniko has built in:
// Google (GCR and Artifact Registry, from Application Default Credentials
// or the GCE metadata server), Amazon ECR (through the ecr-login library)
// and Azure Container Registry (through the acr-env helper's library).
// Each serves only its cloud's registries. It is a package of its own
// because the cloud SDKs are large: slipway-build links it, the steps that
// only pull (slipway-warm, slipway-index) do not; they read the same
// clouds through the credential helpers the executor image ships.
package cloudauth

import (
	"errors"
	"io"
	"os/exec"
	"regexp"
	"strings"

	ecr "github.com/awslabs/amazon-ecr-credential-helper/ecr-login"
	ecrapi "github.com/awslabs/amazon-ecr-credential-helper/ecr-login/api"
	"github.com/docker/docker-credential-helpers/client"
	"github.com/docker/docker-credential-helpers/credentials"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/google"

	"github.com/slipway-build/slipway/engine/registry"
)

// Sources are the cloud sources, in kaniko's order.
func Sources() []registry.AmbientSource {
	return []registry.AmbientSource{Google{}, ECR{}, ACR{}}
}

// Google is the Google keychain for gcr.io, *.gcr.io and
// *-docker.pkg.dev.
type Google struct{}

// Name implements registry.AmbientSource.
func (Google) Name() string { return "google" }

// Serves implements registry.AmbientSource.
func (Google) Serves(reg string) bool {
	host := hostOf(reg)
	return host == "gcr.io" || strings.HasSuffix(host, ".gcr.io") || strings.HasSuffix(host, "-docker.pkg.dev")
}

// Resolve implements registry.AmbientSource.
func (Google) Resolve(target authn.Resource) (authn.Authenticator, error) {
	return google.Keychain.Resolve(target)
}

// ECR is Amazon ECR through the ecr-login library, with the AWS SDK's
// usual credential chain (environment, profile, web identity, instance
// role).
type ECR struct{}

// Name implements registry.AmbientSource.
func (ECR) Name() string { return "ecr" }

// Serves implements registry.AmbientSource.
func (ECR) Serves(reg string) bool {
	_, err := ecrapi.ExtractRegistry(hostOf(reg))
	return err == nil
}

// Resolve implements registry.AmbientSource.
func (ECR) Resolve(target authn.Resource) (authn.Authenticator, error) {
	// ecr-login logs through logrus to stderr; the keychain logs instead.
	helper := ecr.NewECRHelper(ecr.WithLogger(io.Discard))
	return authn.NewKeychainFromHelper(helper).Resolve(target)
}

// ACR is Azure Container Registry through docker-credential-acr-env, run
// as the credential helper it is, for *.azurecr.io (and the sovereign
// clouds' suffixes) only. Without the helper on PATH it gives nothing.
type ACR struct{}

// acrHelper is the helper program; a variable for tests.
var acrHelper = "docker-credential-acr-env"

var acrHost = regexp.MustCompile(`^[a-z0-9]+\.azurecr\.(io|cn|de|us)$`)

// Name implements registry.AmbientSource.
func (ACR) Name() string { return "acr" }

// Serves implements registry.AmbientSource.
func (ACR) Serves(reg string) bool { return acrHost.MatchString(hostOf(reg)) }

// Resolve implements registry.AmbientSource.
func (ACR) Resolve(target authn.Resource) (authn.Authenticator, error) {
	if _, err := exec.LookPath(acrHelper); err != nil {
		return authn.Anonymous, nil
	}
	creds, err := client.Get(client.NewShellProgramFunc(acrHelper), target.RegistryStr())
	if err != nil {
		if credentials.IsErrCredentialsNotFound(err) {
			return authn.Anonymous, nil
		}
		return nil, errors.New(acrHelper + ": " + err.Error())
	}
	// The helper names an ACR refresh token by the user "<token>", as the
	// docker CLI's helper protocol does: it is an identity token for the
	// registry's OAuth2 exchange, not a password for basic auth.
	if creds.Username == identityTokenUser {
		return authn.FromConfig(authn.AuthConfig{IdentityToken: creds.Secret}), nil
	}
	return authn.FromConfig(authn.AuthConfig{Username: creds.Username, Password: creds.Secret}), nil
}

// identityTokenUser is the user name a credential helper gives with an
// identity token (docker/cli's credentials.tokenUsername).
const identityTokenUser = "<token>"

var portSuffix = regexp.MustCompile(`:\d+$`)

func hostOf(reg string) string { return portSuffix.ReplaceAllString(reg, "") }
