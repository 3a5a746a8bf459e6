package main

import (
	"strings"
	"testing"
)

// FuzzRegistryMap reads --registry-map values: what is accepted maps a
// registry to registries, none of them empty.
func FuzzRegistryMap(f *testing.F) {
	for _, s := range []string{"index.docker.io=mirror.example", "a=b;c", "=b", "a=", "a", "a=b;;c", "registry.example:5000=127.0.0.1:5000;mirror"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		m, err := registryMaps([]string{value})
		if err != nil {
			if !strings.Contains(err.Error(), "--registry-map") {
				t.Fatalf("the error does not name the flag: %v", err)
			}
			return
		}
		if len(m) != 1 {
			t.Fatalf("--registry-map %q = %v", value, m)
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
