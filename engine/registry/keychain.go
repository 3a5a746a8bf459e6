package registry

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

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
	// Sources are the ambient credential sources tried, in order, for a
	// registry the config files do not name. The built-in ones (EnvSource,
	// GitLabSource) come first; a step adds the cloud ones.
	Sources []AmbientSource
	// Enabled names the sources to use (--credential-helpers); nil means
	// all of them, empty none.
	Enabled []string
	// Log receives, at debug level, which source gave a registry's
	// credentials; never the credentials.
	Log *slog.Logger
}

// AmbientSource is a credential source read from the environment, as
// kaniko has them: tried after the config files, and only for the
// registries it Serves, so that its token never reaches another host.
type AmbientSource interface {
	// Name is the --credential-helpers value that selects it.
	Name() string
	// Serves reports whether the source is meant for registry (a host,
	// with its port when it has one).
	Serves(registry string) bool
	// Resolve returns the credentials, or authn.Anonymous when the
	// environment has none.
	Resolve(target authn.Resource) (authn.Authenticator, error)
}

// BuiltinSources are the sources every step has: DOCKER_AUTH_CONFIG and
// GitLab CI's registry variables.
func BuiltinSources() []AmbientSource { return []AmbientSource{EnvSource{}, GitLabSource{}} }

// NewKeychain is Keychain with options.
func NewKeychain(opts KeychainOptions) authn.Keychain {
	k := ambientKeychain{files: dockerConfigKeychain{kanikoDir: opts.KanikoDir}, log: opts.Log}
	for _, s := range opts.Sources {
		if opts.Enabled == nil || slices.Contains(opts.Enabled, s.Name()) {
			k.sources = append(k.sources, s)
		}
	}
	if k.log == nil {
		k.log = slog.Default()
	}
	return k
}

type ambientKeychain struct {
	files   dockerConfigKeychain
	sources []AmbientSource
	log     *slog.Logger
}

func (k ambientKeychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	a, err := k.files.Resolve(target)
	if err != nil || a != authn.Anonymous {
		return a, err
	}
	reg := target.RegistryStr()
	for _, s := range k.sources {
		if !s.Serves(reg) {
			continue
		}
		a, err := s.Resolve(target)
		if err != nil {
			k.log.Debug(fmt.Sprintf("No credentials for %s from %s: %v", reg, s.Name(), err))
			continue
		}
		if a != authn.Anonymous {
			k.log.Debug(fmt.Sprintf("Using credentials for %s from %s", reg, s.Name()))
			return a, nil
		}
	}
	return authn.Anonymous, nil
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
	return resolveFromConfig(f, path, target)
}

// resolveFromConfig looks target up in a docker config.json read from r;
// where names the config in errors.
func resolveFromConfig(r io.Reader, where string, target authn.Resource) (authn.Authenticator, error) {
	cf, err := config.LoadFromReader(r)
	if err != nil {
		return nil, fmt.Errorf("parsing docker config %s: %w: fix the JSON or point DOCKER_CONFIG at a valid config", where, err)
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
			return nil, fmt.Errorf("getting credentials for %s from %s: %w", key, where, err)
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

// EnvSource is DOCKER_AUTH_CONFIG: a whole docker config.json in an
// environment variable, as GitLab CI documents it. It serves the
// registries it names.
type EnvSource struct{}

// Name implements AmbientSource.
func (EnvSource) Name() string { return "env" }

// Serves implements AmbientSource: the lookup itself keeps to the
// registries the JSON names.
func (EnvSource) Serves(string) bool { return os.Getenv("DOCKER_AUTH_CONFIG") != "" }

// Resolve implements AmbientSource.
func (EnvSource) Resolve(target authn.Resource) (authn.Authenticator, error) {
	v := os.Getenv("DOCKER_AUTH_CONFIG")
	if v == "" {
		return authn.Anonymous, nil
	}
	return resolveFromConfig(strings.NewReader(v), "$DOCKER_AUTH_CONFIG", target)
}

// GitLabSource is GitLab CI's job registry: CI_REGISTRY_USER and
// CI_REGISTRY_PASSWORD, or the job token, for CI_REGISTRY and nothing else.
type GitLabSource struct{}

// Name implements AmbientSource.
func (GitLabSource) Name() string { return "gitlab" }

// Serves implements AmbientSource.
func (GitLabSource) Serves(registry string) bool {
	ci := os.Getenv("CI_REGISTRY")
	if ci == "" {
		return false
	}
	want, err := name.NewRegistry(ci, name.WeakValidation)
	return err == nil && want.RegistryStr() == registry
}

// Resolve implements AmbientSource.
func (GitLabSource) Resolve(authn.Resource) (authn.Authenticator, error) {
	if u, p := os.Getenv("CI_REGISTRY_USER"), os.Getenv("CI_REGISTRY_PASSWORD"); u != "" && p != "" {
		return &authn.Basic{Username: u, Password: p}, nil
	}
	if t := os.Getenv("CI_JOB_TOKEN"); t != "" {
		return &authn.Basic{Username: "gitlab-ci-token", Password: t}, nil
	}
	return authn.Anonymous, nil
}
