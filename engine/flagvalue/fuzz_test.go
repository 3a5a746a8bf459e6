package flagvalue

import (
	"strings"
	"testing"
)

// FuzzFlagValues feeds one command-line value to the parsers of
// --build-arg, key=value flags and --custom-platform. Each either refuses
// it or returns what the value says.
func FuzzFlagValues(f *testing.F) {
	for _, s := range []string{
		"A=1", "B=x=y", "C=", "FROM_ENV", "EMPTY", "MISSING", "=v",
		"registry.example=ca.pem", "127.0.0.1:5000=/certs/client.pem,/certs/client.key", "host=", "host",
		"linux/arm64/v8", "arm64", "linux/amd64", "windows/amd64:10.0.17763", "",
	} {
		f.Add(s)
	}
	env := map[string]string{"FROM_ENV": "e", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	f.Fuzz(func(t *testing.T, value string) {
		args, err := BuildArgs([]string{value}, lookup)
		if err == nil {
			k, v, hasValue := strings.Cut(value, "=")
			if e, fromEnv := env[k]; !hasValue && fromEnv {
				v, hasValue = e, true
			}
			if got, ok := args[k]; ok != hasValue || got != v || len(args) > 1 {
				t.Fatalf("--build-arg %q = %v", value, args)
			}
		}

		hosts, err := Pairs("--registry-certificate", "host=value", []string{value}, true)
		if err != nil && !strings.Contains(err.Error(), "--registry-certificate") {
			t.Fatalf("the error does not name the flag: %v", err)
		}
		for k, v := range hosts {
			if k == "" || v == "" || len(hosts) != 1 {
				t.Fatalf("--registry-certificate %q = %v", value, hosts)
			}
		}

		pairs, err := Pairs("--label", "key=value", []string{value}, false)
		if err == nil {
			k, v, _ := strings.Cut(value, "=")
			if got, ok := pairs[k]; !ok || got != v || len(pairs) != 1 {
				t.Fatalf("--label %q = %v", value, pairs)
			}
		}

		p, err := Platform(value)
		if err == nil && value != "" {
			if p.OS == "" || p.Architecture == "" {
				t.Fatalf("--custom-platform %q = %+v: no OS or architecture", value, p)
			}
			again, err := Platform(p.String())
			if err != nil || again.String() != p.String() {
				t.Fatalf("--custom-platform %q = %+v, which reads back as %+v (%v)", value, p, again, err)
			}
		}
	})
}
