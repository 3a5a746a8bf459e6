package dockerfile

import (
	"reflect"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

func TestRunArgv(t *testing.T) {
	sh := []string{"/bin/sh", "-c"}
	tests := []struct {
		name       string
		run        string
		shell      []string
		want       []string
		wantScript *InlineScript
	}{
		{"shell form", "RUN echo $HOME && true", sh, []string{"/bin/sh", "-c", "echo $HOME && true"}, nil},
		{"exec form ignores the shell", `RUN ["echo", "$HOME"]`, sh, []string{"echo", "$HOME"}, nil},
		{"SHELL is used", "RUN echo hi", []string{"/bin/bash", "-eo", "pipefail", "-c"}, []string{"/bin/bash", "-eo", "pipefail", "-c", "echo hi"}, nil},
		{"heredoc body becomes the command", "RUN <<EOF\necho a\necho $B\nEOF", sh, []string{"/bin/sh", "-c", "echo a\necho $B\n"}, nil},
		{"chomped heredoc", "RUN <<-EOF\n\techo a\n\tEOF", sh, []string{"/bin/sh", "-c", "echo a\n"}, nil},
		{
			"shebang heredoc runs as a script", "RUN <<EOT\n#!/usr/bin/env python3\nprint(1)\nEOT", sh,
			[]string{"/bin/sh", "-c", "/dev/pipes/EOT"},
			&InlineScript{Path: "/dev/pipes/EOT", Data: "#!/usr/bin/env python3\nprint(1)\n"},
		},
		{
			"heredoc inside a command line is rebuilt for the shell", "RUN cat <<A > /a && cat <<'B' > /b\n$X\nA\n$Y\nB", sh,
			[]string{"/bin/sh", "-c", "cat <<A > /a && cat <<'B' > /b\n$X\nA\n$Y\nB"}, nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := mustParse(t, "FROM scratch\n"+tt.run+"\n")
			run := d.Stages[0].Commands[0].(*instructions.RunCommand)
			got, script, err := RunArgv(run, tt.shell)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("argv = %q\nwant %q", got, tt.want)
			}
			if !reflect.DeepEqual(script, tt.wantScript) {
				t.Errorf("script = %+v, want %+v", script, tt.wantScript)
			}
		})
	}
}

func TestWithShell(t *testing.T) {
	d := mustParse(t, "FROM scratch\nCMD echo a b\nENTRYPOINT [\"/e\", \"x\"]\n")
	cmd := d.Stages[0].Commands[0].(*instructions.CmdCommand)
	if got := WithShell(cmd.ShellDependantCmdLine, DefaultShell("linux")); !reflect.DeepEqual(got, []string{"/bin/sh", "-c", "echo a b"}) {
		t.Errorf("CMD argv = %q", got)
	}
	ep := d.Stages[0].Commands[1].(*instructions.EntrypointCommand)
	if got := WithShell(ep.ShellDependantCmdLine, DefaultShell("linux")); !reflect.DeepEqual(got, []string{"/e", "x"}) {
		t.Errorf("ENTRYPOINT argv = %q", got)
	}
	if got := DefaultShell("windows"); !reflect.DeepEqual(got, []string{"cmd", "/S", "/C"}) {
		t.Errorf("windows shell = %q", got)
	}
}
