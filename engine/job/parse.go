package job

import (
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/slipway-build/slipway/engine/build"
)

// ParseBuildArgs reads kaniko's --build-arg values: "NAME=value", or a
// bare "NAME" whose value comes from the environment (and is left out
// when the environment does not have it, as docker does).
func ParseBuildArgs(args []string, lookup func(string) (string, bool)) (map[string]string, error) {
	out := map[string]string{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if k == "" {
			return nil, fmt.Errorf("--build-arg %q: want NAME=value or NAME", a)
		}
		if !ok {
			env, found := lookup(k)
			if !found {
				continue
			}
			v = env
		}
		out[k] = v
	}
	return out, nil
}

func parseKeyValues(flag string, values []string) (map[string]string, error) {
	if len(values) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	for _, kv := range values {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want key=value", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

// ParseSecrets reads --secret values in BuildKit's form:
// "id=NAME,src=FILE" or "id=NAME,env=VAR" (type= is accepted and must
// match the source given).
func ParseSecrets(values []string) (map[string]build.Secret, error) {
	out := map[string]build.Secret{}
	for _, v := range values {
		var id string
		var s build.Secret
		for _, field := range strings.Split(v, ",") {
			k, val, _ := strings.Cut(field, "=")
			switch strings.ToLower(k) {
			case "id":
				id = val
			case "src", "source":
				s.File = val
			case "env":
				s.Env = val
			case "type":
				if val != "file" && val != "env" {
					return nil, fmt.Errorf("--secret %q: type must be file or env", v)
				}
			default:
				return nil, fmt.Errorf("--secret %q: unknown field %q: use id=, src= or env=", v, k)
			}
		}
		if id == "" {
			return nil, fmt.Errorf("--secret %q: id= is required", v)
		}
		if s.File == "" && s.Env == "" {
			// BuildKit's shorthand: --secret id=TOKEN reads $TOKEN.
			s.Env = id
		}
		if s.File != "" && s.Env != "" {
			return nil, fmt.Errorf("--secret %q: give src= or env=, not both", v)
		}
		out[id] = s
	}
	return out, nil
}

// ParsePlatform reads --custom-platform "os/arch[/variant]"; empty means
// the machine's own.
func ParsePlatform(s string) (v1.Platform, error) {
	if s == "" {
		return v1.Platform{}, nil
	}
	p, err := v1.ParsePlatform(s)
	if err != nil || p.OS == "" || p.Architecture == "" {
		return v1.Platform{}, fmt.Errorf("--custom-platform %q: want os/arch[/variant], e.g. linux/arm64", s)
	}
	return *p, nil
}
