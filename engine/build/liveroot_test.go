package build

import (
	"testing"

	"github.com/slipway-build/slipway/engine/rootfs"
)

// TestClearOfIgnored: in place, COPY --from reads a stage's files at "/"
// only for sources that neither are, nor lie below, nor hold an ignored
// path (a mount, the executor, the work directory).
func TestClearOfIgnored(t *testing.T) {
	b := &builder{ignoreList: rootfs.NewIgnoreList("/proc", "/etc/hosts", "/kaniko/.docker", "/workspace")}
	for p, want := range map[string]bool{
		"/out/hello":                  true,
		"/etc/passwd":                 true,
		"/kaniko":                     false, // holds the docker config
		"/kaniko/.docker/config.json": false,
		"/etc":                        false, // holds docker's /etc/hosts
		"/etc/hosts":                  false,
		"/proc/self/environ":          false,
		"/":                           false,
		"/workspaces":                 true,
	} {
		if got := b.clearOfIgnored(p); got != want {
			t.Errorf("clearOfIgnored(%q) = %v, want %v", p, got, want)
		}
	}
	for rel, want := range map[string]string{
		"out/hello":   "/out/hello",
		"out/*.txt":   "/out",
		"o?t/a/b":     "/",
		"usr/lib/[a]": "/usr/lib",
	} {
		if got := literalPrefix(rel); got != want {
			t.Errorf("literalPrefix(%q) = %q, want %q", rel, got, want)
		}
	}
}
