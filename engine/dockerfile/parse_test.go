package dockerfile

import (
	"errors"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

func TestParseSyntaxDirective(t *testing.T) {
	const digest = "sha256:9e2c9eca7367393aecc68795c671f93466818395a2693498debe831fd67f5e89"
	tests := []struct {
		syntax string
		ok     bool
	}{
		{"docker/dockerfile:1", true},
		{"docker/dockerfile:1.7", true},
		{"docker/dockerfile:1.4.3", true},
		{"docker/dockerfile:1.7-labs", true},
		{"docker/dockerfile:1-labs", true},
		{"docker.io/docker/dockerfile:1", true},
		{"docker/dockerfile:1@" + digest, true},
		{"docker.io/docker/dockerfile:1.10@" + digest, true},
		{"docker/dockerfile:2", false},
		{"docker/dockerfile:10", false},
		{"docker/dockerfile", false},
		{"docker/dockerfile:latest", false},
		{"docker/dockerfile@" + digest, false},
		{"docker/dockerfile-upstream:master", false},
		{"example.com/docker/dockerfile:1", false},
		{"tonistiigi/dockerfile:1", false},
	}
	for _, tt := range tests {
		t.Run(tt.syntax, func(t *testing.T) {
			src := "# syntax=" + tt.syntax + "\nFROM scratch\n"
			d, err := Parse(strings.NewReader(src), "Dockerfile")
			if tt.ok {
				if err != nil {
					t.Fatalf("want accepted, got %v", err)
				}
				if d.Syntax != tt.syntax {
					t.Errorf("Syntax = %q, want %q", d.Syntax, tt.syntax)
				}
				return
			}
			if err == nil {
				t.Fatal("want refused, got no error")
			}
			want := `Dockerfile:1: unsupported syntax "` + tt.syntax + `"`
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error = %q, want prefix %q", err, want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // full message prefix, file and line included
	}{
		{"unknown instruction", "FROM busybox\n\nFOO bar\n", "Dockerfile:3: unknown instruction: FOO"},
		{"unknown COPY flag", "FROM busybox\nCOPY --foo a b\n", "Dockerfile:2: unknown flag: --foo"},
		{"unknown RUN flag", "FROM busybox\nRUN --bar true\n", "Dockerfile:2: unknown flag: --bar"},
		{"COPY without destination", "FROM busybox\nCOPY a\n", "Dockerfile:2: COPY requires at least two arguments"},
		{"ENV without value", "FROM busybox\nENV\n", "Dockerfile:2: ENV requires at least one argument"},
		{"bad stage name", "FROM busybox AS 1x\n", `Dockerfile:1: invalid name for build stage: "1x"`},
		{"unterminated heredoc", "FROM busybox\nRUN <<EOF\necho hi\n", "Dockerfile:2: unterminated heredoc"},
		{"instruction before FROM", "RUN true\nFROM busybox\n", "Dockerfile:1: no build stage in current context"},
		{"only ARGs", "ARG X=1\n", "Dockerfile: no FROM instruction"},
		{"empty", "\n  \n", "Dockerfile: the Dockerfile is empty"},
		{"ONBUILD FROM", "FROM busybox\nONBUILD FROM alpine\n", "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger"},
		{"ONBUILD ONBUILD", "FROM busybox\nONBUILD ONBUILD RUN true\n", "Dockerfile:2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"},
		{"mount from variable", "\nFROM busybox\nRUN --mount=from=$X,target=/x true\n", "Dockerfile:3: 'from' doesn't support variable expansion"},
		{"RUN --security", "FROM busybox\nRUN --security=insecure true\n", "Dockerfile:2: RUN --security is not supported"},
		{"RUN --device", "FROM busybox\nRUN --device=nvidia.com/gpu=all true\n", "Dockerfile:2: RUN --device is not supported"},
		{"ADD git", "FROM busybox\nADD https://github.com/moby/buildkit.git /src\n", "Dockerfile:2: ADD of a git repository (https://github.com/moby/buildkit.git) is not supported"},
		{"ADD --keep-git-dir", "FROM busybox\nADD --keep-git-dir git@github.com:moby/buildkit.git /src\n", "Dockerfile:2: ADD --keep-git-dir is not supported"},
		{"HEALTHCHECK bad interval", "FROM busybox\nHEALTHCHECK --interval=x CMD true\n", "Dockerfile:2: time: invalid duration"},
		{"continuation line", "FROM busybox\nRUN echo \\\n  hi && \\\n  FOO\nBAR x\n", "Dockerfile:5: unknown instruction: BAR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.src), "Dockerfile")
			if err == nil {
				t.Fatal("want an error, got none")
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant prefix %q", err, tt.want)
			}
			var de *Error
			if !errors.As(err, &de) {
				t.Errorf("error %T is not a *dockerfile.Error", err)
			}
		})
	}
}

func TestParseEveryInstruction(t *testing.T) {
	src := `# escape=\
ARG BASE=busybox
FROM --platform=$BUILDPLATFORM ${BASE} AS build
MAINTAINER someone
LABEL a=b "c d"=e
ENV A=1 B="two words"
ENV OLD style value
ARG X Y=2
WORKDIR /w
USER 1000:1000
SHELL ["/bin/sh", "-ec"]
RUN echo hi
RUN ["echo", "exec"]
COPY --chown=1:2 --chmod=0644 a b /dst/
ADD --checksum=sha256:0000000000000000000000000000000000000000000000000000000000000000 https://example.invalid/x /x
EXPOSE 80/tcp 443
VOLUME ["/data"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s CMD true
ONBUILD RUN echo trigger
CMD ["run"]
ENTRYPOINT ["/entry"]
`
	d := mustParse(t, src)
	if len(d.MetaArgs) != 1 || d.MetaArgs[0].Args[0].Key != "BASE" {
		t.Fatalf("MetaArgs = %+v", d.MetaArgs)
	}
	if d.EscapeToken != '\\' {
		t.Errorf("EscapeToken = %q", d.EscapeToken)
	}
	st := d.Stages[0]
	if st.Name != "build" || st.BaseName != "${BASE}" || st.Platform != "$BUILDPLATFORM" {
		t.Errorf("stage = %q %q %q", st.Name, st.BaseName, st.Platform)
	}
	var names []string
	for _, c := range st.Commands {
		names = append(names, strings.ToLower(c.Name()))
	}
	want := "maintainer label env env arg workdir user shell run run copy add expose volume stopsignal healthcheck onbuild cmd entrypoint"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("commands:\n got %s\nwant %s", got, want)
	}
}

func TestParseWarnings(t *testing.T) {
	d := mustParse(t, "FROM busybox\nRUN echo a \\\n\n  b\n")
	if len(d.Warnings) != 1 || !strings.HasPrefix(d.Warnings[0], "Dockerfile:") || !strings.Contains(d.Warnings[0], "Empty continuation line") {
		t.Errorf("Warnings = %q", d.Warnings)
	}
}

func TestParseTriggers(t *testing.T) {
	cmds, err := ParseTriggers([]string{
		"RUN echo $HOME",
		"COPY --from=build /out /in",
		"ENV A=1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) != 3 {
		t.Fatalf("got %d commands", len(cmds))
	}
	if r, ok := cmds[0].(*instructions.RunCommand); !ok || r.CmdLine[0] != "echo $HOME" || !r.PrependShell {
		t.Errorf("cmds[0] = %#v", cmds[0])
	}
	if c, ok := cmds[1].(*instructions.CopyCommand); !ok || c.From != "build" || c.DestPath != "/in" {
		t.Errorf("cmds[1] = %#v", cmds[1])
	}
	if _, ok := cmds[2].(*instructions.EnvCommand); !ok {
		t.Errorf("cmds[2] = %T", cmds[2])
	}

	bad := []struct {
		trigger, want string
	}{
		{"FROM alpine", "FROM isn't allowed as an ONBUILD trigger"},
		{"MAINTAINER me", "MAINTAINER isn't allowed as an ONBUILD trigger"},
		{"ONBUILD RUN true", "chaining ONBUILD"},
		{"FOO bar", "unknown instruction: FOO"},
		{"COPY --nope a b", "unknown flag: --nope"},
		{"RUN --security=insecure true", "RUN --security is not supported"},
	}
	for _, tt := range bad {
		_, err := ParseTriggers([]string{"RUN true", tt.trigger})
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.trigger) {
			t.Errorf("ParseTriggers(%q) error = %v, want it to name the trigger and contain %q", tt.trigger, err, tt.want)
		}
	}
}

func TestIsGitSource(t *testing.T) {
	for src, want := range map[string]bool{
		"https://github.com/moby/buildkit.git":         true,
		"https://github.com/moby/buildkit.git#v0.34.2": true,
		"http://example.com/repo.git?ref=main":         true,
		"git@github.com:moby/buildkit.git":             true,
		"git://example.com/repo":                       true,
		"ssh://git@example.com/repo.git":               true,
		"https://example.com/file.tar.gz":              false,
		"https://example.com/repo.git.tar":             false,
		"src/app.git":                                  false,
		"./dir":                                        false,
	} {
		if got := isGitSource(src); got != want {
			t.Errorf("isGitSource(%q) = %v, want %v", src, got, want)
		}
	}
}

func TestErrorFields(t *testing.T) {
	_, err := Parse(strings.NewReader("FROM busybox\nNOPE x\n"), "build/app.Dockerfile")
	var de *Error
	if !errors.As(err, &de) {
		t.Fatalf("error %T is not a *Error", err)
	}
	if de.File != "build/app.Dockerfile" || de.Line != 2 {
		t.Errorf("File %q Line %d", de.File, de.Line)
	}
	var unknown *instructions.UnknownInstructionError
	if !errors.As(err, &unknown) || unknown.Instruction != "NOPE" {
		t.Errorf("the parser's error is not kept: %v", err)
	}
}
