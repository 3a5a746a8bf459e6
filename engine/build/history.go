package build

import (
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// argDefaults are the defaults of an ARG as written, before expansion;
// nil for any other command.
func argDefaults(cmd instructions.Command) []*string {
	c, ok := cmd.(*instructions.ArgCommand)
	if !ok {
		return nil
	}
	out := make([]*string, len(c.Args))
	for i, a := range c.Args {
		if a.Value != nil {
			v := *a.Value
			out[i] = &v
		}
	}
	return out
}

// argHistory is an expanded ARG's created_by as docker's builder records
// it: each name, with its default when one is written (expanded, unless a
// --build-arg replaced it, then as written). A --build-arg value never
// appears: the history is pushed with the image, and RUN's "|N NAME=value"
// entries are the one place build args show, in docker's images too.
func argHistory(c *instructions.ArgCommand, written []*string, buildArgs map[string]string) string {
	parts := make([]string, 0, len(c.Args))
	for i, a := range c.Args {
		p := a.Key
		if i < len(written) && written[i] != nil {
			if _, given := buildArgs[a.Key]; given || a.Value == nil {
				p += "=" + *written[i]
			} else {
				p += "=" + *a.Value
			}
		}
		parts = append(parts, p)
	}
	return "ARG " + strings.Join(parts, " ")
}
