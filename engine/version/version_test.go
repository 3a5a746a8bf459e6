package version

import (
	"runtime"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	oldV, oldC := Version, Commit
	t.Cleanup(func() { Version, Commit = oldV, oldC })

	Version, Commit = "1.2.3", "abc123"
	got := Get()
	if got.Version != "1.2.3" || got.Commit != "abc123" || got.GoVersion != runtime.Version() {
		t.Fatalf("Get() = %+v", got)
	}
	if s := got.String(); !strings.Contains(s, "1.2.3") || !strings.Contains(s, "abc123") || !strings.Contains(s, runtime.Version()) {
		t.Fatalf("String() = %q", s)
	}

	Version, Commit = "dev", ""
	if got := Get(); got.Commit == "" {
		t.Fatalf("an unstamped build has an empty commit: %+v", got)
	}
}
