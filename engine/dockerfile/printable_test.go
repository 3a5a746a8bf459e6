package dockerfile

import (
	"strings"
	"testing"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"RUN echo hi":          "RUN echo hi",
		"RUN caf\u00e9 \u2713": "RUN caf\u00e9 \u2713",
		"RUN a\x00b":           `RUN a\x00b`,
		"\x1b[31mred\x1b[0m":   `\x1b[31mred\x1b[0m`,
		"two\nlines\r":         `two\nlines\r`,
		"tab\there":            `tab\there`,
		"bad \xff utf8":        `bad \xff utf8`,
		"del\x7f":              `del\x7f`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestErrorsQuoteControlBytes: a Dockerfile's raw bytes never reach an
// error message unescaped.
func TestErrorsQuoteControlBytes(t *testing.T) {
	for _, src := range []string{
		"FROM busybox\nFOO\x00\x1b[2J bar\n",
		"FROM busybox\nRUN --bogus\x07=1 true\n",
		"FROM busybox AS bad\x00name\n",
	} {
		df, err := Parse(strings.NewReader(src), "Dockerfile")
		if err == nil {
			_, err = df.Plan(PlanOptions{})
		}
		if err == nil {
			t.Errorf("%q: no error", src)
			continue
		}
		msg := err.Error()
		if strings.ContainsAny(msg, "\x00\x07\x1b") {
			t.Errorf("%q: the error holds raw control bytes: %q", src, msg)
		}
		if !strings.Contains(msg, `\`) {
			t.Errorf("%q: the error does not show the bytes escaped: %q", src, msg)
		}
	}
}
