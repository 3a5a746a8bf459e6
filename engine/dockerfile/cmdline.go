package dockerfile

import (
	"errors"
	"path"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// DefaultShell is the shell of shell-form instructions when neither SHELL
// nor the image sets one, as in BuildKit.
func DefaultShell(os string) []string {
	if os == "windows" {
		return []string{"cmd", "/S", "/C"}
	}
	return []string{"/bin/sh", "-c"}
}

// WithShell returns the argv of a CMD, ENTRYPOINT or HEALTHCHECK-like
// command line: exec form as is, shell form joined and handed to shell
// (the stage's SHELL, else the image's, else DefaultShell).
func WithShell(cmd instructions.ShellDependantCmdLine, shell []string) []string {
	if !cmd.PrependShell {
		return slices.Clone(cmd.CmdLine)
	}
	return append(slices.Clone(shell), strings.Join(cmd.CmdLine, " "))
}

// InlineScript is a heredoc RUN runs as a program: BuildKit mounts it
// read-only at Path (under /dev/pipes) with mode 0755, outside the image.
type InlineScript struct {
	Path string
	Data string
}

// RunArgv returns the argv of a RUN, applying BuildKit's heredoc rules
// (dockerfile2llb dispatchRun):
//   - `RUN <<EOF` whose body starts with `#!` runs the body as a script
//     file (returned as script), through the shell;
//   - `RUN <<EOF` with any other body hands the body to the shell as the
//     command, so heredoc syntax works even for shells without heredocs;
//   - a command line with heredocs (`RUN cat <<A > f`) is rebuilt with its
//     bodies and given to the shell, which expands them itself.
//
// Heredoc bodies are never expanded by Slipway: in RUN, the shell does it.
func RunArgv(c *instructions.RunCommand, shell []string) (argv []string, script *InlineScript, err error) {
	args := c.CmdLine
	if len(c.Files) > 0 {
		if len(args) != 1 || !c.PrependShell {
			return nil, nil, errors.New("parsing produced an invalid run command: heredocs need the shell form")
		}
		if hd := parser.MustParseHeredoc(args[0]); hd != nil {
			data := c.Files[0].Data
			if c.Files[0].Chomp {
				data = parser.ChompHeredocContent(data)
			}
			if strings.HasPrefix(data, "#!") {
				script = &InlineScript{Path: path.Join("/dev/pipes", c.Files[0].Name), Data: data}
				args = []string{script.Path}
			} else {
				args = []string{data}
			}
		} else {
			var b strings.Builder
			b.WriteString(args[0])
			for _, f := range c.Files {
				b.WriteByte('\n')
				b.WriteString(f.Data)
				b.WriteString(f.Name)
			}
			args = []string{b.String()}
		}
	}
	return WithShell(instructions.ShellDependantCmdLine{CmdLine: args, PrependShell: c.PrependShell}, shell), script, nil
}
