// Package plugin is slipway-build's Drone and Woodpecker plugin mode: the
// settings of a pipeline step (PLUGIN_* environment variables) read the way
// the kaniko plugins read them (drone/drone-kaniko, woodpeckerci/plugin-kaniko)
// and turned into slipway-build flags, so that a step switches by changing
// its image.
//
// The two plugins differ in places; where they do, Woodpecker's rules apply
// when CI=woodpecker (which Woodpecker sets) and Drone's otherwise.
package plugin

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// Prefix starts the name of every plugin setting's environment variable.
const Prefix = "PLUGIN_"

// dockerHub is both plugins' default registry, the legacy Docker Hub
// address docker's own config uses.
const dockerHub = "https://index.docker.io/v1/"

// Plan is what plugin mode runs.
type Plan struct {
	// Args are slipway-build's flags. They never hold the password.
	Args []string
	// Credentials log in to the plugin's registry; nil when the settings
	// give no username or password.
	Credentials *Credentials
	// Ignored are settings the kaniko plugins know and Slipway does not use.
	Ignored []string
}

// Environ turns os.Environ's list into a map.
func Environ(environ []string) map[string]string {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	return env
}

// Active reports whether env holds plugin settings.
func Active(env map[string]string) bool {
	for k := range env {
		if strings.HasPrefix(k, Prefix) {
			return true
		}
	}
	return false
}

// known are the settings plugin mode reads (without the prefix).
var known = []string{
	"REPO", "TAGS", "REGISTRY", "DOCKERFILE", "CONTEXT", "USERNAME", "PASSWORD",
	"BUILD_ARGS", "BUILD_ARGS_FROM_ENV", "TARGET", "CACHE", "ENABLE_CACHE",
	"CACHE_REPO", "CACHE_TTL", "INSECURE", "SKIP_TLS_VERIFY", "MIRROR",
	"MIRRORS", "REGISTRY_MIRRORS", "AUTO_TAG", "AUTO_TAG_SUFFIX", "DRY_RUN",
	"NO_PUSH", "EXPAND_REPO", "VERBOSITY", "LOG_LEVEL", "PLATFORM",
	"CUSTOM_LABELS",
}

// FromEnv reads the plugin settings in env. dir is the step's working
// directory: the default context, and where a .tags file is looked for.
func FromEnv(env map[string]string, dir string) (Plan, error) {
	s := settings{env: env}
	woodpecker := env["CI"] == "woodpecker"
	var p Plan
	for k := range env {
		if setting, ok := strings.CutPrefix(k, Prefix); ok && !slices.Contains(known, setting) {
			p.Ignored = append(p.Ignored, strings.ToLower(setting))
		}
	}
	slices.Sort(p.Ignored)

	reg := newRegistry(s.get("REGISTRY"))
	contextDir := s.get("CONTEXT")
	if contextDir == "" {
		contextDir = dir
	} else if !filepath.IsAbs(contextDir) {
		contextDir = filepath.Join(dir, contextDir)
	}
	p.Args = append(p.Args, "--context="+contextDir, "--dockerfile="+dockerfile(s.get("DOCKERFILE"), dir))

	noPush, err := s.anyBool("DRY_RUN", "NO_PUSH")
	if err != nil {
		return Plan{}, err
	}
	repos := s.list("REPO")
	// Woodpecker's plugin builds without pushing when no repo is given.
	push := !noPush && len(repos) > 0
	if !push {
		p.Args = append(p.Args, "--no-push")
	} else {
		tags, err := tagsFor(s, dir, woodpecker)
		if err != nil {
			return Plan{}, err
		}
		for _, repo := range repos {
			for _, tag := range tags {
				p.Args = append(p.Args, "--destination="+reg.qualify(repo)+":"+tag)
			}
		}
	}

	for _, a := range s.buildArgs() {
		p.Args = append(p.Args, "--build-arg="+a)
	}
	for _, n := range s.list("BUILD_ARGS_FROM_ENV") {
		// A bare NAME makes slipway-build take the value from its environment.
		p.Args = append(p.Args, "--build-arg="+n)
	}
	for _, l := range s.list("CUSTOM_LABELS") {
		p.Args = append(p.Args, "--label="+l)
	}
	if t := s.get("TARGET"); t != "" {
		p.Args = append(p.Args, "--target="+t)
	}
	if v := s.get("PLATFORM"); v != "" {
		p.Args = append(p.Args, "--custom-platform="+v)
	}
	if v := s.first("VERBOSITY", "LOG_LEVEL"); v != "" {
		p.Args = append(p.Args, "--verbosity="+v)
	}

	cache, err := s.anyBool("CACHE", "ENABLE_CACHE")
	if err != nil {
		return Plan{}, err
	}
	// Without a push there is no cache to write, and Woodpecker's plugin
	// drops it too.
	if cache && push {
		p.Args = append(p.Args, "--cache=true")
		if r := s.get("CACHE_REPO"); r != "" {
			p.Args = append(p.Args, "--cache-repo="+reg.qualify(r))
		}
		if ttl := s.get("CACHE_TTL"); ttl != "" {
			if _, err := strconv.Atoi(ttl); err == nil {
				ttl += "h" // drone-kaniko counts hours
			}
			p.Args = append(p.Args, "--cache-ttl="+ttl)
		}
	}

	if insecure, err := s.bool("INSECURE"); err != nil {
		return Plan{}, err
	} else if insecure {
		// Plain HTTP for the whole registry: the push, and the cache and
		// base images read from it.
		p.Args = append(p.Args, "--insecure")
		if !reg.hub {
			p.Args = append(p.Args, "--insecure-registry="+reg.host)
		}
	}
	if skip, err := s.bool("SKIP_TLS_VERIFY"); err != nil {
		return Plan{}, err
	} else if skip {
		p.Args = append(p.Args, "--skip-tls-verify")
		if !reg.hub {
			p.Args = append(p.Args, "--skip-tls-verify-registry="+reg.host)
		}
	}
	for _, m := range slices.Concat(s.list("MIRROR"), s.list("MIRRORS"), s.list("REGISTRY_MIRRORS")) {
		p.Args = append(p.Args, "--registry-mirror="+m)
	}

	if user, pass := s.get("USERNAME"), s.get("PASSWORD"); user != "" || pass != "" {
		p.Credentials = &Credentials{Registry: reg.host, Username: user, Password: pass}
	}
	return p, nil
}

// dockerfile is the Dockerfile flag: the plugins resolve a relative path
// from the working directory; one not found there is left for
// slipway-build to take relative to the context, as kaniko does.
func dockerfile(path, dir string) string {
	if path == "" {
		path = "Dockerfile"
	}
	if filepath.IsAbs(path) {
		return path
	}
	if _, err := os.Stat(filepath.Join(dir, path)); err == nil {
		return filepath.Join(dir, path)
	}
	return path
}

// tagsFor are the tags to push: auto_tag's, else tags, else the .tags
// file, else latest.
func tagsFor(s settings, dir string, woodpecker bool) ([]string, error) {
	auto, err := s.bool("AUTO_TAG")
	if err != nil {
		return nil, err
	}
	tags := s.list("TAGS")
	if auto {
		switch {
		case woodpecker && len(tags) > 0:
			// Woodpecker's plugin writes .tags, which tags override.
		case woodpecker:
			return woodpeckerAutoTags(s.env["CI_COMMIT_TAG"]), nil
		case len(tags) > 1 || len(tags) == 1 && tags[0] != "latest":
			return nil, fmt.Errorf("PLUGIN_AUTO_TAG: auto_tag cannot be combined with tags %v; remove one of them", tags)
		default:
			return droneAutoTags(s.env, s.get("AUTO_TAG_SUFFIX"))
		}
	}
	if len(tags) > 0 {
		return tags, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, ".tags"))
	if err == nil {
		tags = splitList(strings.ReplaceAll(string(b), "\n", ","))
		if len(tags) > 0 {
			return tags, nil
		}
	} else if !os.IsNotExist(err) {
		return nil, fmt.Errorf("reading the tags file: %w", err)
	}
	return []string{"latest"}, nil
}

var semverRE = regexp.MustCompile(`^v?(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// droneAutoTags is drone-kaniko's auto_tag: a semver tag gives its major,
// major.minor and full version (a 0.x version no major, a pre-release or
// build only the full one); the default branch gives latest; any other
// ref is refused.
func droneAutoTags(env map[string]string, suffix string) ([]string, error) {
	ref := env["DRONE_COMMIT_REF"]
	if ref == "" && env["DRONE_TAG"] != "" {
		ref = "refs/tags/" + env["DRONE_TAG"]
	}
	var tags []string
	if tag, ok := strings.CutPrefix(ref, "refs/tags/"); ok {
		m := semverRE.FindStringSubmatch(tag)
		if m == nil {
			return nil, fmt.Errorf("PLUGIN_AUTO_TAG: the git tag %q is not a semantic version (v1.2.3); give tags instead", tag)
		}
		major, minor, patch := m[1], m[2], m[3]
		switch {
		case m[4] != "" || m[5] != "":
			tags = []string{strings.TrimPrefix(tag, "v")}
		case strings.TrimLeft(major, "0") == "":
			tags = []string{major + "." + minor, major + "." + minor + "." + patch}
		default:
			tags = []string{major, major + "." + minor, major + "." + minor + "." + patch}
		}
	} else {
		branch := strings.TrimPrefix(ref, "refs/heads/")
		if branch == "" || branch != env["DRONE_REPO_BRANCH"] {
			return nil, fmt.Errorf("PLUGIN_AUTO_TAG: auto_tag builds tags and the default branch (%q) only, and this build is of %q", env["DRONE_REPO_BRANCH"], ref)
		}
		tags = []string{"latest"}
	}
	if suffix != "" {
		for i, t := range tags {
			if t == "latest" {
				tags[i] = suffix
			} else {
				tags[i] = t + "-" + suffix
			}
		}
	}
	return tags, nil
}

// woodpeckerAutoTags is Woodpecker's auto_tag: a numeric tag of up to
// three parts gives major, major.minor and major.minor.patch (missing
// parts 0); any other tag gives itself; latest always.
func woodpeckerAutoTags(commitTag string) []string {
	tag := strings.TrimPrefix(commitTag, "v")
	parts := strings.Split(tag, ".")
	switch {
	case tag == "":
		return []string{"latest"}
	case strings.ContainsAny(tag, "abcdefghijklmnopqrstuvwxyz-") || len(parts) > 3:
		return []string{tag, "latest"}
	}
	for len(parts) < 3 {
		parts = append(parts, "0")
	}
	for i, p := range parts {
		if p == "" {
			parts[i] = "0"
		}
	}
	return []string{parts[0], parts[0] + "." + parts[1], strings.Join(parts, "."), "latest"}
}

// registry is the plugin's registry setting.
type registry struct {
	prefix string // what an unqualified repo is put under
	host   string // host[:port]
	hub    bool   // Docker Hub, where repos stay as given
}

func newRegistry(setting string) registry {
	if setting == "" {
		setting = dockerHub
	}
	trimmed := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(setting, "https://"), "http://"), "/")
	host, _, _ := strings.Cut(trimmed, "/")
	switch host {
	case "index.docker.io", "docker.io", "registry-1.docker.io":
		return registry{host: name.DefaultRegistry, hub: true}
	}
	return registry{prefix: trimmed, host: host}
}

// qualify puts repo under the registry, unless it names a registry itself:
// Woodpecker's plugin always prefixes the registry, and drone-kaniko users
// write the registry into repo.
func (r registry) qualify(repo string) string {
	first, _, found := strings.Cut(repo, "/")
	if r.hub || found && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return repo
	}
	return r.prefix + "/" + repo
}

// settings reads PLUGIN_* values.
type settings struct{ env map[string]string }

func (s settings) get(key string) string { return strings.TrimSpace(s.env[Prefix+key]) }

func (s settings) first(keys ...string) string {
	for _, k := range keys {
		if v := s.get(k); v != "" {
			return v
		}
	}
	return ""
}

// list reads a list setting, which both CIs pass comma-joined.
func (s settings) list(key string) []string { return splitList(s.get(key)) }

func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func (s settings) bool(key string) (bool, error) {
	v := s.get(key)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s%s=%q: want true or false", Prefix, key, v)
	}
	return b, nil
}

func (s settings) anyBool(keys ...string) (bool, error) {
	for _, k := range keys {
		if b, err := s.bool(k); err != nil || b {
			return b, err
		}
	}
	return false, nil
}

// buildArgs reads build_args: a list of NAME=value, or a map, which
// Woodpecker passes as a JSON object.
func (s settings) buildArgs() []string {
	v := s.get("BUILD_ARGS")
	if strings.HasPrefix(v, "{") {
		var m map[string]any
		if json.Unmarshal([]byte(v), &m) == nil {
			var out []string
			for k, val := range m {
				out = append(out, fmt.Sprintf("%s=%v", k, val))
			}
			slices.Sort(out)
			return out
		}
	}
	return splitList(v)
}

// Credentials are the plugin's username and password, for its registry
// only: a registry.AmbientSource, so that the token never reaches another
// host and a docker config file, when one is mounted, still comes first.
type Credentials struct {
	Registry string // host[:port], as name.Registry.RegistryStr gives it
	Username string
	Password string
}

// Name implements registry.AmbientSource.
func (*Credentials) Name() string { return "plugin" }

// Serves implements registry.AmbientSource.
func (c *Credentials) Serves(reg string) bool {
	want, err := name.NewRegistry(c.Registry, name.WeakValidation)
	return err == nil && want.RegistryStr() == reg
}

// Resolve implements registry.AmbientSource.
func (c *Credentials) Resolve(authn.Resource) (authn.Authenticator, error) {
	return &authn.Basic{Username: c.Username, Password: c.Password}, nil
}
