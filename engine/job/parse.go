package job

import (
	"fmt"
	"strings"

	"github.com/slipway-build/slipway/engine/build"
)

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
