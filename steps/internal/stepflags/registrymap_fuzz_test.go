package stepflags

import (
	"strings"
	"testing"
)

// FuzzRegistryMap reads --registry-map values (kaniko's
// original=remapped[;original=remapped]): what is accepted maps registries
// to registries, none of them empty.
func FuzzRegistryMap(f *testing.F) {
	for _, s := range []string{"index.docker.io=mirror.example", "a=b;c=d", "a=b;c", "=b", "a=", "a", "a=b;;c=d", "registry.example:5000=127.0.0.1:5000;docker.io=mirror"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		m, err := RegistryMaps([]string{value})
		if err != nil {
			if !strings.Contains(err.Error(), "--registry-map") {
				t.Fatalf("the error does not name the flag: %v", err)
			}
			return
		}
		for k, vs := range m {
			if k == "" || len(vs) == 0 {
				t.Fatalf("--registry-map %q = %v", value, m)
			}
			for _, v := range vs {
				if v == "" {
					t.Fatalf("--registry-map %q maps %s to an empty registry: %q", value, k, vs)
				}
			}
		}
	})
}

func TestRegistryMaps(t *testing.T) {
	m, err := RegistryMaps([]string{"index.docker.io=mirror.a;gcr.io=127.0.0.1:5000", "index.docker.io=mirror.b"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m["index.docker.io"], ","); got != "mirror.a,mirror.b" || strings.Join(m["gcr.io"], ",") != "127.0.0.1:5000" {
		t.Errorf("RegistryMaps = %v", m)
	}
	if _, err := RegistryMaps([]string{"a=b;c"}); err == nil {
		t.Error("a=b;c was accepted")
	}
}
