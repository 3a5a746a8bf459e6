package hostile

import (
	"strings"
	"testing"
)

func TestNamesPlace(t *testing.T) {
	long := strings.Repeat(strings.Repeat("d", 250)+"/", 17) + "f"
	for _, tc := range []struct {
		msg, name string
		want      bool
	}{
		{`layer entry "a/b": boom`, "a/b", true},
		{"opening /" + long[:len(long)-2] + ": file name too long", long, true},
		{"opening /a: boom", "a/b/c/d/e/f/g/h", false},
		{"no path at all", "a/b", false},
	} {
		if got := NamesPlace(tc.msg, tc.name); got != tc.want {
			t.Errorf("NamesPlace(%.40q, %.40q) = %v, want %v", tc.msg, tc.name, got, tc.want)
		}
	}
}
