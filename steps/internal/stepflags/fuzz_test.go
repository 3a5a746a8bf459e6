package stepflags

import (
	"strings"
	"testing"
)

// FuzzHostPairs reads --registry-certificate and --registry-client-cert
// values: what is accepted has a host and a value.
func FuzzHostPairs(f *testing.F) {
	for _, s := range []string{"registry.example=ca.pem", "127.0.0.1:5000=/certs/client.pem,/certs/client.key", "=x", "host=", "host"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		m, err := HostPairs("--registry-certificate", []string{value})
		if err != nil {
			if !strings.Contains(err.Error(), "--registry-certificate") {
				t.Fatalf("the error does not name the flag: %v", err)
			}
			return
		}
		for k, v := range m {
			if k == "" || v == "" || len(m) != 1 {
				t.Fatalf("%q = %v", value, m)
			}
		}
	})
}
