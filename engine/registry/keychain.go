package registry

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/docker/cli/cli/config"
	"github.com/docker/cli/cli/config/types"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// DefaultKanikoDir is kaniko's own directory (--kaniko-dir, $KANIKO_DIR);
// its .docker is where kaniko's executor image expects the docker config,
// and where Tekton and Argo tasks written for kaniko mount secrets.
const DefaultKanikoDir = "/kaniko"

// DockerConfigPath returns the docker config.json that Keychain reads, or ""
// when none exists. The order is kaniko's: $DOCKER_CONFIG (a directory, or
// the file itself), then /kaniko/.docker, then ~/.docker.
func DockerConfigPath() string { return dockerConfigPath(DefaultKanikoDir) }

func dockerConfigPath(kanikoDir string) string {
	for _, p := range dockerConfigCandidates(kanikoDir) {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// configNames are the files a docker config directory may hold: docker's
// own, and the key `kubectl create secret docker-registry` writes, so that
// a Tekton workspace or Argo volume from such a Secret works as mounted
// (tektoncd/catalog #1192, #1227).
var configNames = []string{"config.json", ".dockerconfigjson"}

func dockerConfigCandidates(kanikoDir string) []string {
	if kanikoDir == "" {
		kanikoDir = DefaultKanikoDir
	}
	var dirs, out []string
	if dc := os.Getenv("DOCKER_CONFIG"); dc != "" {
		if fi, err := os.Stat(dc); err == nil && !fi.IsDir() {
			out = append(out, dc)
		} else {
			dirs = append(dirs, dc)
		}
	}
	dirs = append(dirs, filepath.Join(kanikoDir, ".docker"))
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".docker"))
	}
	for _, d := range dirs {
		for _, n := range configNames {
			out = append(out, filepath.Join(d, n))
		}
	}
	return out
}

// Keychain resolves credentials from the docker config.json found by
// DockerConfigPath, honouring its credHelpers and credsStore. The file is
// read on every lookup so that a config mounted after start-up (a Tekton
// workspace, a projected secret) is seen.
func Keychain() authn.Keychain { return NewKeychain(KeychainOptions{}) }

// KeychainOptions choose where Keychain looks.
type KeychainOptions struct {
	// KanikoDir replaces /kaniko as the directory whose .docker is read
	// (kaniko's --kaniko-dir and $KANIKO_DIR).
	KanikoDir string
}

// NewKeychain is Keychain with options.
func NewKeychain(opts KeychainOptions) authn.Keychain {
	return dockerConfigKeychain{kanikoDir: opts.KanikoDir}
}

type dockerConfigKeychain struct{ kanikoDir string }

func (k dockerConfigKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	path := dockerConfigPath(k.kanikoDir)
	if path == "" {
		return authn.Anonymous, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading docker config %s: %w", path, err)
	}
	defer f.Close()
	cf, err := config.LoadFromReader(f)
	if err != nil {
		return nil, fmt.Errorf("parsing docker config %s: %w: fix the JSON or point DOCKER_CONFIG at a valid config", path, err)
	}
	// The repository key first, then the registry, as docker and ggcr do;
	// Docker Hub is stored under its historical v1 URL.
	var cfg, empty types.AuthConfig
	for _, key := range []string{target.String(), target.RegistryStr()} {
		if key == name.DefaultRegistry {
			key = authn.DefaultAuthKey
		}
		cfg, err = cf.GetAuthConfig(key)
		if err != nil {
			return nil, fmt.Errorf("getting credentials for %s from %s: %w", key, path, err)
		}
		cfg.ServerAddress = ""
		if cfg != empty {
			break
		}
	}
	if cfg == empty {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{
		Username:      cfg.Username,
		Password:      cfg.Password,
		Auth:          cfg.Auth,
		IdentityToken: cfg.IdentityToken,
		RegistryToken: cfg.RegistryToken,
	}), nil
}
