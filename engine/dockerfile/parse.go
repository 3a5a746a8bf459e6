package dockerfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Dockerfile is a parsed Dockerfile: typed instructions, not yet expanded.
type Dockerfile struct {
	// Name is how the Dockerfile is called in errors, e.g. "Dockerfile".
	Name string
	// MetaArgs are the ARGs before the first FROM.
	MetaArgs []instructions.ArgCommand
	// Stages are the FROM sections in file order.
	Stages []instructions.Stage
	// EscapeToken is the escape character set by the `# escape=` directive
	// ('\\' by default). Words are expanded with it.
	EscapeToken rune
	// Syntax is the value of the `# syntax=` directive, if any.
	Syntax string
	// Warnings are the parser's warnings (e.g. empty continuation lines),
	// each prefixed with the file name and line.
	Warnings []string

	// source is kept so that each Plan gets its own command values:
	// expansion rewrites commands in place, and two plans of one Dockerfile
	// (one per platform) must not see each other's values.
	source []byte
}

// Error is a problem found at a place in a Dockerfile. Its text reads
// "Dockerfile:12: unknown instruction: FOO" so that a user can jump to it.
type Error struct {
	File string
	Line int // 1-based; 0 when the problem has no single line
	Err  error
}

func (e *Error) Error() string {
	msg := "<nil>"
	if e.Err != nil {
		msg = Printable(e.Err.Error())
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", Printable(e.File), e.Line, msg)
	}
	return fmt.Sprintf("%s: %s", Printable(e.File), msg)
}

func (e *Error) Unwrap() error { return e.Err }

// errorAt attaches the Dockerfile name and the first line of loc to err.
func errorAt(file string, loc []parser.Range, err error) error {
	line := 0
	if len(loc) > 0 {
		line = loc[0].Start.Line
	}
	return &Error{File: file, Line: line, Err: err}
}

// locatedError turns the errors of BuildKit's parser and instructions
// packages, which carry their line in a parser.LocationError and often
// repeat it in the message ("dockerfile parse error on line 3: ..."), into
// an *Error holding the line once.
func locatedError(file string, err error) error {
	var le *parser.LocationError
	if !errors.As(err, &le) {
		return &Error{File: file, Err: err}
	}
	line := 0
	if len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		line = le.Locations[0][0].Start.Line
	}
	inner := le.Unwrap()
	if inner == nil {
		inner = err
	}
	return &Error{File: file, Line: line, Err: inner}
}

// builtinSyntax matches the frontend images whose language this package
// implements: docker/dockerfile at any 1.x tag, optionally pinned by digest,
// with or without the docker.io registry prefix.
var builtinSyntax = regexp.MustCompile(`^(?:docker\.io/)?docker/dockerfile:1(?:[.-][A-Za-z0-9._-]*)?(?:@sha256:[0-9a-f]{64})?$`)

// Parse reads a Dockerfile. name is used in errors
// ("Dockerfile:12: unknown instruction: FOO").
//
// A `# syntax=` directive naming docker/dockerfile:1.x is accepted as the
// built-in syntax; Slipway runs no frontend images, so any other syntax is
// refused rather than silently parsed with rules it may not follow.
func Parse(r io.Reader, name string) (*Dockerfile, error) {
	if name == "" {
		name = "Dockerfile"
	}
	dt, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(bytes.TrimSpace(dt)) == 0 {
		return nil, &Error{File: name, Err: errors.New("the Dockerfile is empty")}
	}

	syntax, _, loc, hasSyntax := parser.DetectSyntax(dt)
	if hasSyntax {
		if err := checkSyntax(syntax); err != nil {
			return nil, errorAt(name, loc, err)
		}
	}

	res, err := parser.Parse(bytes.NewReader(dt))
	if err != nil {
		return nil, locatedError(name, err)
	}
	stages, metaArgs, err := instructions.Parse(res.AST, nil)
	if err != nil {
		return nil, locatedError(name, err)
	}
	if len(stages) == 0 {
		return nil, &Error{File: name, Err: errors.New("no FROM instruction: the Dockerfile has no stage to build")}
	}
	d := &Dockerfile{
		source:      dt,
		Name:        name,
		MetaArgs:    metaArgs,
		Stages:      stages,
		EscapeToken: res.EscapeToken,
		Syntax:      syntax,
	}
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil {
			line = w.Location.Start.Line
		}
		d.Warnings = append(d.Warnings, (&Error{File: name, Line: line, Err: errors.New(w.Short)}).Error())
	}
	if err := d.checkSupported(); err != nil {
		return nil, err
	}
	return d, nil
}

func checkSyntax(syntax string) error {
	if builtinSyntax.MatchString(syntax) {
		return nil
	}
	return fmt.Errorf("unsupported syntax %q: Slipway implements the docker/dockerfile:1 syntax itself and runs no other frontend image; "+
		"use `# syntax=docker/dockerfile:1` or remove the directive", syntax)
}

// checkSupported refuses what BuildKit's parser accepts but Slipway cannot
// honour, so that no instruction is silently built differently from what the
// Dockerfile asks (kaniko ignored unknown RUN flags, for one).
func (d *Dockerfile) checkSupported() error {
	for _, st := range d.Stages {
		for _, cmd := range st.Commands {
			if err := checkCommand(cmd); err != nil {
				return errorAt(d.Name, cmd.Location(), err)
			}
		}
	}
	return nil
}

func checkCommand(cmd instructions.Command) error {
	switch c := cmd.(type) {
	case *instructions.RunCommand:
		for _, f := range c.FlagsUsed {
			switch f {
			case "mount", "network":
			case "security":
				return errors.New("RUN --security is not supported: Slipway runs builds without extra privileges")
			case "device":
				return errors.New("RUN --device is not supported: Slipway cannot attach CDI devices to a build step")
			default:
				return fmt.Errorf("RUN --%s is not supported", f)
			}
		}
	case *instructions.AddCommand:
		if c.KeepGitDir != nil {
			return errors.New("ADD --keep-git-dir is not supported: Slipway does not ADD git repositories; use a git build context instead")
		}
		for _, src := range c.SourcePaths {
			if isGitSource(src) {
				return fmt.Errorf("ADD of a git repository (%s) is not supported; use a git build context instead", src)
			}
		}
	}
	return nil
}

// isGitSource follows BuildKit's test for ADD sources that name a git
// repository rather than a file or an http(s) URL.
func isGitSource(src string) bool {
	switch {
	case strings.HasPrefix(src, "git@"), strings.HasPrefix(src, "git://"), strings.HasPrefix(src, "ssh://"):
		return true
	case strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://"):
		u := src
		if i := strings.IndexAny(u, "?#"); i >= 0 {
			u = u[:i]
		}
		return strings.HasSuffix(u, ".git")
	}
	return false
}

// ParseTriggers parses a base image's ONBUILD trigger lines (its config's
// OnBuild list) into commands, which the builder runs right after FROM,
// before the stage's own instructions. As in BuildKit, each trigger must be
// a single instruction and may not be FROM, MAINTAINER or ONBUILD.
func ParseTriggers(triggers []string) ([]instructions.Command, error) {
	cmds := make([]instructions.Command, 0, len(triggers))
	for _, t := range triggers {
		cmd, err := parseTrigger(t)
		if err != nil {
			return nil, fmt.Errorf("ONBUILD trigger %q of the base image: %w", t, err)
		}
		if err := checkCommand(cmd); err != nil {
			return nil, fmt.Errorf("ONBUILD trigger %q of the base image: %w", t, err)
		}
		cmds = append(cmds, cmd)
	}
	return cmds, nil
}

func parseTrigger(expr string) (instructions.Command, error) {
	res, err := parser.Parse(strings.NewReader(expr))
	if err != nil {
		return nil, unlocated(err)
	}
	if len(res.AST.Children) != 1 {
		return nil, errors.New("an ONBUILD trigger must be a single instruction")
	}
	node := res.AST.Children[0]
	switch strings.ToUpper(node.Value) {
	case "ONBUILD":
		return nil, errors.New("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
	case "FROM", "MAINTAINER":
		return nil, fmt.Errorf("%s isn't allowed as an ONBUILD trigger", strings.ToUpper(node.Value))
	}
	cmd, err := instructions.ParseCommand(node)
	if err != nil {
		return nil, unlocated(err)
	}
	return cmd, nil
}

// unlocated drops the line of a trigger's own one-line text, which would
// mislead: a trigger has no line in the Dockerfile being built.
func unlocated(err error) error {
	var le *parser.LocationError
	if errors.As(err, &le) && le.Unwrap() != nil {
		return le.Unwrap()
	}
	return err
}
