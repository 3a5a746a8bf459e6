package build

import (
	"errors"
	"strings"
	"testing"

	"github.com/slipway-build/slipway/engine/dockerfile"
)

func TestCommandErrorQuotesControlBytes(t *testing.T) {
	df, err := dockerfile.Parse(strings.NewReader("FROM scratch\nRUN echo \x00\x1b[2J done\n"), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	msg := commandError(df.Stages[0].Commands[0], errors.New("exit code 1")).Error()
	if strings.ContainsAny(msg, "\x00\x1b") {
		t.Errorf("the error holds raw control bytes: %q", msg)
	}
	if !strings.Contains(msg, `echo \x00\x1b[2J done`) {
		t.Errorf("the error does not show the command escaped: %q", msg)
	}
}

// TestArgHistoryAsWritten: ARG history entries are docker's: the names and
// written defaults, never a --build-arg value; RUN keeps its "|N NAME=value".
func TestArgHistoryAsWritten(t *testing.T) {
	f := newFixture(t)
	img, err := f.build(t, map[string]string{
		"Dockerfile": "FROM $BASE\nARG TOKEN\nARG LEVEL=low\nARG MODE=${LEVEL}-x KEEP=${LEVEL}\nRUN true\n",
	}, func(o *Options) { o.BuildArgs = map[string]string{"TOKEN": "s3cret-value", "MODE": "given-mode"} })
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	var runLine string
	for _, h := range cf.History {
		switch {
		case strings.HasPrefix(h.CreatedBy, "ARG "):
			args = append(args, h.CreatedBy)
		case strings.Contains(h.CreatedBy, "true"):
			runLine = h.CreatedBy
		}
	}
	want := []string{"ARG TOKEN", "ARG LEVEL=low", "ARG MODE=${LEVEL}-x KEEP=low"}
	if strings.Join(args, "\n") != strings.Join(want, "\n") {
		t.Errorf("ARG history = %q, want %q", args, want)
	}
	if !strings.Contains(runLine, "TOKEN=s3cret-value") {
		t.Errorf("RUN history = %q, want the |N NAME=value form with the build arg", runLine)
	}
}
