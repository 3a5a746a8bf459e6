package job

import (
	"strings"
	"testing"
)

// FuzzFlagValues feeds one command-line value to the parsers of
// --build-arg, --secret and --custom-platform. Each either refuses it or
// returns what the value says.
func FuzzFlagValues(f *testing.F) {
	// The values of parse_test.go.
	for _, s := range []string{
		"A=1", "B=x=y", "C=", "FROM_ENV", "EMPTY", "MISSING", "=v",
		"id=npm,src=/run/npmrc", "id=tok,env=GITHUB_TOKEN", "id=TOKEN", "src=/x", "id=a,src=/x,env=Y", "id=a,foo=1",
		"type=file,id=a,source=/x", "linux/arm64/v8", "arm64", "linux/amd64", "windows/amd64:10.0.17763", "",
	} {
		f.Add(s)
	}
	env := map[string]string{"FROM_ENV": "e", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	f.Fuzz(func(t *testing.T, value string) {
		args, err := ParseBuildArgs([]string{value}, lookup)
		if err == nil {
			k, v, hasValue := strings.Cut(value, "=")
			if e, fromEnv := env[k]; !hasValue && fromEnv {
				v, hasValue = e, true
			}
			if got, ok := args[k]; ok != hasValue || got != v || len(args) > 1 {
				t.Fatalf("--build-arg %q = %v", value, args)
			}
		}

		secrets, err := ParseSecrets([]string{value})
		if err == nil {
			if len(secrets) != 1 {
				t.Fatalf("--secret %q gave %d secrets", value, len(secrets))
			}
			for id, s := range secrets {
				if id == "" || (s.File == "") == (s.Env == "") {
					t.Fatalf("--secret %q = id %q, %+v: want an id and one source", value, id, s)
				}
			}
		}

		p, err := ParsePlatform(value)
		if err == nil && value != "" {
			if p.OS == "" || p.Architecture == "" {
				t.Fatalf("--custom-platform %q = %+v: no OS or architecture", value, p)
			}
			again, err := ParsePlatform(p.String())
			if err != nil || again.String() != p.String() {
				t.Fatalf("--custom-platform %q = %+v, which reads back as %+v (%v)", value, p, again, err)
			}
		}
	})
}
