package job

import "testing"

// FuzzSecretValues feeds one command-line value to the parser of
// --secret. It either refuses it or returns what the value says.
func FuzzSecretValues(f *testing.F) {
	// The values of parse_test.go.
	for _, s := range []string{
		"id=npm,src=/run/npmrc", "id=tok,env=GITHUB_TOKEN", "id=TOKEN", "src=/x", "id=a,src=/x,env=Y", "id=a,foo=1",
		"type=file,id=a,source=/x", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
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
	})
}
